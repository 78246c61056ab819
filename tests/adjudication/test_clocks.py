"""The clocks of rule 17 as data (adjudication/clocks.py and the seed of migration 0003): the rule a
case gets, the dates it gives (crossing a year, the Medicare suspension and its 180-day cap, a
rule's effective date, California's notice and election), a practice's own rule, inactive rules,
the practice's time zone, the set-based refresh against the one-case computation, and the
unclaimed-property dates of examples L."""

import importlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
import time_machine
from django.apps import apps as django_apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from adjudication import clocks
from adjudication.models import Case, ClockRule
from adjudication.scan import scan_practice
from credits import services as credit_services
from credits.models import Credit
from credits.nightly import nightly_apply
from ledger.errors import InvalidInput, NotFound
from ledger.models import Payer
from tests.factories import PayerFactory, PracticeFactory

seed_migration = importlib.import_module("adjudication.migrations.0003_clock_rules_seed")


def seeded(kind, **kw) -> ClockRule:
    return ClockRule.objects.get(kind=kind, practice__isnull=True, **kw)


def set_state(world, us_state: str):
    world.practice.us_state = us_state
    world.practice.save(update_fields=["us_state"])


def billed_credit(world, *, paid="200.00", pr="50.00", dos=date(2026, 6, 2)) -> Credit:
    """A patient credit from a visit billed to the payer: paid in full at the visit, the remittance's
    PR lower (example J's shape)."""
    pat = world.patient()
    enc, claim = world.visit(pat, dos, charge="200.00", estimated_pr=paid)
    world.pay(pat, paid, encounter=enc)
    world.remit(claim, pr=pr, paid=str(D("200.00") - D(pr)))
    nightly_apply(practice_id=world.practice.pk)  # the night releases what the visit no longer owes
    credit = Credit.objects.filter(patient=pat, state=Credit.State.AVAILABLE).get()
    assert credit.origin_encounter_id == enc.pk
    return credit


def unbilled_credit(world, amount="80.00") -> Credit:
    pat = world.patient()
    world.pay(pat, amount)
    credit = Credit.objects.filter(patient=pat).get()
    assert credit.origin_encounter_id is None
    return credit


def patient_case(world, credit, determined_on: date, *, resolved=False, **kw) -> Case:
    case = Case.objects.create(practice=world.practice, kind=Case.Kind.PATIENT_CREDIT,
                               cause=Case.Cause.PATIENT_OVERPAYMENT, credit=credit, patient=credit.patient,
                               amount=credit.on_hand, determined_on=determined_on, **kw)
    if resolved:
        Case.objects.filter(pk=case.pk).update(state=Case.State.RESOLVED, outcome=Case.Outcome.REFUND_PATIENT,
                                               resolved_at=datetime(2026, 5, 2, tzinfo=UTC))
        case.refresh_from_db()
    return case


def payer_case(world, payer, determined_on: date, amount="180.00", **kw) -> Case:
    pat = world.patient()
    _, claim = world.visit(pat, date(2026, 2, 4), charge="180.00")
    pc = credit_services.payer_credit_open(payer_id=payer.pk, amount=amount, reason_code="duplicate_payment",
                                           actor=world.clerk, reason="Paid twice", claim_id=claim.pk,
                                           payer_claim_number=f"PCN-{claim.pk}", cash_received=True)
    return Case.objects.create(practice=world.practice, kind=Case.Kind.PAYER_CREDIT, cause=Case.Cause.DUPLICATE,
                               payer_credit=pc, payer=payer, patient=pat, payer_type=payer.payer_type,
                               amount=pc.amount, determined_on=determined_on, **kw)


def clock_of(case, today):
    clocks.apply_clock(case, today=today)
    return case.clock_rule, case.due_on, case.notice_due_on, case.clock_stopped


def refreshed(case, today):
    """The same case's clock computed by the set-based refresh, read back from the row."""
    clocks.refresh_clocks(practice_id=case.practice_id, case_ids=[case.pk], today=today)
    row = Case.objects.get(pk=case.pk)
    return row.clock_rule, row.due_on, row.notice_due_on, row.clock_stopped


@pytest.fixture
def medicare(world):
    return PayerFactory(practice=world.practice, name="Medicare Part B", payer_type=Payer.Type.MEDICARE)


