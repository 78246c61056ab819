"""Login throttling on the admin (issue 9, django-axes): before, 30 wrong passwords in 19 seconds and
then the right one logged in. Now 5 failures for one username from one address lock that pair for
15 minutes (the right password too), every attempt is kept and the lockout is logged; after the
cool-off the right password works again."""

import logging
from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.test import Client

from tests.api.conftest import make_api

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"


def log_in(client, username, password, address="10.0.0.7"):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_30_wrong_passwords_lock_the_login_and_the_right_one_is_refused(world, caplog):
    client = Client()
    caplog.set_level(logging.INFO)
    with time_machine.travel("2026-05-04 10:00 +0000", tick=False) as clock:
        for i in range(30):
            r = log_in(client, "boss", f"guess-{i}")
            clock.shift(timedelta(seconds=0.6))
            if i < 4:  # the first four get the login form again, with its error
                assert r.status_code == 200 and "Please enter the correct username and password" in r.text
            else:
                assert r.status_code == 429, i
        r = log_in(client, "boss", "pw")  # the right password, while locked
        assert r.status_code == 429 and not logged_in(client)
        assert "Too many failed logins" in r.text and "<strong>boss</strong>" in r.text
        assert "Try again in 15 minutes" in r.text and r["Retry-After"] == "900"

        # every attempt is kept, and the lockout is logged
        attempt = AccessAttempt.objects.get(username="boss", ip_address="10.0.0.7")
        assert attempt.failures_since_start == 31
        assert AccessFailureLog.objects.filter(username="boss").count() == 31
        assert AccessFailureLog.objects.filter(username="boss", locked_out=True).count() == 27
        assert "password=****" in attempt.post_data and "guess-" not in attempt.post_data  # never the passwords
        refusals = [r.getMessage() for r in caplog.records if r.name == "backoffice.login"]
        assert len(refusals) == 27 and "'boss' from 10.0.0.7 is locked out after 5 failed attempts" in refusals[-1]
        assert any("Locking out" in r.getMessage() for r in caplog.records if r.name.startswith("axes"))

        # the cool-off counts from the last attempt: 15 minutes of quiet, then the right password works
        clock.shift(timedelta(minutes=14))
        assert log_in(client, "boss", "pw").status_code == 429
        clock.shift(timedelta(minutes=15, seconds=1))
        r = log_in(client, "boss", "pw")
        assert r.status_code == 302 and r.url == "/admin/" and logged_in(client)
    assert AccessLog.objects.filter(username="boss").count() == 1  # the successful login
    assert not AccessAttempt.objects.filter(username="boss").exists()  # forgotten on success


def test_fewer_failures_than_the_limit_do_not_lock_and_a_success_forgets_them(world):
    client = Client()
    for i in range(4):
        assert log_in(client, "boss", f"guess-{i}").status_code == 200
    assert log_in(client, "boss", "pw").status_code == 302
    client.logout()
    for i in range(4):  # counted from zero again
        assert log_in(client, "boss", f"guess-{i}").status_code == 200
    assert log_in(client, "boss", "pw").status_code == 302


def test_the_lock_is_per_username_and_address(world):
    for i in range(5):
        log_in(Client(), "boss", f"guess-{i}", address="10.0.0.7")
    assert log_in(Client(), "boss", "pw", address="10.0.0.7").status_code == 429
    # boss from the office's address, and the clerk from the attacker's, still log in
    assert log_in(Client(), "boss", "pw", address="192.168.1.20").status_code == 302
    assert log_in(Client(), "clerk", "pw", address="10.0.0.7").status_code == 302


def test_api_tokens_are_not_throttled_by_login_failures(world):
    boss_token = make_api(world.practice, role="manager", name="boss", person=world.manager)
    for i in range(6):
        log_in(Client(), "boss", f"guess-{i}", address="127.0.0.1")
    assert log_in(Client(), "boss", "pw", address="127.0.0.1").status_code == 429
    assert boss_token.get("/token").status_code == 200
