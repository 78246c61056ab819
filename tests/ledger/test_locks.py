"""ledger/locks.py: the one lock order, the recorder that checks every transaction against it
(tests/lock_order.py, the autouse fixture `lock_order_recorder`), and locks that really hold."""

import threading
from datetime import date
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, transaction

from credits import services as credit_services
from credits.models import Credit
from ledger.locks import ORDER, lock, lock_ids, lock_rank_of_table, lock_sql
from tests.factories import PatientFactory
from tests.lock_order import LockOrderViolation, locked_tables, written_table


def _credit(world):
    patient = world.patient()
    c = credit_services.manual_credit_add(patient_id=patient.pk, amount="10.00", reason="Carried over from the old "
                                          "system", actor=world.clerk)
    assert isinstance(c, Credit)
    return patient, c


def _caught(recorder, exc_info) -> str:
    """A violation provoked on purpose: checked, then taken off the record (else teardown fails)."""
    recorder.violations.remove(exc_info.value)
    assert not recorder.violations
    return str(exc_info.value)


# --- the order itself --------------------------------------------------------------------------------

def test_every_kind_has_one_place_and_its_table_a_rank():
    kinds = [kind for kind, _, _ in ORDER]
    assert len(kinds) == len(set(kinds))
    assert [lock_rank_of_table(t) for t in ("ledger_practice", "ledger_membership", "reports_auditfinding",
                                            "reports_casereview", "credits_creditimport",
                                            "adjudication_case", "adjudication_proposal",
                                            "adjudication_unclaimedproperty", "portal_statement", "ledger_patient",
                                            "ledger_encounter", "credits_credit", "ledger_remittancefile")] \
        == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 15, len(ORDER) - 1]
    assert lock_rank_of_table("ledger_apitoken") is None  # locked alone (ledger/locks.py)


def test_lock_refuses_a_kind_it_does_not_know():
    with pytest.raises(TypeError, match="unknown kind"):
        lock(tokens=[1])


# --- what the recorder reads from SQL ------------------------------------------------------------------

@pytest.mark.django_db
def test_the_recorder_reads_the_tables_a_statement_locks():
    with transaction.atomic():
        django_sql = str(Credit.objects.select_for_update(no_key=True, of=("self",)).filter(pk__in=[1]).query)
        joined = str(Credit.objects.select_for_update().select_related("patient").filter(pk=1).query)
    assert locked_tables(django_sql) == ["credits_credit"]
    assert locked_tables(joined) == ["credits_credit", "ledger_patient"]  # no OF: every table of the FROM
    # a subquery locks nothing; an alias in OF names its table
    assert locked_tables("SELECT c.id FROM credits_credit c WHERE NOT EXISTS (SELECT 1 FROM ledger_claim cl "
                         "WHERE cl.id = c.id) ORDER BY c.id FOR NO KEY UPDATE") == ["credits_credit"]
    assert locked_tables("SELECT c.id FROM credits_credit c JOIN ledger_encounter e ON e.id = c.locked_encounter_id"
                         " FOR UPDATE OF e NOWAIT") == ["ledger_encounter"]
    assert locked_tables(lock_sql("encounters", alias="e", where="e.patient_id = ANY(%s)")) == ["ledger_encounter"]
    assert locked_tables("SELECT id FROM ledger_patient WHERE note = 'for update'") == []
    assert written_table('UPDATE "credits_credit" SET on_hand = 0') == ("update", "credits_credit")
    assert written_table("WITH ins AS (INSERT INTO ledger_journalentry DEFAULT VALUES RETURNING id) "
                         "INSERT INTO nightly_entries SELECT id FROM ins") == ("insert", "nightly_entries")


# --- the recorder fails a lock out of order, and only then ----------------------------------------------

@pytest.mark.django_db
def test_the_recorder_fails_a_credit_locked_before_its_patient(world, lock_order_recorder):
    patient, c = _credit(world)
    with pytest.raises(LockOrderViolation) as exc, transaction.atomic(durable=True):  # the shape of a service
        lock(credits=[c.pk])
        lock(patients=[patient.pk])
    message = _caught(lock_order_recorder, exc)
    ranks = lock_rank_of_table("ledger_patient"), lock_rank_of_table("credits_credit")
    assert ranks[0] < ranks[1]
    assert f"ledger_patient (rank {ranks[0]}) locked after credits_credit (rank {ranks[1]})" in message
    assert ("Practice -> Membership -> AuditFinding -> CaseReview -> CreditImport -> Case -> Proposal -> "
            "UnclaimedProperty -> Statement -> Patient") in message


@pytest.mark.django_db
def test_the_recorder_passes_the_documented_order(world, lock_order_recorder):
    patient, c = _credit(world)
    before = lock_order_recorder.statements
    with transaction.atomic(durable=True):
        lock(patients=[patient.pk])
        lock(credits=[c.pk])
        lock(credits=[c.pk])  # the same kind again is fine
        lock(payer_credits=[0], missing_ok=("payer_credits",))
    assert lock_order_recorder.statements - before == 4
    assert not lock_order_recorder.violations