# --- the seed -----------------------------------------------------------------------------------------

def test_seed_has_every_rule_of_rule_17_with_its_citation_and_history(db):
    medicare = seeded("payer_return", payer_type="medicare")
    assert (medicare.days, medicare.suspension_max_days, medicare.effective_from) == (60, 180, date(2025, 1, 1))
    assert "401.305" in medicare.citation
    assert seeded("payer_return", payer_type="medicaid").suspension_max_days == 180
    assert "1320a-7k(d)" in seeded("payer_return", payer_type="medicaid").citation
    assert seeded("payer_return", payer_type="").days == 60
    tx = seeded("patient_refund", us_state="TX")
    assert (tx.days, tx.citation) == (30, "Tex. Ins. Code §1661.005")
    ca = seeded("patient_refund", us_state="CA")
    assert (ca.notice_days, ca.days, ca.election_stops_clock) == (90, 30, True)
    fl = seeded("patient_refund", us_state="FL")
    assert (fl.days, fl.effective_from, fl.billed_claims_only) == (30, date(2026, 1, 1), True)
    assert seeded("patient_refund", us_state="").days == 60
    dormancy = dict(ClockRule.objects.filter(kind="unclaimed_property").values_list("us_state", "dormancy_years"))
    assert dormancy == {"TX": 3, "CA": 3, "NY": 3, "IL": 3, "PA": 3, "MI": 3, "FL": 5, "GA": 5, "NC": 5, "OH": 5}
    texas = seeded("unclaimed_property", us_state="TX")
    assert (texas.cutoff_month, texas.cutoff_day, texas.letter_month, texas.letter_day, texas.letter_threshold,
            texas.report_month, texas.report_day) == (3, 1, 5, 1, D("250.00"), 7, 1)
    assert seeded("unclaimed_property", us_state="MI").min_amount == D("25.00")
    assert "3 to 5" in seeded("unclaimed_property", us_state="OH").note
    assert all("compliance officer" in r.note for r in ClockRule.objects.filter(kind="unclaimed_property"))
    assert all(r.citation for r in ClockRule.objects.all())
    # each seeded row has its creation on the record
    for rule in ClockRule.objects.all():
        first = rule.history.earliest("history_date")
        assert (first.history_type, first.days, first.name) == ("+", rule.days, rule.name)
        assert "0003_clock_rules_seed" in first.history_change_reason


def test_the_seed_reverses_and_reapplies(db):
    count = ClockRule.objects.count()
    # unseeding removes the seed's history rows too, which only a reverse migration may do: migrating back
    # past adjudication/0003 first reverses reports/0003, which drops the triggers that keep history
    with connection.cursor() as cur:
        cur.execute("DROP TRIGGER adjudication_historicalclockrule_kept ON adjudication_historicalclockrule")
    seed_migration.unseed(django_apps, None)
    assert ClockRule.objects.count() == 0
    # the migration's historical models send no signals; run here, the real model records the deletes
    assert set(ClockRule.history.values_list("history_type", flat=True)) == {"-"}
    seed_migration.seed(django_apps, None)
    seed_migration.seed(django_apps, None)  # a second run adds nothing
    assert ClockRule.objects.count() == count == 17


# --- patient refunds --------------------------------------------------------------------------------

def test_texas_refund_due_30_days_after_determination_crossing_a_year(world):
    case = patient_case(world, unbilled_credit(world), date(2025, 12, 15))
    rule, due, notice_due, stopped = clock_of(case, date(2025, 12, 16))
    assert (rule, due, notice_due, stopped) == (seeded("patient_refund", us_state="TX"), date(2026, 1, 14), None,
                                                False)
    assert refreshed(case, date(2025, 12, 16)) == (rule, date(2026, 1, 14), None, False)


def test_a_state_without_a_rule_gets_the_practice_default_of_60_days_crossing_a_year(world):
    set_state(world, "NV")
    case = patient_case(world, unbilled_credit(world), date(2025, 12, 15))
    assert clock_of(case, date(2025, 12, 16)) == (seeded("patient_refund", us_state=""), date(2026, 2, 13), None,
                                                  False)
    assert refreshed(case, date(2025, 12, 16))[1] == date(2026, 2, 13)


