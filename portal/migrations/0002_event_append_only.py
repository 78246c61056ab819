"""Portal events are evidence: a trigger refuses UPDATE and DELETE; a statement, once issued, is
never deleted (the function is ledger's, migration 0002_database_guards)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("portal", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE TRIGGER portalevent_append_only BEFORE UPDATE OR DELETE ON portal_portalevent "
            "FOR EACH ROW EXECUTE FUNCTION settle_refuse_change();\n"
            "CREATE TRIGGER portal_statement_no_delete BEFORE DELETE ON portal_statement "
            "FOR EACH ROW EXECUTE FUNCTION settle_refuse_change();",
            "DROP TRIGGER IF EXISTS portalevent_append_only ON portal_portalevent;\n"
            "DROP TRIGGER IF EXISTS portal_statement_no_delete ON portal_statement;",
        ),
    ]
