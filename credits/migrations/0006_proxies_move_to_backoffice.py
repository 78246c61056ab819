"""The back-office's proxy models (locked credits, refunds awaiting approval) moved to the
backoffice app (issue 10). Proxies have no table: nothing in the database changes."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('credits', '0005_duties'),
    ]

    operations = [
        migrations.DeleteModel(
            name='LockedCredit',
        ),
        migrations.DeleteModel(
            name='RefundApproval',
        ),
    ]
