"""Idempotency-Key: the same key and request returns the first answer and posts nothing again;
the same key with another request is refused; two requests with one key at the same moment post once."""

import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from api import idempotency
from api.models import IdempotencyRecord
from ledger.models import Patient, Payment, SandboxCharge
from ledger.processors import SandboxProcessor
from tests.api.conftest import Api, error_of

pytestmark = pytest.mark.django_db


def pay_body(patient):
    return {"patient": patient.pk, "amount": "50.00", "channel": "card_reader", "card_token": "tok_visa"}


def test_the_same_key_and_body_replays_the_first_answer(api, world):
    pat = world.patient()
    key = str(uuid.uuid4())
    first = api.post("/payments", pay_body(pat), key=key)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    again = api.post("/payments", pay_body(pat), key=key)
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.content == first.content  # byte for byte
    assert Payment.objects.filter(patient=pat).count() == 1
    assert SandboxCharge.objects.count() == 1  # the card was charged once


def test_the_same_key_with_another_body_is_refused(api, world):
    pat = world.patient()
    key = "order-4411"
    assert api.post("/payments", pay_body(pat), key=key).status_code == 201
    r = api.post("/payments", {**pay_body(pat), "amount": "60.00"}, key=key)
    assert r.status_code == 422
    assert error_of(r)["code"] == "idempotency_key_reused" and error_of(r)["field"] == "Idempotency-Key"
    r = api.post("/patients", {"account_number": "X", "first_name": "A", "last_name": "B"}, key=key)
    assert r.status_code == 422  # another path is another request too
    assert Payment.objects.filter(patient=pat).count() == 1


def test_without_a_key_each_post_runs(api, world):
    pat = world.patient()
    assert api.post("/payments", pay_body(pat)).status_code == 201
    assert api.post("/payments", pay_body(pat)).status_code == 201
    assert Payment.objects.filter(patient=pat).count() == 2


def test_errors_are_replayed_too(api, world):
    body = {"account_number": "DUP", "first_name": "A", "last_name": "B"}
    assert api.post("/patients", body).status_code == 201
    first = api.post("/patients", body, key="k-dup")
    again = api.post("/patients", body, key="k-dup")
    assert first.status_code == again.status_code == 409
    assert again["Idempotent-Replayed"] == "true" and again.content == first.content


def test_keys_belong_to_one_token(api, other_api, world):
    body = {"account_number": "SAME", "first_name": "A", "last_name": "B"}
    assert api.post("/patients", body, key="shared-key").status_code == 201
    r = other_api.post("/patients", body, key="shared-key")
    assert r.status_code == 201 and "Idempotent-Replayed" not in r
    assert Patient.objects.filter(account_number="SAME").count() == 2


def test_bad_keys_are_refused(api, world):
    for key in ("x" * 256, "two words"):
        r = api.post("/patients", {"account_number": "K", "first_name": "A", "last_name": "B"}, key=key)
        assert r.status_code == 400 and error_of(r)["field"] == "Idempotency-Key"
    assert not Patient.objects.filter(account_number="K").exists()


def test_expired_keys_can_be_used_again(api, world):
    body = {"account_number": "OLD", "first_name": "A", "last_name": "B"}
    assert api.post("/patients", body, key="old-key").status_code == 201
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    r = api.post("/patients", body, key="old-key")
    assert r.status_code == 409 and "Idempotent-Replayed" not in r  # ran again (and found the duplicate)
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert idempotency.purge_expired() == 1


@override_settings(SETTLE_API_IDEMPOTENCY_WAIT=0)
def test_a_key_still_in_progress_is_409(api, world):
    """What the second of two concurrent requests sees when the first takes longer than the wait."""
    pat = world.patient()
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from api.parsers import DecimalJSONParser

    raw = APIRequestFactory().post("/api/v1/payments", pay_body(pat), format="json")
    fp = idempotency.fingerprint(Request(raw, parsers=[DecimalJSONParser()]))
    IdempotencyRecord.objects.create(token=api.token, key="slow", fingerprint=fp, method="POST",
                                     path="/api/v1/payments")
    r = api.post("/payments", pay_body(pat), key="slow")
    assert r.status_code == 409 and error_of(r)["code"] == "idempotency_in_progress"
    assert r["Retry-After"] == "1"
    assert not Payment.objects.exists()


# --- two threads, one key, at the same moment ---------------------------------------------------------

