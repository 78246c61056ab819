"""Separation of duties and bounded CSV imports (issue 9), the credits side:

* `ManualCreditRequest`: every manual credit is asked for first; above the practice's limit it
  waits for a manager other than the requester, and its credit is created only at approval;
* `CreditImport` gets a state (existing imports: "imported"), the importer's reason, the decision
  and a history; `CreditImportRow` keeps each validated line until its credit is created;
* a hard ceiling on single amounts (credits, refunds, write-offs), added NOT VALID like the
  payments' one (ledger 0009): rows written before are left as they are, new ones are checked;
* totals summed from many amounts (patient responsibility, an import's total, a nightly run's
  applied total) widen from NUMERIC(14,2) to NUMERIC(20,2): one credit of 999,999,999,999.99 made
  every later change of its patient overflow the totals row (increasing a numeric's precision
  rewrites nothing)."""

import django.db.models.deletion
import django.utils.timezone
import django_fsm
import simple_history.models
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('credits', '0004_backoffice'), ('ledger', '0010_dos_range'),
    ]

    operations = [
        migrations.CreateModel(
            name='CreditImportRow',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('line', models.PositiveIntegerField(help_text='Line number in the file (the header is line 1).')),
                ('amount', models.DecimalField(decimal_places=2, max_digits=14)),
                ('note', models.TextField()),
            ],
        ),
        migrations.CreateModel(
            name='HistoricalCreditImport',
            fields=[
                ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                ('filename', models.CharField(max_length=255)),
                ('sha256', models.CharField(max_length=64)),
                ('rows', models.PositiveIntegerField()),
                ('total', models.DecimalField(decimal_places=2, max_digits=20)),
                ('state', django_fsm.FSMField(choices=[('pending', "Waiting for a manager's approval"), ('imported', 'Imported'), ('rejected', 'Rejected')], default='pending', max_length=50, protected=True)),
                ('reason', models.TextField(blank=True, help_text="The importer's reason, kept in the credits' history.")),
                ('needs_approval', models.BooleanField(default=False)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('decision_note', models.TextField(blank=True)),
                ('history_change_reason', models.TextField(null=True)),
                ('history_id', models.AutoField(primary_key=True, serialize=False)),
                ('history_date', models.DateTimeField(db_index=True)),
                ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
            ],
            options={
                'verbose_name': 'historical credit import',
                'verbose_name_plural': 'historical credit imports',
                'ordering': ('-history_date', '-history_id'),
                'get_latest_by': ('history_date', 'history_id'),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.CreateModel(
            name='HistoricalManualCreditRequest',
            fields=[
                ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                ('amount', models.DecimalField(decimal_places=2, max_digits=14)),
                ('note', models.TextField(help_text='Why the credit is added; kept on the credit.')),
                ('state', django_fsm.FSMField(choices=[('pending', "Waiting for a manager's approval"), ('approved', 'Approved (credit created)'), ('rejected', 'Rejected')], default='pending', max_length=50, protected=True)),
                ('needs_approval', models.BooleanField(default=False)),
                ('requested_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('decision_note', models.TextField(blank=True)),
                ('history_change_reason', models.TextField(null=True)),
                ('history_id', models.AutoField(primary_key=True, serialize=False)),
                ('history_date', models.DateTimeField(db_index=True)),
                ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
            ],
            options={
                'verbose_name': 'historical manual credit',
                'verbose_name_plural': 'historical manual credits',
                'ordering': ('-history_date', '-history_id'),
                'get_latest_by': ('history_date', 'history_id'),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.CreateModel(
            name='ManualCreditRequest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('amount', models.DecimalField(decimal_places=2, max_digits=14)),
                ('note', models.TextField(help_text='Why the credit is added; kept on the credit.')),
                ('state', django_fsm.FSMField(choices=[('pending', "Waiting for a manager's approval"), ('approved', 'Approved (credit created)'), ('rejected', 'Rejected')], default='pending', max_length=50, protected=True)),
                ('needs_approval', models.BooleanField(default=False)),
                ('requested_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('decision_note', models.TextField(blank=True)),
            ],
            options={
                'verbose_name': 'manual credit',
            },
            bases=(django_fsm.FSMModelMixin, models.Model),
        ),
        migrations.AddField(
            model_name='creditimport',
            name='decided_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='creditimport',
            name='decided_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='creditimport',
            name='decision_note',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='creditimport',
            name='needs_approval',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='creditimport',
            name='reason',
            field=models.TextField(blank=True, help_text="The importer's reason, kept in the credits' history."),
        ),
        migrations.AddField(
            model_name='creditimport',
            name='state',
            field=django_fsm.FSMField(choices=[('pending', "Waiting for a manager's approval"), ('imported', 'Imported'), ('rejected', 'Rejected')], default='imported', max_length=50, protected=True),
        ),
        migrations.AlterField(
            model_name='creditimport',
            name='state',
            field=django_fsm.FSMField(choices=[('pending', "Waiting for a manager's approval"), ('imported', 'Imported'), ('rejected', 'Rejected')], default='pending', max_length=50, protected=True),
        ),
        migrations.AlterField(
            model_name='creditimport',
            name='total',
            field=models.DecimalField(decimal_places=2, max_digits=20),
        ),
        migrations.AlterField(
            model_name='nightlyrun',
            name='applied_total',
            field=models.DecimalField(decimal_places=2, default=Decimal('0.00'), max_digits=20),
        ),
        migrations.AlterField(
            model_name='patientresponsibility',
            name='available',
            field=models.DecimalField(decimal_places=2, default=Decimal('0.00'), help_text='Credits available (on hand).', max_digits=20),
        ),
        migrations.AlterField(
            model_name='patientresponsibility',
            name='balance_owed',
            field=models.DecimalField(decimal_places=2, default=Decimal('0.00'), help_text="Sum of the PR balances of the patient's dates of service.", max_digits=20),
        ),
        migrations.AlterField(
            model_name='patientresponsibility',
            name='locked',
            field=models.DecimalField(decimal_places=2, default=Decimal('0.00'), help_text='Credits locked to a date of service (on hand).', max_digits=20),
        ),
        migrations.AddIndex(
            model_name='creditimport',
            index=models.Index(condition=models.Q(('state', 'pending')), fields=['practice', 'created_at'], name='credit_import_pending_idx'),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name='credit',
                    constraint=models.CheckConstraint(condition=models.Q(('amount__lte', Decimal('10000000.00'))), name='credit_amount_ceiling'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE credits_credit ADD CONSTRAINT credit_amount_ceiling CHECK (amount <= 10000000.00) NOT VALID",
                    "ALTER TABLE credits_credit DROP CONSTRAINT credit_amount_ceiling",
                ),
            ],
        ),
        migrations.AddConstraint(
            model_name='creditimport',
            constraint=models.CheckConstraint(condition=models.Q(('needs_approval', False), ('decided_by__isnull', True), models.Q(('decided_by', models.F('created_by')), _negated=True), _connector='OR'), name='credit_import_four_eyes'),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name='refund',
                    constraint=models.CheckConstraint(condition=models.Q(('amount__lte', Decimal('10000000.00'))), name='refund_amount_ceiling'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE credits_refund ADD CONSTRAINT refund_amount_ceiling CHECK (amount <= 10000000.00) NOT VALID",
                    "ALTER TABLE credits_refund DROP CONSTRAINT refund_amount_ceiling",
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name='writeoff',
                    constraint=models.CheckConstraint(condition=models.Q(('amount__lte', Decimal('10000000.00'))), name='writeoff_amount_ceiling'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE credits_writeoff ADD CONSTRAINT writeoff_amount_ceiling CHECK (amount <= 10000000.00) NOT VALID",
                    "ALTER TABLE credits_writeoff DROP CONSTRAINT writeoff_amount_ceiling",
                ),
            ],
        ),
        migrations.AddField(
            model_name='creditimportrow',
            name='credit',
            field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='import_row', to='credits.credit'),
        ),
        migrations.AddField(
            model_name='creditimportrow',
            name='credit_import',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='lines', to='credits.creditimport'),
        ),
        migrations.AddField(
            model_name='creditimportrow',
            name='encounter',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.encounter'),
        ),
        migrations.AddField(
            model_name='creditimportrow',
            name='patient',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.patient'),
        ),
        migrations.AddField(
            model_name='historicalcreditimport',
            name='created_by',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='historicalcreditimport',
            name='decided_by',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='historicalcreditimport',
            name='history_user',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='historicalcreditimport',
            name='practice',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='ledger.practice'),
        ),
        migrations.AddField(
            model_name='historicalmanualcreditrequest',
            name='credit',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, help_text='The credit created at approval.', null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='credits.credit'),
        ),
        migrations.AddField(
            model_name='historicalmanualcreditrequest',
            name='decided_by',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='historicalmanualcreditrequest',
            name='encounter',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, help_text='Lock the credit to this DoS.', null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='ledger.encounter'),
        ),
        migrations.AddField(
            model_name='historicalmanualcreditrequest',
            name='history_user',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='historicalmanualcreditrequest',
            name='patient',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='ledger.patient'),
        ),
        migrations.AddField(
            model_name='historicalmanualcreditrequest',
            name='practice',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='ledger.practice'),
        ),
        migrations.AddField(
            model_name='historicalmanualcreditrequest',
            name='requested_by',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='manualcreditrequest',
            name='credit',
            field=models.OneToOneField(blank=True, help_text='The credit created at approval.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='manual_request', to='credits.credit'),
        ),
        migrations.AddField(
            model_name='manualcreditrequest',
            name='decided_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='manualcreditrequest',
            name='encounter',
            field=models.ForeignKey(blank=True, db_index=False, help_text='Lock the credit to this DoS.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.encounter'),
        ),
        migrations.AddField(
            model_name='manualcreditrequest',
            name='patient',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='manual_credit_requests', to='ledger.patient'),
        ),
        migrations.AddField(
            model_name='manualcreditrequest',
            name='practice',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.practice'),
        ),
        migrations.AddField(
            model_name='manualcreditrequest',
            name='requested_by',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddConstraint(
            model_name='creditimportrow',
            constraint=models.UniqueConstraint(fields=('credit_import', 'line'), name='credit_import_row_line_unique'),
        ),
        migrations.AddConstraint(
            model_name='creditimportrow',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gt', 0), ('amount__lte', Decimal('10000000.00'))), name='credit_import_row_amount_range'),
        ),
        migrations.AddIndex(
            model_name='manualcreditrequest',
            index=models.Index(fields=['patient', 'requested_at'], name='manual_request_window_idx'),
        ),
        migrations.AddIndex(
            model_name='manualcreditrequest',
            index=models.Index(condition=models.Q(('state', 'pending')), fields=['practice', 'requested_at'], name='manual_request_pending_idx'),
        ),
        migrations.AddConstraint(
            model_name='manualcreditrequest',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gt', 0), ('amount__lte', Decimal('10000000.00'))), name='manual_request_amount_range'),
        ),
        migrations.AddConstraint(
            model_name='manualcreditrequest',
            constraint=models.CheckConstraint(condition=models.Q(('needs_approval', False), ('decided_by__isnull', True), models.Q(('decided_by', models.F('requested_by')), _negated=True), _connector='OR'), name='manual_request_four_eyes'),
        ),
        migrations.AddConstraint(
            model_name='manualcreditrequest',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('credit__isnull', False), ('state', 'approved')), models.Q(models.Q(('state', 'approved'), _negated=True), ('credit__isnull', True)), _connector='OR'), name='manual_request_approved_iff_credit'),
        ),
        migrations.AddConstraint(
            model_name='manualcreditrequest',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('decided_at__isnull', True), ('state', 'pending')), models.Q(models.Q(('state', 'pending'), _negated=True), ('decided_at__isnull', False), ('decided_by__isnull', False)), _connector='OR'), name='manual_request_decided_has_who_and_when'),
        ),
    ]
