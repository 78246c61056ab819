"""The retention job (issue 12 item 5, docs/reports.md "Retention"): it purges temporary data only
(idempotency keys past their day, expired sessions, export files past SETTLE_EXPORT_KEEP_DAYS,
whose job rows stay, marked expired) and never a financial row; the database refuses deleting
financial rows and audit evidence whoever asks."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, transaction

from api.models import IdempotencyRecord
from api.tokens import api_token_create
from config.retention import purge_temporary
from config.schedules import PERIODIC
from credits.models import Credit
from ledger.models import JournalEntry, JournalLine
from reports.audits import run_audit
from reports.exports.jobs import export_start
from reports.models import AuditRun, ExportJob

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 18, tzinfo=UTC)


def counts():
    return (Credit.objects.count(), JournalEntry.objects.count(), JournalLine.objects.count(),
            AuditRun.objects.count(), ExportJob.objects.count())


def test_only_temporary_data_goes_and_the_books_stay(world, django_capture_on_commit_callbacks, settings):
    w = world
    settings.SETTLE_EXPORT_KEEP_DAYS = 30
    token = api_token_create(practice_id=w.practice.pk, role="billing", name="billing-system")[0]
    with time_machine.travel(T0, tick=False):
        w.pay(w.patient(), "40.00", channel="portal")
        run_audit(practice_id=w.practice.pk, kind="books")
        with django_capture_on_commit_callbacks(execute=True):
            old = export_start(practice_id=w.practice.pk, report="aging", format="csv", params={}, actor=w.manager)
        old_session = SessionStore()
        old_session["x"] = 1
        old_session.set_expiry(3600)
        old_session.create()
    with time_machine.travel(T0 + timedelta(days=29), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            new = export_start(practice_id=w.practice.pk, report="aging", format="csv", params={}, actor=w.manager)
        live = SessionStore()
        live.set_expiry(5 * 86400)
        live.create()
    old.refresh_from_db()
    new.refresh_from_db()
    old_name, new_name = old.file.name, new.file.name
    assert default_storage.exists(old_name) and default_storage.exists(new_name)
    IdempotencyRecord.objects.create(token=token, key="k-old", fingerprint="f", method="POST", path="/x",
                                     created_at=T0)
    IdempotencyRecord.objects.create(token=token, key="k-new", fingerprint="f", method="POST", path="/x",
                                     created_at=T0 + timedelta(days=31) - timedelta(hours=1))
    before = counts()

    with time_machine.travel(T0 + timedelta(days=31), tick=False):
        purged = purge_temporary()
        assert purge_temporary() == {"idempotency_keys": 0, "sessions": 0, "export_files": 0}  # idempotent
    assert purged["export_files"] == 1 and purged["sessions"] == 1
    assert purged["idempotency_keys"] == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["k-new"]
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.state, bool(old.file), default_storage.exists(old_name)) == ("expired", False, False)
    assert (new.state, default_storage.exists(new_name)) == ("done", True)
    assert not Session.objects.filter(session_key=old_session.session_key).exists()
    assert Session.objects.filter(session_key=live.session_key).exists()
    assert counts() == before  # no credit, journal row, audit run or export job row deleted


def test_the_job_is_in_the_registry():
    assert PERIODIC["retention-purge"][0] == "config.retention.purge_temporary"


@pytest.mark.parametrize("table", ["ledger_journalentry", "ledger_journalline", "credits_credit",
                                   "reports_auditrun"])
def test_the_database_refuses_deleting_financial_rows_and_evidence(world, table):
    w = world
    w.pay(w.patient(), "40.00", channel="portal")
    run_audit(practice_id=w.practice.pk, kind="books")
    with pytest.raises(DatabaseError, match="(?i)delete|append|never"), transaction.atomic(), \
            connection.cursor() as cur:
        cur.execute(f"DELETE FROM {table}")  # noqa: S608 - a fixed table name of the test


def test_every_history_table_refuses_update_and_delete(world):
    w = world
    w.pay(w.patient(), "40.00", channel="portal")
    with connection.cursor() as cur:
        cur.execute("""SELECT t.table_name, EXISTS (SELECT 1 FROM information_schema.triggers g
                                                     WHERE g.event_object_table = t.table_name
                                                       AND g.trigger_name = t.table_name || '_kept')
                         FROM information_schema.tables t
                        WHERE t.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
                          AND t.table_name LIKE '%\\_historical%' ESCAPE '\\'""")
        tables = dict(cur.fetchall())
    assert "credits_historicalcredit" in tables and len(tables) >= 20
    assert [t for t, kept in tables.items() if not kept] == []  # a new history table needs the trigger (0003)
    for statement in ("UPDATE credits_historicalcredit SET note = 'changed'", "DELETE FROM credits_historicalcredit"):
        with pytest.raises(DatabaseError, match="not allowed"), transaction.atomic(), connection.cursor() as cur:
            cur.execute(statement)
