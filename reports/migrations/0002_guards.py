# What the audits found and what was reported is evidence: runs, findings, case reviews and generated
# Medicare credit balance reports are never deleted, and a reported line is never changed (triggers;
# settle_refuse_change() is ledger's, ledger/migrations/0002_database_guards.py). Export jobs are
# temporary data (the retention job removes their files; the rows stay, marked expired).
from django.db import migrations

APPEND_ONLY = ["reports_cms838line"]
NO_DELETE = ["reports_auditrun", "reports_auditfinding", "reports_casereview", "reports_cms838report"]

FORWARD = "".join(
    f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION settle_refuse_change();\n"
    for t in APPEND_ONLY) + "".join(
    f"CREATE TRIGGER {t}_no_delete BEFORE DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION settle_refuse_change();\n"
    for t in NO_DELETE)
BACKWARD = "".join(f"DROP TRIGGER IF EXISTS {t}_append_only ON {t};\n" for t in APPEND_ONLY) + "".join(
    f"DROP TRIGGER IF EXISTS {t}_no_delete ON {t};\n" for t in NO_DELETE)


class Migration(migrations.Migration):
    dependencies = [("reports", "0001_initial"), ("ledger", "0002_database_guards")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
