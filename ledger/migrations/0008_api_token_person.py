# Placeholder filled in by the work on API tokens acting for a person (issue 9); kept in the chain so parallel work never collides.
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0007_remittance_once'),
    ]

    operations = []
