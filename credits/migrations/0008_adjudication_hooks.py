# Placeholder in the chain; its owner writes the operations by hand.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("credits", "0007_responsibility_due_now")]
    operations = []
