# Placeholder filled in by the work on separation of duties (credits) (issue 9); kept in the chain so parallel work never collides.
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('credits', '0004_backoffice'), ('ledger', '0010_dos_range'),
    ]

    operations = []
