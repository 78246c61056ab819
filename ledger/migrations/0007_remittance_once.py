# Remittances posted exactly once (issue 9): the journal entries of every 835 posting are named in
# ledger_remittancebooking, at most one of each kind per remittance claim and per PLB adjustment;
# a posted remittance claim or adjustment never changes again; staff's manual match and dismissal
# are recorded in ledger_remittanceclaimaction. Written by hand (see docs/remittances.md).
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

FINAL_CLAIM_STATES = "'posted', 'payer_credit', 'informational', 'dismissed'"

FORWARD = f"""
CREATE OR REPLACE FUNCTION settle_refuse_final_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'settle: % #% is % and can never change again (it was posted or dismissed once)',
        TG_TABLE_NAME, OLD.id, OLD.state USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TRIGGER remittanceclaim_final BEFORE UPDATE ON ledger_remittanceclaim
    FOR EACH ROW WHEN (OLD.state IN ({FINAL_CLAIM_STATES})) EXECUTE FUNCTION settle_refuse_final_change();
CREATE TRIGGER remittanceadjustment_final BEFORE UPDATE ON ledger_remittanceadjustment
    FOR EACH ROW WHEN (OLD.state = 'posted') EXECUTE FUNCTION settle_refuse_final_change();

-- a booking names its entry's own kind (checked once per statement, not per row)
CREATE OR REPLACE FUNCTION settle_booking_kind() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE bad record;
BEGIN
    SELECT b.entry_id, b.kind, e.kind AS entry_kind INTO bad
      FROM new_bookings b JOIN ledger_journalentry e ON e.id = b.entry_id
     WHERE e.kind <> b.kind LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'settle: booking of journal entry % says kind %, the entry is %', bad.entry_id, bad.kind,
            bad.entry_kind USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER remittancebooking_kind AFTER INSERT ON ledger_remittancebooking
    REFERENCING NEW TABLE AS new_bookings FOR EACH STATEMENT EXECUTE FUNCTION settle_booking_kind();

-- both are records: never changed, never deleted
CREATE TRIGGER remittancebooking_append_only BEFORE UPDATE OR DELETE ON ledger_remittancebooking
    FOR EACH ROW EXECUTE FUNCTION settle_refuse_change();
CREATE TRIGGER remittanceclaimaction_append_only BEFORE UPDATE OR DELETE ON ledger_remittanceclaimaction
    FOR EACH ROW EXECUTE FUNCTION settle_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS remittanceclaimaction_append_only ON ledger_remittanceclaimaction;
DROP TRIGGER IF EXISTS remittancebooking_append_only ON ledger_remittancebooking;
DROP TRIGGER IF EXISTS remittancebooking_kind ON ledger_remittancebooking;
DROP FUNCTION IF EXISTS settle_booking_kind();
DROP TRIGGER IF EXISTS remittanceadjustment_final ON ledger_remittanceadjustment;
DROP TRIGGER IF EXISTS remittanceclaim_final ON ledger_remittanceclaim;
DROP FUNCTION IF EXISTS settle_refuse_final_change();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0006_api'),
    ]

    operations = [
        # speed: indexes that duplicate the composite ones (written for every claim of every file)
        migrations.AlterField(
            model_name='remittanceclaim',
            name='file',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='claims', to='ledger.remittancefile'),
        ),
        migrations.AlterField(
            model_name='remittanceclaim',
            name='posted_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='remittanceclaim',
            name='practice',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.practice'),
        ),
        migrations.AlterField(
            model_name='remittanceclaim',
            name='state',
            field=models.CharField(choices=[('pending', 'Waiting to be posted'), ('posted', 'Posted'), ('unmatched', 'Unmatched: waiting for staff'), ('held_reversal', 'Reversal of an unknown payment: held for staff'), ('payer_credit', 'Payer overpayment: payer credit opened'), ('failed', 'Refused by a rule: waiting for staff'), ('informational', 'Informational (nothing to post)'), ('dismissed', 'Dismissed by staff: not ours (nothing posted)')], default='pending', max_length=16),
        ),
        migrations.AlterField(
            model_name='remittancefile',
            name='content',
            field=models.BinaryField(help_text='The file as received, byte for byte; of a refused file only its first 64 KiB (remittances.posting.REFUSED_KEEP_BYTES), of a duplicate nothing (see duplicate_of). `size` is always the size received.'),
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
                ('remittance_claim', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='actions', to='ledger.remittanceclaim')),
            ],
        ),
        migrations.CreateModel(
            name='RemittanceBooking',
            fields=[
                ('entry', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, primary_key=True, related_name='remittance_booking', serialize=False, to='ledger.journalentry')),
                ('kind', models.CharField(help_text="The entry's kind (payer payment, payer credit, ...).", max_length=32)),
                ('adjustment', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='bookings', to='ledger.remittanceadjustment')),
                ('file', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='bookings', to='ledger.remittancefile')),
                ('remittance_claim', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='bookings', to='ledger.remittanceclaim')),
            ],
            options={
                'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('adjustment__isnull', True), ('remittance_claim__isnull', False)), models.Q(('adjustment__isnull', False), ('remittance_claim__isnull', True)), _connector='OR'), name='remittance_booking_one_source'), models.UniqueConstraint(condition=models.Q(('remittance_claim__isnull', False)), fields=('remittance_claim', 'kind'), name='remittance_booking_once_per_claim'), models.UniqueConstraint(condition=models.Q(('adjustment__isnull', False)), fields=('adjustment', 'kind'), name='remittance_booking_once_per_adjustment')],
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
