"""Issue 5, the admin back-office: the proxies of its lists, and `PatientResponsibility`, one row
per patient with the PR balance and the available and locked credit totals, kept exact by
statement-level triggers (see credits/models.py). The triggers are created before the
backfill, in the migration's transaction; their table locks hold writers off until it commits."""

import django.db.models.deletion
from decimal import Decimal
from django.db import migrations, models


ENCOUNTER_BALANCE = "COALESCE(remittance_pr, estimated_pr) - applied_amount - written_off_amount"
ON_HAND_AVAILABLE = "CASE WHEN state = 'available' THEN on_hand ELSE 0 END"
ON_HAND_LOCKED = "CASE WHEN state = 'locked' THEN on_hand ELSE 0 END"

# Each statement's changes, summed per patient, are added to the patient's row (created at the
# first change). Rows are upserted in patient order, like every other lock settle takes.
UPSERT = """
        INSERT INTO credits_patientresponsibility AS r (patient_id, practice_id, balance_owed, available, locked)
        SELECT patient_id, min(practice_id), sum(d_owed), sum(d_available), sum(d_locked)
          FROM ({changes}) d
         GROUP BY patient_id
        HAVING sum(d_owed) <> 0 OR sum(d_available) <> 0 OR sum(d_locked) <> 0
         ORDER BY patient_id
        ON CONFLICT (patient_id) DO UPDATE SET balance_owed = r.balance_owed + EXCLUDED.balance_owed,
                                               available = r.available + EXCLUDED.available,
                                               locked = r.locked + EXCLUDED.locked;
"""

ENC_NEW = (f"SELECT patient_id, practice_id, {ENCOUNTER_BALANCE} AS d_owed, 0 AS d_available, 0 AS d_locked "
           "FROM new_rows")
ENC_OLD = f"SELECT patient_id, practice_id, -({ENCOUNTER_BALANCE}), 0, 0 FROM old_rows"
CREDIT_NEW = (f"SELECT patient_id, practice_id, 0 AS d_owed, {ON_HAND_AVAILABLE} AS d_available, "
              f"{ON_HAND_LOCKED} AS d_locked FROM new_rows")
CREDIT_OLD = f"SELECT patient_id, practice_id, 0, -({ON_HAND_AVAILABLE}), -({ON_HAND_LOCKED}) FROM old_rows"


def _function(name, new, old):
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {UPSERT.format(changes=new)}
    ELSE
        {UPSERT.format(changes=new + " UNION ALL " + old)}
    END IF;
    RETURN NULL;
END $$;
"""


FORWARD = (
    _function("settle_responsibility_encounters", ENC_NEW, ENC_OLD)
    + _function("settle_responsibility_credits", CREDIT_NEW, CREDIT_OLD)
    + """
CREATE TRIGGER settle_responsibility_ins AFTER INSERT ON ledger_encounter
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION settle_responsibility_encounters();
CREATE TRIGGER settle_responsibility_upd AFTER UPDATE ON ledger_encounter
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION settle_responsibility_encounters();
CREATE TRIGGER settle_responsibility_ins AFTER INSERT ON credits_credit
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION settle_responsibility_credits();
CREATE TRIGGER settle_responsibility_upd AFTER UPDATE ON credits_credit
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION settle_responsibility_credits();
"""
    + f"""
INSERT INTO credits_patientresponsibility (patient_id, practice_id, balance_owed, available, locked)
SELECT p.id, p.practice_id, COALESCE(e.owed, 0), COALESCE(c.available, 0), COALESCE(c.locked, 0)
  FROM ledger_patient p
  LEFT JOIN (SELECT patient_id, sum({ENCOUNTER_BALANCE}) AS owed FROM ledger_encounter GROUP BY patient_id) e
         ON e.patient_id = p.id
  LEFT JOIN (SELECT patient_id, sum({ON_HAND_AVAILABLE}) AS available, sum({ON_HAND_LOCKED}) AS locked
               FROM credits_credit WHERE state IN ('available', 'locked') GROUP BY patient_id) c
         ON c.patient_id = p.id
 WHERE e.patient_id IS NOT NULL OR c.patient_id IS NOT NULL;
"""
)

BACKWARD = """
DROP TRIGGER IF EXISTS settle_responsibility_ins ON ledger_encounter;
DROP TRIGGER IF EXISTS settle_responsibility_upd ON ledger_encounter;
DROP TRIGGER IF EXISTS settle_responsibility_ins ON credits_credit;
DROP TRIGGER IF EXISTS settle_responsibility_upd ON credits_credit;
DROP FUNCTION IF EXISTS settle_responsibility_encounters();
DROP FUNCTION IF EXISTS settle_responsibility_credits();
"""


# The back-office searches patients by name and account number ("contains", like every admin
# search). Trigram indexes make that an index scan on large practices. They live on
# ledger_patient but are created here, with the pages that need them; without the pg_trgm
# extension (it ships with PostgreSQL's contrib) the searches still work, by scanning.
SEARCH_FORWARD = """
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'settle: pg_trgm is not available (%); patient searches will scan', SQLERRM;
END $$;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX IF NOT EXISTS patient_last_name_trgm ON ledger_patient
            USING gin (upper(last_name::text) gin_trgm_ops);
        CREATE INDEX IF NOT EXISTS patient_first_name_trgm ON ledger_patient
            USING gin (upper(first_name::text) gin_trgm_ops);
        CREATE INDEX IF NOT EXISTS patient_account_trgm ON ledger_patient
            USING gin (upper(account_number::text) gin_trgm_ops);
    END IF;
END $$;
"""

SEARCH_BACKWARD = """
DROP INDEX IF EXISTS patient_last_name_trgm;
DROP INDEX IF EXISTS patient_first_name_trgm;
DROP INDEX IF EXISTS patient_account_trgm;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('credits', '0003_trim_indexes'),
        ('ledger', '0005_balance_check_per_statement'),
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
        migrations.CreateModel(
            name='PatientResponsibility',
            fields=[
                ('patient', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='responsibility', serialize=False, to='ledger.patient')),
                ('balance_owed', models.DecimalField(decimal_places=2, default=Decimal('0.00'), help_text="Sum of the PR balances of the patient's dates of service.", max_digits=14)),
                ('available', models.DecimalField(decimal_places=2, default=Decimal('0.00'), help_text='Credits available (on hand).', max_digits=14)),
                ('locked', models.DecimalField(decimal_places=2, default=Decimal('0.00'), help_text='Credits locked to a date of service (on hand).', max_digits=14)),
                ('practice', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='ledger.practice')),
            ],
            options={
                'verbose_name': 'patient responsibility',
                'verbose_name_plural': 'patient responsibility',
                'indexes': [models.Index(condition=models.Q(('balance_owed__gt', 0)), fields=['practice'], include=('available', 'locked'), name='responsibility_owes_idx'), models.Index(fields=['practice', 'balance_owed'], name='responsibility_owed_idx'), models.Index(fields=['practice', 'available'], name='responsibility_available_idx'), models.Index(fields=['practice', 'locked'], name='responsibility_locked_idx')],
            },
        ),
        migrations.AddIndex(
            model_name='credit',
            index=models.Index(condition=models.Q(('state', 'locked')), fields=['practice', 'created_at', 'id'], name='credit_locked_age_idx'),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
        migrations.RunSQL(SEARCH_FORWARD, SEARCH_BACKWARD),
    ]
