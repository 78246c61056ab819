"""The back-office's proxy models, moved here from the credits app (issue 10): no table."""

from django.db import migrations


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('credits', '0006_proxies_move_to_backoffice'),
    ]

    operations = [
        migrations.CreateModel(
            name='LockedCredit',
            fields=[
            ],
            options={
                'verbose_name': 'locked credit',
                'verbose_name_plural': 'locked credits',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('credits.credit',),
        ),
        migrations.CreateModel(
            name='RefundApproval',
            fields=[
            ],
            options={
                'verbose_name': 'refund awaiting approval',
                'verbose_name_plural': 'refunds awaiting approval',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('credits.refund',),
        ),
    ]
