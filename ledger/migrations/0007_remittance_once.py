# Placeholder filled in by the work on remittances posted exactly once (issue 9); kept in the chain so parallel work never collides.
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0006_api'),
    ]

    operations = []