@pytest.mark.django_db
def test_each_outermost_transaction_starts_a_new_record(world, lock_order_recorder):
    """Inside pytest-django's test transaction, each service's block is a transaction of its own."""
    patient, c = _credit(world)
    with transaction.atomic(durable=True):
        lock(credits=[c.pk])
    with transaction.atomic(durable=True):
        lock(patients=[patient.pk])
    # but a savepoint inside a transaction is the same transaction
    with pytest.raises(LockOrderViolation) as exc, transaction.atomic():
        lock(credits=[c.pk])
        with transaction.atomic():
            lock(patients=[patient.pk])
    _caught(lock_order_recorder, exc)


@pytest.mark.django_db
def test_a_set_based_update_counts_as_a_lock_of_what_it_writes(world, lock_order_recorder):
    patient, c = _credit(world)
    enc, _ = world.visit(patient, date(2025, 3, 1), claim=False)
    with transaction.atomic(), connection.cursor() as cur:  # writing rows it locked earlier: fine
        lock_ids("patients", [patient.pk])
        lock_ids("encounters", [enc.pk])
        cur.execute("UPDATE credits_credit SET note = note WHERE id = %s", [c.pk])
        cur.execute("UPDATE ledger_encounter SET applied_amount = applied_amount WHERE id = %s", [enc.pk])
    # the encounters written after the credits, never locked
    with pytest.raises(LockOrderViolation) as exc, transaction.atomic(), connection.cursor() as cur:
        lock_ids("patients", [patient.pk])
        cur.execute("UPDATE credits_credit SET note = note WHERE id = %s", [c.pk])
        cur.execute("UPDATE ledger_encounter SET applied_amount = applied_amount WHERE id = %s", [enc.pk])
    enc_rank, credit_rank = lock_rank_of_table("ledger_encounter"), lock_rank_of_table("credits_credit")
    assert f"ledger_encounter (rank {enc_rank}) locked after credits_credit (rank {credit_rank})" \
        in _caught(lock_order_recorder, exc)


@pytest.mark.django_db
def test_rows_outside_the_order_are_locked_alone(world, lock_order_recorder):
    patient = world.patient()
    with transaction.atomic():
        connection.cursor().execute("SELECT id FROM auth_user WHERE id = %s FOR UPDATE", [world.clerk.pk])
    with pytest.raises(LockOrderViolation) as exc, transaction.atomic():
        lock(patients=[patient.pk])
        connection.cursor().execute("SELECT id FROM auth_user WHERE id = %s FOR UPDATE", [world.clerk.pk])
    assert "locked alone" in _caught(lock_order_recorder, exc)


@pytest.mark.django_db(transaction=True)
def test_the_recorder_sees_the_locks_of_other_threads(lock_order_recorder):
    """Race tests run services in threads, each on its own connection; a violation there is kept
    even when the thread swallows it (the fixture then fails the test at teardown)."""
    patient = PatientFactory()
    swallowed = []

    def out_of_order():
        try:
            with transaction.atomic(durable=True):
                lock(credits=[0], missing_ok=("credits",))
                lock(patients=[patient.pk])
        except LockOrderViolation as exc:
            swallowed.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=out_of_order)
    worker.start()
    worker.join(timeout=30)
    assert len(swallowed) == 1 and lock_order_recorder.violations == swallowed
    assert "in thread" in str(swallowed[0]) and worker.name in str(swallowed[0])
    lock_order_recorder.violations.clear()


@pytest.mark.django_db
def test_the_recorder_sees_the_services_locks(world, lock_order_recorder):
    patient, _ = _credit(world)
    _, claim = world.visit(patient, date(2025, 3, 1), charge="100.00")
    world.remit(claim, pr="40.00", paid="60.00")
    before = lock_order_recorder.statements
    result = credit_services.credits_apply(patient_id=patient.pk, actor=world.clerk, reason="By hand",
                                           respect_settings=False)
    assert result.total == Decimal("10.00")
    assert lock_order_recorder.statements - before >= 3  # patient, encounters, credits


# --- the locks hold: a second session cannot take the row until commit ------------------------------------

def _second_session():
    return connection.get_new_connection(connection.get_connection_params())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["lock", "lock_ids", "lock_sql"])
def test_a_lock_holds_the_row_until_commit(how):
    patient = PatientFactory()
    other = _second_session()
    take = "SELECT id FROM ledger_patient WHERE id = %s FOR UPDATE NOWAIT"
    try:
        with transaction.atomic():
            if how == "lock":
                assert list(lock(patients=[patient.pk]).patients) == [patient.pk]
            elif how == "lock_ids":
                assert lock_ids("patients", [patient.pk]) == {patient.pk}
            else:
                connection.cursor().execute(lock_sql("patients", where="id = %s"), [patient.pk])
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute(take, [patient.pk])
            other.rollback()
            # FOR NO KEY UPDATE: rows pointing at it can still be inserted (their FK check takes KEY SHARE)
            assert other.execute("SELECT id FROM ledger_patient WHERE id = %s FOR KEY SHARE NOWAIT",
                                 [patient.pk]).fetchone() == (patient.pk,)
            other.rollback()
        assert other.execute(take, [patient.pk]).fetchone() == (patient.pk,)
        other.rollback()
    finally:
        other.close()
