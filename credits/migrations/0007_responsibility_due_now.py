"""What a patient owes, one definition (issue 10): `PatientResponsibility.balance_owed` (every PR
balance, also of visits whose claim still waits on the payer) becomes two columns, `due_now`
(balances of dates of service with no open claim: what can be paid today) and `pending_payer`
(balances of those whose claim is still open, the estimated PR until the payer decides).

The triggers of credits/0004 are replaced: the encounters' and credits' functions write the new
columns, and new statement-level triggers on `ledger_claim` move a DoS's balance between the two
when a statement opens or closes its last open claim (claims are never deleted: ledger/0002).
The source tables are locked first, so no write lands between the backfill and the commit.

The SQL below is ledger/sql.py's ENCOUNTER_BALANCE_SQL and ENCOUNTER_OPEN_CLAIM_SQL as they were
when this was written (`Claim.OPEN`: submitted, pending, resubmitted, forwarded, reversed); a
migration is history, so it keeps its own copy (tests/ledger/test_encounter_balance.py checks the
copy still matches; a change of definition needs a new trigger migration)."""

from decimal import Decimal

from django.db import migrations, models

OPEN_STATES = "('submitted', 'pending', 'resubmitted', 'forwarded', 'reversed')"
BALANCE = "(COALESCE({e}.remittance_pr, {e}.estimated_pr) - {e}.applied_amount - {e}.written_off_amount)"
OPEN_CLAIM = ("EXISTS (SELECT 1 FROM ledger_claim open_claim WHERE open_claim.encounter_id = {e}.id"
              f" AND open_claim.state IN {OPEN_STATES})")

ON_HAND_AVAILABLE = "CASE WHEN state = 'available' THEN on_hand ELSE 0 END"
ON_HAND_LOCKED = "CASE WHEN state = 'locked' THEN on_hand ELSE 0 END"

# Each statement's changes, summed per patient, are added to the patient's row (created at the
# first change). Rows are upserted in patient order, like every other lock settle takes.
UPSERT = """
        INSERT INTO credits_patientresponsibility AS r (patient_id, practice_id, due_now, pending_payer, available,
                                                       locked)
        SELECT patient_id, min(practice_id), sum(d_due), sum(d_pending), sum(d_available), sum(d_locked)
          FROM ({changes}) d
         GROUP BY patient_id
        HAVING sum(d_due) <> 0 OR sum(d_pending) <> 0 OR sum(d_available) <> 0 OR sum(d_locked) <> 0
         ORDER BY patient_id
        ON CONFLICT (patient_id) DO UPDATE SET due_now = r.due_now + EXCLUDED.due_now,
                                               pending_payer = r.pending_payer + EXCLUDED.pending_payer,
                                               available = r.available + EXCLUDED.available,
                                               locked = r.locked + EXCLUDED.locked;
"""


def _encounter_rows(table: str, sign: str) -> str:
    """An encounter statement's rows (`new_rows` +, `old_rows` -): a balance counts as due now or
    as pending the payer by the claims as they are (an encounter statement changes no claim)."""
    return f"""SELECT patient_id, practice_id, {sign}(CASE WHEN waits THEN 0 ELSE bal END) AS d_due,
                      {sign}(CASE WHEN waits THEN bal ELSE 0 END) AS d_pending, 0 AS d_available, 0 AS d_locked
                 FROM (SELECT e.patient_id, e.practice_id, {BALANCE.format(e="e")} AS bal,
                              {OPEN_CLAIM.format(e="e")} AS waits FROM {table} e) x"""


# A claim statement changes no encounter: the balances are as they are; what changes is whether
# a claim still waits on it. Per encounter, the statement changed its number of open claims by
# `opened` (its new rows' open claims less its old rows'); it waits now if it has an open claim,
# and waited before if it had `now - opened` of them. Only an encounter that went from waiting
# to not (or back) moves its balance between due now and pending the payer. Linear in the
# statement's rows (a bulk load inserts claims by the hundred thousand).
def _claim_changes(*, update: bool) -> str:
    bal = BALANCE.format(e="e")
    changed = f"SELECT encounter_id, 1 AS delta FROM new_rows WHERE state IN {OPEN_STATES}"
    if update:
        changed += f" UNION ALL SELECT encounter_id, -1 FROM old_rows WHERE state IN {OPEN_STATES}"
    return f"""SELECT e.patient_id, e.practice_id,
                      CASE WHEN w.open_now > 0 THEN -{bal} ELSE {bal} END AS d_due,
                      CASE WHEN w.open_now > 0 THEN {bal} ELSE -{bal} END AS d_pending, 0 AS d_available, 0 AS d_locked
                 FROM (SELECT d.encounter_id, d.opened,
                              (SELECT count(*) FROM ledger_claim c WHERE c.encounter_id = d.encounter_id
                                  AND c.state IN {OPEN_STATES}) AS open_now
                         FROM (SELECT encounter_id, sum(delta) AS opened FROM ({changed}) x
                                GROUP BY encounter_id HAVING sum(delta) <> 0) d) w
                 JOIN ledger_encounter e ON e.id = w.encounter_id
                WHERE (w.open_now > 0) <> (w.open_now - w.opened > 0)"""


ENC_NEW = _encounter_rows("new_rows", "")
ENC_OLD = _encounter_rows("old_rows", "-")
CREDIT_NEW = (f"SELECT patient_id, practice_id, 0 AS d_due, 0 AS d_pending, {ON_HAND_AVAILABLE} AS d_available, "
              f"{ON_HAND_LOCKED} AS d_locked FROM new_rows")
