"""Database guards that hold even if application code is wrong:

* the journal is append-only (UPDATE and DELETE are refused);
* every INSERT statement into the journal leaves each touched entry summing to zero (0005: checked
  on the statement's own rows);
* financial rows (payments, credits, applications, refunds, write-offs, payer credits,
  encounters, claims) are never deleted.
"""

from django.db import migrations

FINANCIAL_TABLES = [
    "ledger_payment", "ledger_encounter", "ledger_claim",
    "credits_credit", "credits_creditapplication", "credits_refund", "credits_writeoff",
    "credits_payercredit", "credits_creditimport",
]

FORWARD = """
CREATE OR REPLACE FUNCTION settle_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'settle: % on % is not allowed (financial rows are never %d; book a reversing entry)',
        TG_OP, TG_TABLE_NAME, lower(TG_OP) USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE OR REPLACE FUNCTION settle_journal_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE bad record;
BEGIN
    SELECT n.entry_id, sum(l.amount) AS total INTO bad
      FROM (SELECT DISTINCT entry_id FROM new_lines) n
      JOIN ledger_journalline l ON l.entry_id = n.entry_id
     GROUP BY n.entry_id HAVING sum(l.amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'settle: journal entry % does not balance (lines sum to %)', bad.entry_id, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER journalentry_append_only BEFORE UPDATE OR DELETE ON ledger_journalentry
    FOR EACH ROW EXECUTE FUNCTION settle_refuse_change();
CREATE TRIGGER journalline_append_only BEFORE UPDATE OR DELETE ON ledger_journalline
    FOR EACH ROW EXECUTE FUNCTION settle_refuse_change();
CREATE TRIGGER journalline_balanced AFTER INSERT ON ledger_journalline
    REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION settle_journal_balanced();
""" + "".join(
    f"CREATE TRIGGER {t}_no_delete BEFORE DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION settle_refuse_change();\n"
    for t in FINANCIAL_TABLES
)

BACKWARD = "".join(f"DROP TRIGGER IF EXISTS {t}_no_delete ON {t};\n" for t in FINANCIAL_TABLES) + """
DROP TRIGGER IF EXISTS journalline_balanced ON ledger_journalline;
DROP TRIGGER IF EXISTS journalline_append_only ON ledger_journalline;
DROP TRIGGER IF EXISTS journalentry_append_only ON ledger_journalentry;
DROP FUNCTION IF EXISTS settle_journal_balanced();
DROP FUNCTION IF EXISTS settle_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0001_initial"),
        ("credits", "0001_initial"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