def race(api_raw, body, key, n=2):
    """POST `body` with `key` from n threads released together; returns their responses."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        try:
            client = Api(token=None, raw=api_raw)
            barrier.wait()
            results[i] = client.post("/payments", body, key=key)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


@pytest.fixture
def slow_card(monkeypatch):
    """The card charge takes a moment, so the second request arrives while the first is still working."""
    real = SandboxProcessor.charge

    def slow(self, **kwargs):
        import time

        time.sleep(0.3)
        return real(self, **kwargs)

    monkeypatch.setattr(SandboxProcessor, "charge", slow)


@pytest.mark.django_db(transaction=True)
def test_two_threads_with_one_key_post_once_and_both_get_the_answer(api, world, slow_card):
    pat = world.patient()
    a, b = race(api.raw, pay_body(pat), key="race-1")
    assert Payment.objects.filter(patient=pat).count() == 1
    assert SandboxCharge.objects.count() == 1
    # the loser waited for the winner and replays its answer
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.content == b.content
    assert sorted(r.get("Idempotent-Replayed", "") for r in (a, b)) == ["", "true"]
    assert Payment.objects.get(patient=pat).amount == Decimal("50.00")


@pytest.mark.django_db(transaction=True)
@override_settings(SETTLE_API_IDEMPOTENCY_WAIT=0)
def test_two_threads_with_one_key_and_no_wait_post_once_and_the_loser_gets_409(api, world, slow_card):
    pat = world.patient()
    results = race(api.raw, pay_body(pat), key="race-2")
    assert sorted(r.status_code for r in results) == [201, 409]
    loser = next(r for r in results if r.status_code == 409)
    assert error_of(loser)["code"] == "idempotency_in_progress"
    assert Payment.objects.filter(patient=pat).count() == 1
    assert SandboxCharge.objects.count() == 1


# --- leases: a request that died does not hold its key for 24 hours (issue 9) -------------------------

def claim_of(api, body, key, path="/api/v1/payments"):
    """What a request with `key` holds after idempotency.begin (as the view does), without running it."""
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from api.parsers import DecimalJSONParser

    raw = APIRequestFactory().post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    request = Request(raw, parsers=[DecimalJSONParser()])
    request._authenticator, request._user, request._auth = None, api.token.user, api.token
    return idempotency.begin(request)


@override_settings(SETTLE_API_IDEMPOTENCY_WAIT=0)
def test_a_key_left_by_a_request_that_died_runs_again_after_the_lease(api, world):
    pat = world.patient()
    with time_machine.travel("2026-05-04 10:00 +0000", tick=False) as clock:
        dead = claim_of(api, pay_body(pat), "died-1")  # the process serving it was killed: nothing renews it
        dead.heartbeat.stop()
        clock.shift(timedelta(seconds=59))
        r = api.post("/payments", pay_body(pat), key="died-1")
        assert r.status_code == 409 and error_of(r)["code"] == "idempotency_in_progress"
        clock.shift(timedelta(seconds=2))  # the 60-second lease is over
        r = api.post("/payments", pay_body(pat), key="died-1")
        assert r.status_code == 201, r.content
        again = api.post("/payments", pay_body(pat), key="died-1")
        assert again["Idempotent-Replayed"] == "true" and again.content == r.content
    rec = IdempotencyRecord.objects.get(key="died-1")
    assert (rec.state, rec.attempt, rec.response_status) == ("done", 2, 201)
    assert Payment.objects.filter(patient=pat).count() == 1


@override_settings(SETTLE_API_IDEMPOTENCY_WAIT=0)
def test_a_claim_taken_over_can_no_longer_store_its_answer(api, world):
    """The first request was only slow, not dead: when it finishes after the second took its key over, its
    answer is not stored over the second's."""
    from rest_framework.response import Response

    pat = world.patient()
    with time_machine.travel("2026-05-04 10:00 +0000", tick=False) as clock:
        slow = claim_of(api, pay_body(pat), "slow-1")
        slow.heartbeat.stop()  # e.g. stuck in a lock wait while its renewals failed
        clock.shift(timedelta(seconds=61))
        r = api.post("/payments", pay_body(pat), key="slow-1")
        assert r.status_code == 201
        idempotency.finish(slow, Response({"late": True}, status=201))
    rec = IdempotencyRecord.objects.get(key="slow-1")
    assert (rec.attempt, rec.response_body) == (2, r.content.decode())


@pytest.mark.django_db(transaction=True)
@override_settings(SETTLE_API_IDEMPOTENCY_LEASE=0.6, SETTLE_API_IDEMPOTENCY_WAIT=0)
def test_a_long_request_keeps_its_key_past_the_lease_and_runs_once(api, world, monkeypatch):
    """Two threads: the first request takes 2 s (more than three leases); the second, sent after 1 s with the
    same key, must not run it again: the first renews its lease while it works."""
    import time

    real = SandboxProcessor.charge

    def slow(self, **kwargs):
        time.sleep(2)
        return real(self, **kwargs)

    monkeypatch.setattr(SandboxProcessor, "charge", slow)
    pat = world.patient()
    results = {}

    def first():
        try:
            results["first"] = Api(token=None, raw=api.raw).post("/payments", pay_body(pat), key="long-1")
        finally:
            connection.close()

    t = threading.Thread(target=first)
    t.start()
    time.sleep(1.0)
    second = Api(token=None, raw=api.raw).post("/payments", pay_body(pat), key="long-1")
    t.join(timeout=30)
    assert second.status_code == 409 and error_of(second)["code"] == "idempotency_in_progress"
    assert results["first"].status_code == 201
    rec = IdempotencyRecord.objects.get(key="long-1")
    assert (rec.state, rec.attempt) == ("done", 1)
    assert Payment.objects.filter(patient=pat).count() == 1 and SandboxCharge.objects.count() == 1