def test_florida_rule_applies_from_its_effective_date_and_to_billed_claims_only(world):
    set_state(world, "FL")
    fl, default = seeded("patient_refund", us_state="FL"), seeded("patient_refund", us_state="")
    before = patient_case(world, billed_credit(world), date(2025, 12, 31))
    on_the_day = patient_case(world, billed_credit(world), date(2026, 1, 1))
    not_billed = patient_case(world, unbilled_credit(world), date(2026, 1, 1))
    today = date(2026, 1, 2)
    assert clock_of(before, today)[:2] == (default, date(2026, 3, 1))
    assert clock_of(on_the_day, today)[:2] == (fl, date(2026, 1, 31))
    assert clock_of(not_billed, today)[:2] == (default, date(2026, 3, 2))
    assert clocks.refresh_clocks(practice_id=world.practice.pk, today=today) == 3
    assert {c.pk: (c.clock_rule, c.due_on) for c in Case.objects.all()} == {
        before.pk: (default, date(2026, 3, 1)), on_the_day.pk: (fl, date(2026, 1, 31)),
        not_billed.pk: (default, date(2026, 3, 2))}


def test_a_self_pay_claim_is_not_billed_to_an_insurer(world):
    set_state(world, "FL")
    world.payer = PayerFactory(practice=world.practice, name="Self pay", payer_type=Payer.Type.SELF_PAY)
    case = patient_case(world, billed_credit(world), date(2026, 3, 2))
    assert clock_of(case, date(2026, 3, 2))[:2] == (seeded("patient_refund", us_state=""), date(2026, 5, 1))
    assert refreshed(case, date(2026, 3, 2))[:2] == (seeded("patient_refund", us_state=""), date(2026, 5, 1))


def test_a_rule_past_its_effective_to_is_not_used(world):
    tx = seeded("patient_refund", us_state="TX")
    tx.effective_to = date(2026, 3, 31)
    tx.save()
    old = patient_case(world, unbilled_credit(world), date(2026, 3, 31))
    new = patient_case(world, unbilled_credit(world), date(2026, 4, 1))
    assert clock_of(old, date(2026, 4, 2))[:2] == (tx, date(2026, 4, 30))
    assert clock_of(new, date(2026, 4, 2))[:2] == (seeded("patient_refund", us_state=""), date(2026, 5, 31))
    assert refreshed(new, date(2026, 4, 2))[:2] == (seeded("patient_refund", us_state=""), date(2026, 5, 31))


def test_a_practice_rule_overrides_the_global_one_for_that_practice_only(world):
    """A practice's own rule for its state beats the state's (a stricter policy); its own "any
    state" rule replaces only the default of 60 days, never a state's law."""
    own = ClockRule.objects.create(kind="patient_refund", name="Our policy: 14 days", practice=world.practice,
                                   us_state="TX", days=14, citation="Practice policy")
    anywhere = ClockRule.objects.create(kind="patient_refund", name="Our policy elsewhere: 45 days",
                                        practice=world.practice, days=45, citation="Practice policy")
    case = patient_case(world, unbilled_credit(world), date(2026, 5, 1))
    assert clock_of(case, date(2026, 5, 1))[:2] == (own, date(2026, 5, 15))
    assert refreshed(case, date(2026, 5, 1))[:2] == (own, date(2026, 5, 15))
    own.active = False
    own.save()
    assert clock_of(case, date(2026, 5, 1))[:2] == (seeded("patient_refund", us_state="TX"), date(2026, 5, 31))
    assert refreshed(case, date(2026, 5, 1))[:2] == (seeded("patient_refund", us_state="TX"), date(2026, 5, 31))
    set_state(world, "WA")  # no state rule: the practice's own policy replaces the default of 60 days
    assert clock_of(case, date(2026, 5, 1))[:2] == (anywhere, date(2026, 6, 15))
    assert refreshed(case, date(2026, 5, 1))[:2] == (anywhere, date(2026, 6, 15))
    other = PracticeFactory(name="Other TX practice", us_state="TX")
    assert clocks.rule_for("patient_refund", practice=other, on=date(2026, 5, 1), us_state="TX") \
        == seeded("patient_refund", us_state="TX")