CREDIT_OLD = f"SELECT patient_id, practice_id, 0, 0, -({ON_HAND_AVAILABLE}), -({ON_HAND_LOCKED}) FROM old_rows"


def _function(name, upsert, insert, update):
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {upsert.format(changes=insert)}
    ELSE
        {upsert.format(changes=update)}
    END IF;
    RETURN NULL;
END $$;
"""


FORWARD = (
    "LOCK TABLE ledger_encounter, ledger_claim, credits_credit, credits_patientresponsibility "
    "IN SHARE ROW EXCLUSIVE MODE;"
    + _function("settle_responsibility_encounters", UPSERT, ENC_NEW, ENC_NEW + " UNION ALL " + ENC_OLD)
    + _function("settle_responsibility_credits", UPSERT, CREDIT_NEW, CREDIT_NEW + " UNION ALL " + CREDIT_OLD)
    + _function("settle_responsibility_claims", UPSERT, _claim_changes(update=False), _claim_changes(update=True))
    + """
CREATE TRIGGER settle_responsibility_ins AFTER INSERT ON ledger_claim
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION settle_responsibility_claims();
CREATE TRIGGER settle_responsibility_upd AFTER UPDATE ON ledger_claim
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION settle_responsibility_claims();
"""
    # the new columns start at 0 (AddField); every patient with a row gets their split
    + f"""
UPDATE credits_patientresponsibility r SET due_now = o.due_now, pending_payer = o.pending_payer
  FROM (SELECT e.patient_id,
               sum(CASE WHEN {OPEN_CLAIM.format(e="e")} THEN 0 ELSE {BALANCE.format(e="e")} END) AS due_now,
               sum(CASE WHEN {OPEN_CLAIM.format(e="e")} THEN {BALANCE.format(e="e")} ELSE 0 END) AS pending_payer
          FROM ledger_encounter e GROUP BY e.patient_id) o
 WHERE o.patient_id = r.patient_id;
"""
)

# Back to credits/0004's functions (balance_owed: every PR balance, whatever the claims), recomputed.
OLD_UPSERT = """
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
OLD_ENC_NEW = (f"SELECT patient_id, practice_id, {BALANCE.format(e='n')} AS d_owed, 0 AS d_available, "
               "0 AS d_locked FROM new_rows n")
OLD_ENC_OLD = f"SELECT patient_id, practice_id, -{BALANCE.format(e='o')}, 0, 0 FROM old_rows o"
OLD_CREDIT_NEW = (f"SELECT patient_id, practice_id, 0 AS d_owed, {ON_HAND_AVAILABLE} AS d_available, "
                  f"{ON_HAND_LOCKED} AS d_locked FROM new_rows")
OLD_CREDIT_OLD = f"SELECT patient_id, practice_id, 0, -({ON_HAND_AVAILABLE}), -({ON_HAND_LOCKED}) FROM old_rows"

BACKWARD = (
    """
DROP TRIGGER IF EXISTS settle_responsibility_ins ON ledger_claim;
DROP TRIGGER IF EXISTS settle_responsibility_upd ON ledger_claim;
DROP FUNCTION IF EXISTS settle_responsibility_claims();
"""
    + _function("settle_responsibility_encounters", OLD_UPSERT, OLD_ENC_NEW, OLD_ENC_NEW + " UNION ALL " + OLD_ENC_OLD)
    + _function("settle_responsibility_credits", OLD_UPSERT, OLD_CREDIT_NEW,
                OLD_CREDIT_NEW + " UNION ALL " + OLD_CREDIT_OLD)
    + f"""
UPDATE credits_patientresponsibility r SET balance_owed = o.owed
  FROM (SELECT e.patient_id, sum({BALANCE.format(e="e")}) AS owed FROM ledger_encounter e GROUP BY e.patient_id) o
 WHERE o.patient_id = r.patient_id;
"""
)


class Migration(migrations.Migration):

    dependencies = [
        ('credits', '0006_proxies_move_to_backoffice'),
        ('ledger', '0011_models_move_to_remittances_and_api'),
    ]

    operations = [
        migrations.AddField(
            model_name='patientresponsibility',
            name='due_now',
            field=models.DecimalField(decimal_places=2, default=Decimal('0.00'), help_text="Balances of the patient's dates of service with no claim waiting on a payer.", max_digits=20),
        ),
        migrations.AddField(
            model_name='patientresponsibility',
            name='pending_payer',
            field=models.DecimalField(decimal_places=2, default=Decimal('0.00'), help_text="Balances of the patient's dates of service whose claim still waits on a payer (the estimated PR until it decides).", max_digits=20),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
        migrations.RemoveIndex(
            model_name='patientresponsibility',
            name='responsibility_owes_idx',
        ),
        migrations.RemoveIndex(
            model_name='patientresponsibility',
            name='responsibility_owed_idx',
        ),
        migrations.RemoveField(
            model_name='patientresponsibility',
            name='balance_owed',
        ),
        migrations.AddIndex(
            model_name='patientresponsibility',
            index=models.Index(condition=models.Q(('due_now__gt', 0), ('pending_payer__gt', 0), _connector='OR'), fields=['practice'], include=('available', 'locked'), name='responsibility_owes_idx'),
        ),
        migrations.AddIndex(
            model_name='patientresponsibility',
            index=models.Index(fields=['practice', 'due_now'], name='responsibility_due_now_idx'),
        ),
        migrations.AddIndex(
            model_name='patientresponsibility',
            index=models.Index(fields=['practice', 'pending_payer'], name='responsibility_pending_idx'),
        ),
    ]
