"""The journal balance check looks only at the rows of the INSERT statement: every entry's lines
must sum to zero within the statement that writes them. That is sufficient (balanced parts make
a balanced entry), never needs to read the journal (0002's join became a sequential scan of the
whole journal on large books), and settle writes each entry's lines in one statement anyway."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION settle_journal_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE bad record;
BEGIN
    SELECT entry_id, sum(amount) AS total INTO bad
      FROM new_lines GROUP BY entry_id HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'settle: journal entry % does not balance (its lines in this statement sum to %)',
            bad.entry_id, bad.total USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
"""

BACKWARD = """
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
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0004_trim_indexes")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
