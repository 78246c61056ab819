# The audit trail is kept (docs/reports.md, "Retention"): no row of any django-simple-history table is
# ever deleted or changed. A trigger on each history table refuses UPDATE and DELETE (settle_refuse_change()
# is ledger's, ledger/migrations/0002_database_guards.py); TRUNCATE, which only the test database's
# teardown uses, is not a row operation. Written for the history tables that exist at this migration;
# tests/reports/test_retention.py fails when a new one lacks it.
from django.db import migrations

FORWARD = """
DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT table_name FROM information_schema.tables
              WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                AND table_name LIKE '%\\_historical%' ESCAPE '\\' ORDER BY table_name
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW '
                       'EXECUTE FUNCTION settle_refuse_change()', t || '_kept', t);
    END LOOP;
END $$;
"""

BACKWARD = """
DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT event_object_table FROM information_schema.triggers
              WHERE trigger_schema = current_schema() AND trigger_name = event_object_table || '_kept'
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_kept', t);
    END LOOP;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0002_guards"),
        ("ledger", "0014_db_defaults"),
        ("credits", "0008_adjudication_hooks"),
        ("remittances", "0001_initial"),
        ("adjudication", "0008_scan"),
        ("api", "0002_apitoken_history"),
        ("backoffice", "0001_initial"),
    ]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
