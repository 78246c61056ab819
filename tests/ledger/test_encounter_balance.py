"""A date of service's balance and "payable", one definition twice (issue 10): the ORM's
(`EncounterQuerySet`, `Encounter.balance`) and the SQL text the raw SQL formats in
(`ledger.sql`) give the same answer for every kind of encounter; and the trigger migration's copy
of the SQL is still the definition (changing it needs a new trigger migration)."""

import importlib
import itertools

import pytest
from django.db import connection

from credits import core
from ledger.models import Claim, Encounter
from ledger.sql import ENCOUNTER_BALANCE_SQL, ENCOUNTER_OPEN_CLAIM_SQL, ENCOUNTER_PAYABLE_SQL, OPEN_CLAIM_STATES_SQL
from tests.factories import PatientFactory, PayerFactory, PracticeFactory

pytestmark = [pytest.mark.django_db, pytest.mark.unbooked]  # rows of every shape, no journal

# (estimated PR, remittance PR, applied, written off)
AMOUNTS = [("20.00", None, "0.00", "0.00"), ("20.00", None, "15.00", "5.00"), ("50.00", "35.00", "10.00", "0.00"),
           ("50.00", "0.00", "0.00", "0.00"), ("0.00", "120.00", "100.00", "7.50"), ("30.00", "30.00", "30.00", "0.00")]
# the states of the claims on one encounter
CLAIMS = [(), ("submitted",), ("pending",), ("paid",), ("denied",), ("resubmitted",), ("forwarded",), ("reversed",),
          ("paid", "submitted"), ("denied", "paid"), ("paid", "reversed")]


@pytest.fixture
def mix():
    practice = PracticeFactory()
    patient = PatientFactory(practice=practice)
    payer = PayerFactory(practice=practice)
    claims, n = [], 0
    for (est, rem, applied, off), states in itertools.product(AMOUNTS, CLAIMS):
        enc = Encounter.objects.create(practice=practice, patient=patient, date_of_service="2026-01-05",
                                       estimated_pr=est, remittance_pr=rem, applied_amount=applied,
                                       written_off_amount=off)
        for state in states:
            n += 1
            claims.append(Claim(practice=practice, encounter=enc, payer=payer, claim_number=f"C-{n}", state=state))
    Claim.objects.bulk_create(claims)
    return patient


def by_sql() -> dict:
    with connection.cursor() as cur:
        cur.execute(f"""SELECT e.id, {ENCOUNTER_BALANCE_SQL.format(e="e")}, {ENCOUNTER_PAYABLE_SQL.format(e="e")},
                               {ENCOUNTER_OPEN_CLAIM_SQL.format(e="e")}
                          FROM ledger_encounter e""")
        return {pk: (bal, payable, waits) for pk, bal, payable, waits in cur.fetchall()}


def test_the_orm_and_the_sql_agree_on_balance_and_payable(mix):
    sql = by_sql()
    orm = {e.pk: e for e in Encounter.objects.with_balance()}
    assert len(orm) == len(AMOUNTS) * len(CLAIMS) == len(sql)
    assert any(payable for _, payable, _ in sql.values()) and not all(payable for _, payable, _ in sql.values())
    for pk, e in orm.items():
        bal, payable, waits = sql[pk]
        assert e.bal == e.balance == bal, pk  # the annotation, the loaded row's property, the SQL
        assert (not e.has_open_claim, e.has_open_claim) == (payable, waits), pk
        assert core.encounter_payable(e) is payable
        expected_open = any(c.state in Claim.OPEN for c in e.claims.all())
        assert e.has_open_claim is expected_open, pk
    qs = Encounter.objects.all()
    assert set(qs.payable().values_list("pk", flat=True)) == {pk for pk, v in sql.items() if v[1]}
    assert set(qs.pending_payer().values_list("pk", flat=True)) == {pk for pk, v in sql.items() if v[2]}
    assert set(qs.due_now().values_list("pk", flat=True)) == {pk for pk, v in sql.items() if v[1] and v[0] > 0}
    assert set(qs.owing().values_list("pk", flat=True)) == {pk for pk, v in sql.items() if v[0] > 0}
    assert {e.pk: e.bal for e in qs.due_now()} == {pk: v[0] for pk, v in sql.items() if v[1] and v[0] > 0}


def test_due_now_is_oldest_first_and_sums_to_the_patients_due(mix):
    rows = list(Encounter.objects.filter(patient=mix).due_now())
    assert rows == sorted(rows, key=lambda e: (e.date_of_service, e.pk))
    sql = by_sql()
    assert sum(e.bal for e in rows) == sum(v[0] for v in sql.values() if v[1]) > 0


def test_the_trigger_migration_copies_the_current_definition():
    """credits/0007 keeps its own copy of the SQL (a migration is history). If this fails, the
    definition changed: write a new migration that replaces the triggers' functions."""
    migration = importlib.import_module("credits.migrations.0007_responsibility_due_now")
    assert migration.BALANCE == ENCOUNTER_BALANCE_SQL
    assert migration.OPEN_CLAIM == ENCOUNTER_OPEN_CLAIM_SQL
    assert migration.OPEN_STATES == OPEN_CLAIM_STATES_SQL
