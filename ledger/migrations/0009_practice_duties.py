# Placeholder filled in by the work on separation of duties (practice settings) (issue 9); kept in the chain so parallel work never collides.
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0008_api_token_person'),
    ]

    operations = []
