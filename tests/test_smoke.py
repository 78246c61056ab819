"""Smoke tests for the project infrastructure: settings guard rails and the PostgreSQL backend."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import close_old_connections, connection, transaction

from ledger.locks import lock
from tests.factories import PatientFactory

REPO_ROOT = Path(__file__).resolve().parent.parent


def _django_setup(**env_overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_settings_refuse_to_start_without_secret_key_when_debug_is_off():
    result = _django_setup(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="0")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_settings_start_without_secret_key_in_debug():
    result = _django_setup(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="true")

    assert result.returncode == 0, result.stderr


def test_settings_refuse_to_start_without_database_url():
    env = {"DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "1", "DATABASE_URL": ""}
    result = _django_setup(**env)

    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr


@pytest.mark.django_db
def test_database_is_postgresql():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        assert int(cursor.fetchone()[0]) >= 160000


@pytest.mark.django_db(transaction=True)
def test_select_for_update_locks_the_row():
    """The services' lock (ledger.locks.lock) really holds the row until commit: a second
    connection's FOR UPDATE NOWAIT on it fails while the transaction is open, and succeeds after."""
    patient = PatientFactory()
    other = connection.get_new_connection(connection.get_connection_params())  # a second session
    take = "SELECT id FROM ledger_patient WHERE id = %s FOR UPDATE NOWAIT"
    try:
        with transaction.atomic():
            locked = lock(patients=[patient.pk]).patients
            assert list(locked) == [patient.pk]
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute(take, [patient.pk])
            other.rollback()
        assert other.execute(take, [patient.pk]).fetchone() == (patient.pk,)
        other.rollback()
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
def test_select_for_update_blocks_a_second_connection():
    """A row locked in one connection cannot be taken with NOWAIT from another thread."""
    from django.db.utils import OperationalError

    User = get_user_model()
    user = User.objects.create_user("contended", password="x")
    outcome = {}

    def other_connection():
        try:
            with transaction.atomic():
                User.objects.select_for_update(nowait=True).get(pk=user.pk)
            outcome["error"] = None
        except OperationalError as exc:
            outcome["error"] = exc
        finally:
            close_old_connections()
            connection.close()

    with transaction.atomic():
        User.objects.select_for_update().get(pk=user.pk)
        worker = threading.Thread(target=other_connection)
        worker.start()
        worker.join(timeout=30)

    assert not worker.is_alive()
    assert isinstance(outcome["error"], OperationalError)
    assert "could not obtain lock" in str(outcome["error"])
