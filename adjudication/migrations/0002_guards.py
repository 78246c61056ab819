# The case record is append-only (DOMAIN rule 15: notes, confirmations, contacts and documents are
# append-only events): triggers refuse UPDATE and DELETE of events, documents, contacts and notices,
# and DELETE of cases, proposals and unclaimed-property rows (financial records are never deleted).
# settle_refuse_change() is ledger's (ledger/migrations/0002_database_guards.py).
from django.db import migrations

APPEND_ONLY = ["adjudication_caseevent", "adjudication_casedocument", "adjudication_payercontact",
               "adjudication_patientnotice"]
NO_DELETE = ["adjudication_case", "adjudication_proposal", "adjudication_unclaimedproperty"]

FORWARD = "".join(
    f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION settle_refuse_change();\n"
    for t in APPEND_ONLY) + "".join(
    f"CREATE TRIGGER {t}_no_delete BEFORE DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION settle_refuse_change();\n"
    for t in NO_DELETE)
BACKWARD = "".join(f"DROP TRIGGER IF EXISTS {t}_append_only ON {t};\n" for t in APPEND_ONLY) + "".join(
    f"DROP TRIGGER IF EXISTS {t}_no_delete ON {t};\n" for t in NO_DELETE)


class Migration(migrations.Migration):
    dependencies = [("adjudication", "0001_initial"), ("ledger", "0002_database_guards")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
