"""A request cut off by the database (issue 9): before, it got Django's HTML error page under /api/
and left its Idempotency-Key in progress, so every retry got 409 "retry shortly" for 24 hours. Now:
a JSON 503 with Retry-After, and the key does not block a retry (released at once, or, when even
that cannot reach the database, free once its lease is over).

The outage is real: the request's own PostgreSQL backend is terminated from another connection
(pg_terminate_backend) in the middle of the service; "the database stays down" is new connections
being refused until the test brings it back."""

from datetime import timedelta

import psycopg
import pytest
import time_machine
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import OperationalError, connection
from django.test import override_settings

from api import idempotency
from api.models import IdempotencyRecord
from ledger import services
from ledger.models import Patient
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"account_number": "P-1", "first_name": "Ada", "last_name": "Lovelace"}


def terminate_my_backend():
    """Kill this thread's database session from a second connection, as an outage or a failover would."""
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    db = connection.settings_dict
    with psycopg.connect(dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"],
                         port=db["PORT"] or None, autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]


@pytest.fixture
def outage(monkeypatch):
    """`outage.during_patient_create(stays_down=...)`: the backend dies inside patient_create; with stays_down,
    no new connection succeeds until `outage.end()`."""
    real = services.patient_create

    class Outage:
        down = False

        def during_patient_create(self, *, stays_down: bool):
            def cut(**kwargs):
                terminate_my_backend()
                self.down = stays_down
                return real(**kwargs)

            monkeypatch.setattr(services, "patient_create", cut)

        def end(self):
            self.down = False
            monkeypatch.setattr(services, "patient_create", real)

    o = Outage()
    real_connect = connection.get_new_connection

    def connect(params):
        if o.down:
            raise psycopg.OperationalError("connection refused: the database is down (test)")
        return real_connect(params)

    monkeypatch.setattr(connection, "get_new_connection", connect)
    yield o
    o.down = False


def test_a_request_cut_off_by_the_database_is_a_json_503_and_the_retry_runs(api, world, outage):
    outage.during_patient_create(stays_down=False)  # a failover: the next connection works
    r = api.post("/patients", BODY, key="cut-1")
    assert r.status_code == 503 and r["Content-Type"] == "application/json"
    assert error_of(r)["code"] == "unavailable" and r["Retry-After"] == "5"
    assert not Patient.objects.exists()  # the service's transaction was rolled back
    assert not IdempotencyRecord.objects.exists()  # the key was released, not answered with the failure
    outage.end()
    r = api.post("/patients", BODY, key="cut-1")
    assert r.status_code == 201 and "Idempotent-Replayed" not in r
    assert Patient.objects.filter(account_number="P-1").count() == 1
    assert IdempotencyRecord.objects.get(key="cut-1").state == "done"


@override_settings(SETTLE_API_IDEMPOTENCY_WAIT=0)
def test_when_the_database_stays_down_the_key_is_free_once_its_lease_is_over(api, world, outage):
    with time_machine.travel("2026-05-04 10:00 +0000", tick=False) as clock:
        outage.during_patient_create(stays_down=True)
        r = api.post("/patients", BODY, key="cut-2")
        # before issue 9: storing the answer failed too, and Django's HTML 500 page went out
        assert r.status_code == 503 and r["Content-Type"] == "application/json"
        assert error_of(r)["code"] == "unavailable"
        outage.end()  # the database is back; the key could not be released while it was down
        rec = IdempotencyRecord.objects.get(key="cut-2")
        assert (rec.state, rec.attempt) == ("in_progress", 1)
        clock.shift(timedelta(seconds=30))
        r = api.post("/patients", BODY, key="cut-2")
        assert r.status_code == 409 and error_of(r)["code"] == "idempotency_in_progress"  # still leased
        clock.shift(timedelta(seconds=31))  # past the 60-second lease
        r = api.post("/patients", BODY, key="cut-2")
        assert r.status_code == 201, r.content
    rec.refresh_from_db()
    assert (rec.state, rec.attempt, rec.response_status) == ("done", 2, 201)
    assert Patient.objects.filter(account_number="P-1").count() == 1


def test_a_database_error_after_the_view_is_json_and_releases_the_key(api, world, monkeypatch):
    """Raised where DRF's handler no longer catches it (after the view, storing the answer): the middleware
    answers in the shape and releases the key."""
    def broken_finish(claim, response):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(idempotency, "finish", broken_finish)
    r = api.post("/payers", {"name": "Acme", "payer_type": "commercial"}, key="after-1")
    assert r.status_code == 503 and error_of(r)["code"] == "unavailable"
    assert not IdempotencyRecord.objects.filter(key="after-1").exists()


@pytest.mark.parametrize("debug", [False, True])
def test_a_database_error_in_a_middleware_is_json_under_api_even_with_debug(api, client, monkeypatch, debug):
    """Before the view (here the session middleware), where only Django's handler sees it: with DEBUG on that
    was the HTML debug page."""
    def down(self, request):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(SessionMiddleware, "process_request", down)
    api.client.raise_request_exception = client.raise_request_exception = False
    with override_settings(DEBUG=debug):
        r = api.get("/token")
        assert r.status_code == 503 and r["Content-Type"] == "application/json" and r["Retry-After"] == "5"
        assert error_of(r)["code"] == "unavailable"
        r = client.get("/admin/login/")  # the admin keeps Django's own page
        assert r.status_code == 500 and "json" not in r["Content-Type"]


def test_a_bug_after_the_view_is_a_json_500_kept_as_the_keys_answer(api, world, monkeypatch):
    def broken_finish(claim, response):
        raise RuntimeError("bug")

    monkeypatch.setattr(idempotency, "finish", broken_finish)
    api.client.raise_request_exception = False
    r = api.post("/payers", {"name": "Acme", "payer_type": "commercial"}, key="bug-1")
    assert r.status_code == 500 and error_of(r)["code"] == "server_error"
    rec = IdempotencyRecord.objects.get(key="bug-1")
    assert (rec.state, rec.response_status, rec.response_body) == ("done", 500, r.content.decode())
