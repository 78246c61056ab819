# Placeholder for the workstream that owns it (issue 12); operations are added by hand.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("reports", "0004_exports")]
    operations = []
