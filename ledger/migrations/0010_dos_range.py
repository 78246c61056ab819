# Placeholder filled in by the work on strict input (issue 9): dates of service within a sane range.
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0009_practice_duties'),
    ]

    operations = []
