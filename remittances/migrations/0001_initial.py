"""The remittance models, moved here from the ledger app (issue 10). State only: the tables were
created by ledger's migrations (0003, 0007) and keep their names (db_table)."""

import django.db.models.deletion
import django.utils.timezone
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('credits', '0006_proxies_move_to_backoffice'),
        ('ledger', '0011_models_move_to_remittances_and_api'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(database_operations=[], state_operations=[
            migrations.CreateModel(
                name='RemittanceAdjustment',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('code', models.CharField(max_length=8)),
                    ('reference', models.CharField(blank=True, max_length=80)),
                    ('amount', models.DecimalField(decimal_places=2, max_digits=14)),
                    ('segment', models.PositiveIntegerField()),
                    ('state', models.CharField(choices=[('pending', 'Waiting to be posted'), ('posted', 'Posted')], default='pending', max_length=16)),
                    ('note', models.TextField(blank=True)),
                    ('payer_credit', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='remittance_adjustments', to='credits.payercredit')),
                    ('practice', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.practice')),
                ],
                options={
                    'db_table': 'ledger_remittanceadjustment',
                },
            ),
            migrations.CreateModel(
                name='RemittanceClaim',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('claim_number', models.CharField(help_text='CLP01', max_length=64)),
                    ('status_code', models.CharField(help_text='CLP02', max_length=4)),
                    ('charge', models.DecimalField(decimal_places=2, max_digits=14)),
                    ('paid', models.DecimalField(decimal_places=2, max_digits=14)),
                    ('patient_responsibility', models.DecimalField(decimal_places=2, help_text='CLP05', max_digits=14)),
                    ('pr_adjustments', models.DecimalField(decimal_places=2, default=Decimal('0.00'), help_text='Sum of CAS PR amounts', max_digits=14)),
                    ('other_adjustments', models.DecimalField(decimal_places=2, default=Decimal('0.00'), help_text='Sum of CAS CO/OA/PI/CR amounts', max_digits=14)),
                    ('payer_claim_number', models.CharField(blank=True, max_length=64)),
                    ('patient_name', models.CharField(blank=True, max_length=200)),
                    ('member_id', models.CharField(blank=True, max_length=80)),
                    ('service_date', models.DateField(blank=True, null=True)),
                    ('adjustments', models.JSONField(blank=True, default=list)),
                    ('segment', models.PositiveIntegerField()),
                    ('position', models.PositiveBigIntegerField()),
                    ('state', models.CharField(choices=[('pending', 'Waiting to be posted'), ('posted', 'Posted'), ('unmatched', 'Unmatched: waiting for staff'), ('held_reversal', 'Reversal of an unknown payment: held for staff'), ('payer_credit', 'Payer overpayment: payer credit opened'), ('failed', 'Refused by a rule: waiting for staff'), ('informational', 'Informational (nothing to post)'), ('dismissed', 'Dismissed by staff: not ours (nothing posted)')], default='pending', max_length=16)),
                    ('note', models.TextField(blank=True)),
                    ('posted_at', models.DateTimeField(blank=True, null=True)),
                    ('claim', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='remittance_claims', to='ledger.claim')),
                    ('posted_by', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('practice', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.practice')),
                ],
                options={
                    'db_table': 'ledger_remittanceclaim',
                },
            ),
            migrations.CreateModel(
                name='RemittanceClaimAction',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('action', models.CharField(choices=[('matched', 'Matched by hand and posted'), ('dismissed', 'Dismissed (not ours)')], max_length=16)),
                    ('confirmed_mismatches', models.JSONField(blank=True, default=list, help_text='Payer, patient or DoS differences the user confirmed.')),
                    ('reason', models.TextField()),
                    ('at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('actor', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('claim', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.claim')),
                    ('practice', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.practice')),
                    ('remittance_claim', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='actions', to='remittances.remittanceclaim')),
                ],
                options={
                    'db_table': 'ledger_remittanceclaimaction',
                },
            ),
            migrations.CreateModel(
                name='RemittanceFile',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('filename', models.CharField(max_length=255)),
                    ('sha256', models.CharField(max_length=64)),
                    ('size', models.PositiveBigIntegerField()),
                    ('content', models.BinaryField(help_text='The file as received, byte for byte; of a refused file only its first 64 KiB (remittances.posting.REFUSED_KEEP_BYTES), of a duplicate nothing (see duplicate_of). `size` is always the size received.')),
                    ('status', models.CharField(choices=[('received', 'Received, waiting to be posted'), ('posted', 'Posted'), ('duplicate', 'Duplicate (nothing posted)'), ('refused', 'Refused (unreadable)')], max_length=16)),
                    ('transaction_count', models.PositiveIntegerField(default=0)),
                    ('claim_count', models.PositiveIntegerField(default=0, help_text='CLP segments read in the 835 sets.')),
                    ('paid_total', models.DecimalField(decimal_places=2, default=Decimal('0.00'), help_text='Sum of BPR02 (signed by BPR03).', max_digits=14)),
                    ('plb_total', models.DecimalField(decimal_places=2, default=Decimal('0.00'), max_digits=14)),
                    ('skipped_transactions', models.PositiveIntegerField(default=0, help_text='Other transaction types (837, 278...).')),
                    ('duplicate_transactions', models.PositiveIntegerField(default=0)),
                    ('warnings', models.JSONField(blank=True, default=list)),
                    ('errors', models.JSONField(blank=True, default=list)),
                    ('received_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('posted_at', models.DateTimeField(blank=True, null=True)),
                    ('duplicate_of', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='remittances.remittancefile')),
                    ('practice', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='remittance_files', to='ledger.practice')),
                    ('received_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'ledger_remittancefile',
                },
            ),
            migrations.AddField(
                model_name='remittanceclaim',
                name='file',
                field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='claims', to='remittances.remittancefile'),
            ),
            migrations.CreateModel(
                name='RemittanceBooking',
                fields=[
                    ('entry', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, primary_key=True, related_name='remittance_booking', serialize=False, to='ledger.journalentry')),
                    ('kind', models.CharField(help_text="The entry's kind (payer payment, payer credit, ...).", max_length=32)),
                    ('adjustment', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='bookings', to='remittances.remittanceadjustment')),
                    ('remittance_claim', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='bookings', to='remittances.remittanceclaim')),
                    ('file', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='bookings', to='remittances.remittancefile')),
                ],
                options={
                    'db_table': 'ledger_remittancebooking',
                },
            ),
            migrations.CreateModel(
                name='RemittanceTransaction',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('sender_id', models.CharField(blank=True, help_text='ISA06', max_length=40)),
                    ('interchange_control', models.CharField(blank=True, help_text='ISA13', max_length=20)),
                    ('control_number', models.CharField(blank=True, help_text='ST02', max_length=20)),
                    ('trace_number', models.CharField(blank=True, help_text='TRN02: check or EFT number', max_length=80)),
                    ('payer_name', models.CharField(blank=True, max_length=200)),
                    ('payer_identifier', models.CharField(blank=True, max_length=80)),
                    ('payment_method', models.CharField(blank=True, max_length=8)),
                    ('payment_date', models.DateField(blank=True, null=True)),
                    ('total_paid', models.DecimalField(decimal_places=2, default=Decimal('0.00'), max_digits=14)),
                    ('plb_total', models.DecimalField(decimal_places=2, default=Decimal('0.00'), max_digits=14)),
                    ('claim_count', models.PositiveIntegerField(default=0)),
                    ('segment', models.PositiveIntegerField(default=0)),
                    ('file', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='transactions', to='remittances.remittancefile')),
                    ('payer', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.payer')),
                    ('practice', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.practice')),
                ],
                options={
                    'db_table': 'ledger_remittancetransaction',
                },
            ),
            migrations.AddField(
                model_name='remittanceclaim',
                name='transaction',
                field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='claims', to='remittances.remittancetransaction'),
            ),
            migrations.AddField(
                model_name='remittanceadjustment',
                name='transaction',
                field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='adjustments', to='remittances.remittancetransaction'),
            ),
            migrations.AddIndex(
                model_name='remittancefile',
                index=models.Index(fields=['practice', 'status'], name='ledger_remi_practic_145915_idx'),
            ),
            migrations.AddConstraint(
                model_name='remittancefile',
                constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['received', 'posted'])), fields=('practice', 'sha256'), name='remittance_file_once'),
            ),
            migrations.AddConstraint(
                model_name='remittancebooking',
                constraint=models.CheckConstraint(condition=models.Q(models.Q(('adjustment__isnull', True), ('remittance_claim__isnull', False)), models.Q(('adjustment__isnull', False), ('remittance_claim__isnull', True)), _connector='OR'), name='remittance_booking_one_source'),
            ),
            migrations.AddConstraint(
                model_name='remittancebooking',
                constraint=models.UniqueConstraint(condition=models.Q(('remittance_claim__isnull', False)), fields=('remittance_claim', 'kind'), name='remittance_booking_once_per_claim'),
            ),
            migrations.AddConstraint(
                model_name='remittancebooking',
                constraint=models.UniqueConstraint(condition=models.Q(('adjustment__isnull', False)), fields=('adjustment', 'kind'), name='remittance_booking_once_per_adjustment'),
            ),
            migrations.AddConstraint(
                model_name='remittancetransaction',
                constraint=models.UniqueConstraint(fields=('practice', 'sender_id', 'interchange_control', 'trace_number', 'control_number'), name='remittance_transaction_once'),
            ),
            migrations.AddIndex(
                model_name='remittanceclaim',
                index=models.Index(fields=['practice', 'state'], name='ledger_remi_practic_4b6f9d_idx'),
            ),
            migrations.AddIndex(
                model_name='remittanceclaim',
                index=models.Index(fields=['file', 'state', 'segment'], name='ledger_remi_file_id_38cff8_idx'),
            ),
        ]),
    ]