def test_an_inactive_rule_is_ignored(world):
    ClockRule.objects.filter(kind="patient_refund", us_state="TX").update(active=False)
    case = patient_case(world, unbilled_credit(world), date(2026, 5, 1))
    assert clock_of(case, date(2026, 5, 1))[:2] == (seeded("patient_refund", us_state=""), date(2026, 6, 30))
    assert refreshed(case, date(2026, 5, 1))[:2] == (seeded("patient_refund", us_state=""), date(2026, 6, 30))
    ClockRule.objects.filter(kind="patient_refund").update(active=False)
    assert clock_of(case, date(2026, 5, 1)) == (None, None, None, False)
    assert refreshed(case, date(2026, 5, 1)) == (None, None, None, False)


def test_california_notice_then_refund_and_the_keep_election_stops_the_clock(world):
    """Example K's dates: known 1 Sep, notice due 30 Nov; notice sent 5 Sep -> refund due 5 Oct;
    the patient elects to keep the credit -> the clock stops."""
    set_state(world, "CA")
    ca = seeded("patient_refund", us_state="CA")
    case = patient_case(world, unbilled_credit(world, "90.00"), date(2026, 9, 1))
    # before the notice the first deadline is the notice itself
    assert clock_of(case, date(2026, 9, 1)) == (ca, date(2026, 11, 30), date(2026, 11, 30), False)
    assert refreshed(case, date(2026, 9, 1)) == (ca, date(2026, 11, 30), date(2026, 11, 30), False)
    Case.objects.filter(pk=case.pk).update(notice_sent_on=date(2026, 9, 5))
    case.refresh_from_db()
    assert clock_of(case, date(2026, 9, 5)) == (ca, date(2026, 10, 5), date(2026, 11, 30), False)
    assert refreshed(case, date(2026, 9, 5)) == (ca, date(2026, 10, 5), date(2026, 11, 30), False)
    Case.objects.filter(pk=case.pk).update(election="keep")
    case.refresh_from_db()
    assert clock_of(case, date(2026, 9, 10)) == (ca, None, date(2026, 11, 30), True)
    assert refreshed(case, date(2026, 9, 10)) == (ca, None, date(2026, 11, 30), True)
    assert clocks.days_left(case, date(2026, 9, 10)) is None
    assert not clocks.is_flagged(case, warning_days=365, today=date(2026, 9, 10))


def test_keep_does_not_stop_a_clock_whose_rule_does_not_allow_it(world):
    case = patient_case(world, unbilled_credit(world), date(2026, 5, 1), election="keep")
    assert clock_of(case, date(2026, 5, 2)) == (seeded("patient_refund", us_state="TX"), date(2026, 5, 31), None,
                                                False)
    assert refreshed(case, date(2026, 5, 2))[1:] == (date(2026, 5, 31), None, False)


# --- payer returns -----------------------------------------------------------------------------------

def test_medicare_60_days_and_an_investigation_that_ends(world, medicare):
    """Example I's dates: identified 24 Mar -> due 23 May; investigation 25 Mar to 4 Apr -> due 3 Jun."""
    case = payer_case(world, medicare, date(2026, 3, 24))
    rule = seeded("payer_return", payer_type="medicare")
    assert clock_of(case, date(2026, 3, 24)) == (rule, date(2026, 5, 23), None, False)
    Case.objects.filter(pk=case.pk).update(investigation_started_on=date(2026, 3, 25))
    case.refresh_from_db()
    assert clock_of(case, date(2026, 3, 26)) == (rule, None, None, False)
    assert clocks.is_paused(case, date(2026, 3, 26))
    assert clocks.days_left(case, date(2026, 3, 26)) is None
    assert refreshed(case, date(2026, 3, 26)) == (rule, None, None, False)
    Case.objects.filter(pk=case.pk).update(investigation_ended_on=date(2026, 4, 4))
    case.refresh_from_db()
    assert clock_of(case, date(2026, 4, 4)) == (rule, date(2026, 6, 3), None, False)
    assert not clocks.is_paused(case, date(2026, 4, 4))
    assert refreshed(case, date(2026, 4, 4)) == (rule, date(2026, 6, 3), None, False)


