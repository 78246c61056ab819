"""Separation of duties (issue 9), practice settings: the window over which a patient's refunds and
manual credits are added up, the limit above which manual credits and CSV imports wait for a
manager, and the maximum of one money operation, capped by a hard ceiling (a CHECK). The ceiling
on payments is added NOT VALID: rows written before it are left as they are (a database built by
the previous release may hold a larger one); every new or changed row is checked."""

from decimal import Decimal

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0008_api_token_person'),
    ]

    operations = [
        migrations.AddField(
            model_name='historicalpractice',
            name='approval_window_days',
            field=models.PositiveIntegerField(default=30, help_text="A patient's refunds, and their manual and imported credits, over this many days are added up against the approval thresholds, so splitting an amount does not escape them."),
        ),
        migrations.AddField(
            model_name='historicalpractice',
            name='manual_credit_approval_limit',
            field=models.DecimalField(decimal_places=2, default='1000.00', help_text="Manual credits of a patient above this (added up over the approval window), and CSV imports whose total is above it, wait for a manager's approval.", max_digits=14),
        ),
        migrations.AddField(
            model_name='historicalpractice',
            name='max_operation_amount',
            field=models.DecimalField(decimal_places=2, default='100000.00', help_text='No single payment, credit, refund, write-off or claim result may exceed this (at most 10,000,000.00).', max_digits=14),
        ),
        migrations.AddField(
            model_name='practice',
            name='approval_window_days',
            field=models.PositiveIntegerField(default=30, help_text="A patient's refunds, and their manual and imported credits, over this many days are added up against the approval thresholds, so splitting an amount does not escape them."),
        ),
        migrations.AddField(
            model_name='practice',
            name='manual_credit_approval_limit',
            field=models.DecimalField(decimal_places=2, default='1000.00', help_text="Manual credits of a patient above this (added up over the approval window), and CSV imports whose total is above it, wait for a manager's approval.", max_digits=14),
        ),
        migrations.AddField(
            model_name='practice',
            name='max_operation_amount',
            field=models.DecimalField(decimal_places=2, default='100000.00', help_text='No single payment, credit, refund, write-off or claim result may exceed this (at most 10,000,000.00).', max_digits=14),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name='payment',
                    constraint=models.CheckConstraint(condition=models.Q(('amount__lte', Decimal('10000000.00'))), name='payment_amount_ceiling'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE ledger_payment ADD CONSTRAINT payment_amount_ceiling CHECK (amount <= 10000000.00) NOT VALID",
                    "ALTER TABLE ledger_payment DROP CONSTRAINT payment_amount_ceiling",
                ),
            ],
        ),
        migrations.AddConstraint(
            model_name='practice',
            constraint=models.CheckConstraint(condition=models.Q(('manual_credit_approval_limit__gte', 0)), name='practice_manual_credit_limit_nonneg'),
        ),
        migrations.AddConstraint(
            model_name='practice',
            constraint=models.CheckConstraint(condition=models.Q(('approval_window_days__lte', 3650)), name='practice_approval_window_range'),
        ),
        migrations.AddConstraint(
            model_name='practice',
            constraint=models.CheckConstraint(condition=models.Q(('max_operation_amount__gt', 0), ('max_operation_amount__lte', Decimal('10000000.00'))), name='practice_max_operation_amount_range'),
        ),
    ]
