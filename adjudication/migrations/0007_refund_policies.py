# Placeholder in the chain; its owner writes the operations by hand.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("adjudication", "0006_notices_unclaimed")]
    operations = []