def test_medicare_suspension_is_capped_at_180_days_so_240_in_all(world, medicare):
    identified = date(2026, 3, 24)
    day_180 = identified + timedelta(days=180)
    assert day_180 == date(2026, 9, 20)
    case = payer_case(world, medicare, identified, investigation_started_on=date(2026, 3, 25))
    # never ended: paused until day 180, then the 60 days run from day 180
    assert clock_of(case, day_180 - timedelta(days=1))[1] is None
    assert refreshed(case, day_180 - timedelta(days=1))[1] is None
    assert clock_of(case, day_180)[1] == date(2026, 11, 19) == identified + timedelta(days=240)
    assert refreshed(case, day_180)[1] == date(2026, 11, 19)
    # ended after day 180: still day 180 + 60
    Case.objects.filter(pk=case.pk).update(investigation_ended_on=date(2026, 10, 30))
    case.refresh_from_db()
    assert clock_of(case, date(2026, 10, 30))[1] == date(2026, 11, 19)
    assert refreshed(case, date(2026, 10, 30))[1] == date(2026, 11, 19)


def test_an_investigation_started_after_the_due_date_does_not_suspend(world, medicare):
    case = payer_case(world, medicare, date(2026, 1, 5), investigation_started_on=date(2026, 3, 10))
    assert clock_of(case, date(2026, 3, 11))[1] == date(2026, 3, 6)
    assert refreshed(case, date(2026, 3, 11))[1] == date(2026, 3, 6)


def test_medicaid_rule_and_a_commercial_payer_gets_the_practice_default(world):
    medicaid = PayerFactory(practice=world.practice, name="Medicaid", payer_type=Payer.Type.MEDICAID)
    mcd = payer_case(world, medicaid, date(2026, 2, 1))
    commercial = payer_case(world, world.payer, date(2026, 2, 1))
    assert clock_of(mcd, date(2026, 2, 1))[:2] == (seeded("payer_return", payer_type="medicaid"), date(2026, 4, 2))
    assert clock_of(commercial, date(2026, 2, 1))[:2] == (seeded("payer_return", payer_type=""), date(2026, 4, 2))
    # a commercial payer's investigation does not pause the default rule (it has no suspension)
    Case.objects.filter(pk=commercial.pk).update(investigation_started_on=date(2026, 2, 3))
    commercial.refresh_from_db()
    assert clock_of(commercial, date(2026, 2, 4))[1] == date(2026, 4, 2)
    assert refreshed(commercial, date(2026, 2, 4))[1] == date(2026, 4, 2)


def test_medicare_before_2025_falls_back_to_the_payer_default(world, medicare):
    case = payer_case(world, medicare, date(2024, 12, 31), investigation_started_on=date(2025, 1, 2))
    assert clock_of(case, date(2025, 1, 3))[:2] == (seeded("payer_return", payer_type=""), date(2025, 3, 1))


# --- days left, flag, time zone ---------------------------------------------------------------------

def test_days_left_and_the_warning_flag(world):
    case = patient_case(world, unbilled_credit(world), date(2026, 6, 20), due_on=date(2026, 7, 20))
    assert clocks.days_left(case, date(2026, 7, 15)) == 5
    assert clocks.is_flagged(case, warning_days=7, today=date(2026, 7, 15))
    assert not clocks.is_flagged(case, warning_days=4, today=date(2026, 7, 15))
    assert clocks.days_left(case, date(2026, 7, 22)) == -2
    assert clocks.is_flagged(case, warning_days=0, today=date(2026, 7, 22))  # overdue
    resolved = patient_case(world, unbilled_credit(world), date(2026, 6, 20), due_on=date(2026, 7, 20),
                            resolved=True)
    assert not clocks.is_flagged(resolved, warning_days=7, today=date(2026, 7, 15))


