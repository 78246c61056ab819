# Strict input (issue 9): dates of service, and dates of birth, within the fixed outer range of
# ledger/dates.py (1900-01-01..2199-12-31). The services check the sane range (a DoS up to today + 2
# years, a birth date up to today); a CHECK cannot use now(), so the database keeps the outer one.
import datetime

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0009_practice_duties'),
    ]

    operations = [
        migrations.AddConstraint(
            model_name='encounter',
            constraint=models.CheckConstraint(
                condition=models.Q(('date_of_service__range', (datetime.date(1900, 1, 1), datetime.date(2199, 12, 31)))),
                name='encounter_dos_in_range'),
        ),
        migrations.AddConstraint(
            model_name='patient',
            constraint=models.CheckConstraint(
                condition=models.Q(('date_of_birth__isnull', True),
                                   ('date_of_birth__range', (datetime.date(1900, 1, 1), datetime.date(2199, 12, 31))),
                                   _connector='OR'),
                name='patient_dob_in_range'),
        ),
    ]