@time_machine.travel(datetime(2026, 6, 21, 4, 30, tzinfo=UTC), tick=False)
def test_dates_are_the_practices_calendar_day(world):
    """23:30 on 20 Jun in Chicago is already 21 Jun in UTC: the practice's day is the 20th."""
    assert world.practice.time_zone == "America/Chicago"
    assert clocks.practice_today(world.practice) == date(2026, 6, 20)
    assert clocks.practice_today(world.practice.pk) == date(2026, 6, 20)
    tokyo = PracticeFactory(name="Tokyo branch", time_zone="Asia/Tokyo")
    assert clocks.practice_today(tokyo) == date(2026, 6, 21)
    credit = unbilled_credit(world)
    assert credit.created_at.astimezone(UTC).date() == date(2026, 6, 21)
    assert clocks.local_date(world.practice, credit.created_at) == date(2026, 6, 20)
    # the clock's "today" defaults to the practice's: a Medicare suspension whose day 180 is the
    # 21st (UTC's today) is still running on the 20th in Chicago
    medicare = PayerFactory(practice=world.practice, name="Medicare", payer_type=Payer.Type.MEDICARE)
    case = payer_case(world, medicare, date(2026, 6, 21) - timedelta(days=180),
                      investigation_started_on=date(2026, 1, 2))
    clocks.apply_clock(case)
    assert case.due_on is None
    clocks.refresh_clocks(practice_id=world.practice.pk, case_ids=[case.pk])
    assert Case.objects.get(pk=case.pk).due_on is None


def test_the_scan_dates_a_late_evening_credit_by_the_practices_day(world):
    """A credit taken at 23:30 on 20 Jun in Chicago (04:30 on the 21st in UTC): the scan that night
    opens its case determined 20 Jun, due 20 Jul under the Texas rule."""
    with time_machine.travel(datetime(2026, 6, 21, 4, 30, tzinfo=UTC), tick=False):
        credit = unbilled_credit(world, "40.00")
        scan_practice(practice_id=world.practice.pk)
    case = Case.objects.get(credit=credit)
    assert (case.determined_on, case.clock_rule, case.due_on) == (
        date(2026, 6, 20), seeded("patient_refund", us_state="TX"), date(2026, 7, 20))


# --- the set-based refresh ---------------------------------------------------------------------------

def test_refresh_clocks_writes_only_changed_open_cases_in_a_fixed_number_of_queries(world, medicare):
    cases = [patient_case(world, unbilled_credit(world), date(2026, 5, d)) for d in range(1, 6)]
    cases.append(payer_case(world, medicare, date(2026, 5, 1)))
    resolved = patient_case(world, unbilled_credit(world), date(2026, 5, 1), resolved=True)
    with CaptureQueriesContext(connection) as first:
        assert clocks.refresh_clocks(practice_id=world.practice.pk, today=date(2026, 5, 6)) == 6
    assert len(first.captured_queries) == 2  # the practice, the UPDATE
    for case in cases:
        row = Case.objects.get(pk=case.pk)
        clocks.apply_clock(case, today=date(2026, 5, 6))
        assert (row.clock_rule_id, row.due_on) == (case.clock_rule.pk, case.due_on)
    assert Case.objects.get(pk=resolved.pk).due_on is None
    # nothing changed: nothing written
    assert clocks.refresh_clocks(practice_id=world.practice.pk, today=date(2026, 5, 6)) == 0
    # a rule edited by a manager moves the clocks of the cases it governs, with a history row each
    tx = seeded("patient_refund", us_state="TX")
    tx.days = 31
    tx.save()
    before = Case.history.count()
    with CaptureQueriesContext(connection) as edited:
        assert clocks.refresh_clocks(practice_id=world.practice.pk, today=date(2026, 5, 6),
                                     actor=world.manager, reason="TX rule edited") == 5
    assert len(edited.captured_queries) == 3
    assert Case.history.count() == before + 5
    last = Case.history.filter(id=cases[0].pk).latest("history_date")
    assert (last.due_on, last.history_user_id, last.history_change_reason) == (date(2026, 6, 1), world.manager.pk,
                                                                                "TX rule edited")
    assert clocks.refresh_clocks(practice_id=world.practice.pk, case_ids=[]) == 0


def test_refresh_clocks_touches_only_the_practice_and_cases_asked_for(world):
    a = patient_case(world, unbilled_credit(world), date(2026, 5, 1))
    b = patient_case(world, unbilled_credit(world), date(2026, 5, 1))
    assert clocks.refresh_clocks(practice_id=world.practice.pk, case_ids=[a.pk], today=date(2026, 5, 1)) == 1
    assert Case.objects.get(pk=a.pk).due_on == date(2026, 5, 31)
    assert Case.objects.get(pk=b.pk).due_on is None
    other = PracticeFactory(name="Someone else")
    assert clocks.refresh_clocks(practice_id=other.pk, case_ids=[b.pk], today=date(2026, 5, 1)) == 0
    assert Case.objects.get(pk=b.pk).due_on is None
    with pytest.raises(NotFound, match="unknown practice"):
        clocks.refresh_clocks(practice_id=10**9)
    with pytest.raises(InvalidInput, match="case_ids"):
        clocks.refresh_clocks(practice_id=world.practice.pk, case_ids=["x"])
    assert Case.objects.get(pk=b.pk).due_on is None


# --- unclaimed property (examples L) ------------------------------------------------------------------

def test_texas_unclaimed_dates_example_l():
    texas = ClockRule(kind="unclaimed_property", us_state="TX", dormancy_years=3, cutoff_month=3, cutoff_day=1,
                      letter_month=5, letter_day=1, letter_threshold=D("250.00"), report_month=7, report_day=1)
    small = clocks.unclaimed_dates(texas, last_activity_on=date(2023, 2, 15), amount=D("35.00"))
    assert (small.dormant_on, small.presumed_on, small.letter_due_on, small.report_due_on, small.report_year) == (
        date(2026, 2, 15), date(2026, 3, 1), None, date(2026, 7, 1), 2026)
    large = clocks.unclaimed_dates(texas, last_activity_on=date(2023, 2, 15), amount="300.00")
    assert (large.presumed_on, large.letter_due_on, large.report_due_on) == (
        date(2026, 3, 1), date(2026, 5, 1), date(2026, 7, 1))
    # dormant just after the cutoff: presumed the next year
    late = clocks.unclaimed_dates(texas, last_activity_on=date(2023, 3, 2), amount="35.00")
    assert (late.presumed_on, late.report_due_on) == (date(2027, 3, 1), date(2027, 7, 1))
    # the threshold itself needs no letter ("over $250")
    assert clocks.unclaimed_dates(texas, last_activity_on=date(2023, 2, 15), amount="250.00").letter_due_on is None


def test_seeded_unclaimed_rules_michigan_minimum_new_york_letter_the_year_before_and_leap_days(db):
    texas = clocks.unclaimed_rule_for(practice=None, owner_state="TX", on=date(2026, 3, 1))
    assert texas == seeded("unclaimed_property", us_state="TX")
    small = clocks.unclaimed_dates(texas, last_activity_on=date(2023, 2, 15), amount="35.00")
    assert (small.presumed_on, small.letter_due_on, small.report_due_on) == (date(2026, 3, 1), None, date(2026, 7, 1))
    michigan = seeded("unclaimed_property", us_state="MI")
    assert clocks.unclaimed_dates(michigan, last_activity_on=date(2022, 1, 10), amount="25.00") is None
    above = clocks.unclaimed_dates(michigan, last_activity_on=date(2022, 1, 10), amount="25.01")
    assert (above.presumed_on, above.letter_due_on, above.report_due_on) == (date(2025, 3, 31), None, date(2025, 7, 1))
    new_york = seeded("unclaimed_property", us_state="NY")
    ny = clocks.unclaimed_dates(new_york, last_activity_on=date(2022, 6, 1), amount="75.00")
    assert (ny.presumed_on, ny.letter_due_on, ny.report_due_on, ny.report_year) == (
        date(2025, 12, 31), date(2025, 12, 10), date(2026, 3, 10), 2026)
    leap = clocks.unclaimed_dates(texas, last_activity_on=date(2024, 2, 29), amount="35.00")
    assert (leap.dormant_on, leap.presumed_on) == (date(2027, 2, 28), date(2027, 3, 1))
    florida = seeded("unclaimed_property", us_state="FL")
    assert clocks.unclaimed_dates(florida, last_activity_on=date(2021, 3, 1), amount="60.00").presumed_on \
        == date(2026, 12, 31)
    assert clocks.unclaimed_rule_for(practice=None, owner_state="", on=date(2026, 3, 1)) is None
    assert clocks.unclaimed_rule_for(practice=None, owner_state="WY", on=date(2026, 3, 1)) is None
    assert clocks.unclaimed_dates(seeded("patient_refund", us_state="TX"), last_activity_on=date(2020, 1, 1),
                                  amount="35.00") is None
