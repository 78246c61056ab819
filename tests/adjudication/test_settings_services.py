"""The settings services (adjudication/services/settings.py): clock rules, a practice's adjudication
settings, refund policies and approval bands are changed only by managers of the practice (a
general clock rule only by administrators), every value checked with its field, each change one
history row with the actor and the reason, nothing written on a refusal; a clock rule's change moves
the open cases' due dates at once. The admin forms call the same services."""

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from adjudication.clocks import refresh_clocks
from adjudication.models import AdjudicationSettings, Case, ClockRule, RefundApprovalBand, RefundPolicy
from adjudication.services import settings as svc
from credits import services as credit_services
from credits.models import Credit
from ledger.errors import Duplicate, InvalidInput, PermissionDenied
from ledger.models import Membership
from tests.factories import MembershipFactory, PatientFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db

TODAY = date(2026, 6, 15)
DETERMINED = date(2026, 6, 1)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel("2026-06-15 15:00 +0000", tick=False):
        yield


@pytest.fixture
def other(world):
    """Another practice (also in Texas) with its own manager and an open case of its own."""
    practice = PracticeFactory(name="Bayside")
    boss = MembershipFactory(practice=practice, user=UserFactory(username="b_boss"),
                             role=Membership.Role.MANAGER).user
    return practice, boss


@pytest.fixture
def root(db):
    return UserFactory(username="root", is_superuser=True)


def make_case(world, *, resolved=False) -> Case:
    pat = world.patient()
    world.pay(pat, "80.00")
    credit = Credit.objects.get(patient=pat)
    case = Case.objects.create(practice=world.practice, kind=Case.Kind.PATIENT_CREDIT,
                               cause=Case.Cause.PATIENT_OVERPAYMENT, credit=credit, patient=pat,
                               amount=credit.on_hand, determined_on=DETERMINED)
    if resolved:
        Case.objects.filter(pk=case.pk).update(state=Case.State.RESOLVED, outcome=Case.Outcome.REFUND_PATIENT,
                                               resolved_at=timezone.now())
    refresh_clocks(practice_id=world.practice.pk)
    case.refresh_from_db()
    return case


def texas_rule() -> ClockRule:
    return ClockRule.objects.get(kind=ClockRule.Kind.PATIENT_REFUND, practice__isnull=True, us_state="TX")


def last_history(model, pk):
    return model.history.filter(**{model._meta.pk.attname: pk}).latest("history_id")


# --- clock rules -------------------------------------------------------------------------------------

def test_manager_adds_a_practice_rule_with_history_and_the_open_cases_due_dates_move(world):
    case = make_case(world)
    closed = make_case(world, resolved=True)
    assert case.due_on == DETERMINED + timedelta(days=30)  # Texas's law
    rule = svc.clock_rule_create(actor=world.manager, reason="Board: refund within 20 days",
                                 practice_id=world.practice.pk, kind="patient_refund", name="Our 20 days",
                                 us_state="tx", days=20)
    assert (rule.practice_id, rule.us_state, rule.days, rule.active) == (world.practice.pk, "TX", 20, True)
    h = last_history(ClockRule, rule.pk)
    assert (h.history_type, h.history_user, h.history_change_reason) == ("+", world.manager,
                                                                         "Board: refund within 20 days")
    case.refresh_from_db()
    closed.refresh_from_db()
    assert (case.clock_rule_id, case.due_on) == (rule.pk, DETERMINED + timedelta(days=20))
    assert closed.clock_rule_id != rule.pk  # a resolved case's clock stays as it was
    ch = last_history(Case, case.pk)
    assert ch.history_user == world.manager and f"Clock rule {rule.pk}" in ch.history_change_reason

    # the manager edits it; the cases follow again; nothing changed writes nothing
    svc.clock_rule_update(rule_id=rule.pk, actor=world.manager, reason="Board: 25 days", changes={"days": 25})
    case.refresh_from_db()
    assert case.due_on == DETERMINED + timedelta(days=25)
    assert last_history(ClockRule, rule.pk).history_change_reason == "Board: 25 days"
    rows = ClockRule.history.filter(id=rule.pk).count()
    svc.clock_rule_update(rule_id=rule.pk, actor=world.manager, reason="Same", changes={"days": 25})
    assert ClockRule.history.filter(id=rule.pk).count() == rows

    # retired (never deleted): Texas's law applies again
    svc.clock_rule_update(rule_id=rule.pk, actor=world.manager, reason="Retired", changes={"active": False})
    case.refresh_from_db()
    assert ClockRule.objects.filter(pk=rule.pk, active=False).exists()
    assert (case.clock_rule_id, case.due_on) == (texas_rule().pk, DETERMINED + timedelta(days=30))


def test_billing_staff_and_another_practices_manager_are_refused(world, other):
    _, b_boss = other
    rule = svc.clock_rule_create(actor=world.manager, reason="Ours", practice_id=world.practice.pk,
                                 kind="patient_refund", name="Our 45", days=45)
    before = ClockRule.objects.count()
    for actor in (world.clerk, b_boss):
        with pytest.raises(PermissionDenied) as exc:
            svc.clock_rule_create(actor=actor, reason="x", practice_id=world.practice.pk, kind="patient_refund",
                                  name="Sneaky", days=1)
        assert exc.value.field == "practice"
        with pytest.raises(PermissionDenied):
            svc.clock_rule_update(rule_id=rule.pk, actor=actor, reason="x", changes={"days": 1})
        with pytest.raises(PermissionDenied):
            svc.adjudication_settings_update(practice_id=world.practice.pk, actor=actor, reason="x",
                                             changes={"warning_window_days": 1})
        with pytest.raises(PermissionDenied):
            svc.refund_policy_create(practice_id=world.practice.pk, actor=actor, reason="x", name="P",
                                     min_amount="1.00")
        with pytest.raises(PermissionDenied):
            svc.refund_band_create(practice_id=world.practice.pk, actor=actor, reason="x", up_to="50.00",
                                   role="billing")
    rule.refresh_from_db()
    assert rule.days == 45 and ClockRule.objects.count() == before
    assert not AdjudicationSettings.objects.filter(practice=world.practice).exists()
    assert not RefundPolicy.objects.exists() and not RefundApprovalBand.objects.exists()


def test_a_general_rule_is_refused_to_a_manager_and_changed_by_an_administrator_moving_due_dates(world, root):
    case = make_case(world)
    texas = texas_rule()
    rows = ClockRule.history.filter(id=texas.pk).count()
    with pytest.raises(PermissionDenied) as exc:
        svc.clock_rule_update(rule_id=texas.pk, actor=world.manager, reason="Ours now", changes={"days": 45})
    assert exc.value.field == "practice"
    with pytest.raises(PermissionDenied):
        svc.clock_rule_create(actor=world.manager, reason="x", practice_id=None, kind="patient_refund",
                              name="Everyone", days=10)
    texas.refresh_from_db()
    case.refresh_from_db()
    assert texas.days == 30 and ClockRule.history.filter(id=texas.pk).count() == rows
    assert case.due_on == DETERMINED + timedelta(days=30)

    svc.clock_rule_update(rule_id=texas.pk, actor=root, reason="The law changed (test)", changes={"days": 45})
    texas.refresh_from_db()
    case.refresh_from_db()
    assert texas.days == 45
    h = last_history(ClockRule, texas.pk)
    assert (h.history_user, h.history_change_reason) == (root, "The law changed (test)")
    assert case.due_on == DETERMINED + timedelta(days=45)


def test_a_general_rule_change_moves_every_practices_open_cases(world, other, root):
    practice_b, b_boss = other
    mine = make_case(world)
    pat = PatientFactory(practice=practice_b)  # a patient of Bayside, a case of its own
    credit_services.payment_record(patient_id=pat.pk, amount="40.00", channel="card_reader", card_token="tok_visa",
                                   actor=b_boss, reason="Payment at front desk")
    credit = Credit.objects.get(patient=pat)
    theirs = Case.objects.create(practice=practice_b, kind=Case.Kind.PATIENT_CREDIT,
                                 cause=Case.Cause.PATIENT_OVERPAYMENT, credit=credit, patient=pat,
                                 amount=credit.on_hand, determined_on=DETERMINED)
    svc.clock_rule_update(rule_id=texas_rule().pk, actor=root, reason="Shorter (test)", changes={"days": 10})
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.due_on == theirs.due_on == DETERMINED + timedelta(days=10)


@pytest.mark.parametrize("fields, field", [
    ({"kind": "refund_anyone", "days": 30}, "kind"),
    ({"kind": "patient_refund", "days": 0}, "days"),
    ({"kind": "patient_refund", "days": 3651}, "days"),
    ({"kind": "patient_refund"}, "days"),
    ({"kind": "patient_refund", "days": 30, "us_state": "ZZ"}, "us_state"),
    ({"kind": "payer_return", "days": 30, "payer_type": "hmo"}, "payer_type"),
    ({"kind": "patient_refund", "days": 30, "effective_from": date(2026, 3, 1), "effective_to": date(2026, 2, 1)},
     "effective_to"),
    ({"kind": "patient_refund", "days": 30, "dormancy_years": 3}, "dormancy_years"),
    ({"kind": "unclaimed_property", "dormancy_years": 3, "cutoff_month": 2, "cutoff_day": 30, "report_month": 7,
      "report_day": 1}, "cutoff_day"),
    ({"kind": "unclaimed_property", "dormancy_years": 3, "cutoff_month": 13, "cutoff_day": 1, "report_month": 7,
      "report_day": 1}, "cutoff_month"),
    ({"kind": "unclaimed_property", "dormancy_years": 3, "cutoff_month": 3, "cutoff_day": 1, "report_day": 1},
     "report_month"),
    ({"kind": "unclaimed_property", "dormancy_years": 3, "cutoff_month": 3, "cutoff_day": 1, "report_month": 7,
      "report_day": 1, "letter_month": 5}, "letter_day"),
    ({"kind": "unclaimed_property", "dormancy_years": 3, "cutoff_month": 3, "cutoff_day": 1, "report_month": 7,
      "report_day": 1, "letter_threshold": "-1.00"}, "letter_threshold"),
    ({"kind": "unclaimed_property", "dormancy_years": 3, "cutoff_month": 3, "cutoff_day": 1, "report_month": 7,
      "report_day": 1, "days": 30}, "days"),
])
def test_bad_clock_rule_values_are_refused_with_the_field(world, fields, field):
    before = ClockRule.objects.count()
    with pytest.raises(InvalidInput) as exc:
        svc.clock_rule_create(actor=world.manager, reason="x", practice_id=world.practice.pk, name="Bad", **fields)
    assert exc.value.field == field, exc.value.message
    assert ClockRule.objects.count() == before


def test_clock_rule_update_checks_the_rule_as_a_whole_and_keeps_its_practice(world):
    rule = svc.clock_rule_create(actor=world.manager, reason="x", practice_id=world.practice.pk, name="Ours",
                                 kind="patient_refund", days=30, effective_from=date(2026, 1, 1))
    with pytest.raises(InvalidInput) as exc:
        svc.clock_rule_update(rule_id=rule.pk, actor=world.manager, reason="x",
                              changes={"effective_to": date(2025, 12, 31)})
    assert exc.value.field == "effective_to"
    with pytest.raises(InvalidInput) as exc:
        svc.clock_rule_update(rule_id=rule.pk, actor=world.manager, reason="x", changes={"practice": None})
    assert exc.value.field == "practice"
    with pytest.raises(InvalidInput) as exc:
        svc.clock_rule_update(rule_id=rule.pk, actor=world.manager, reason=" ", changes={"days": 31})
    assert exc.value.field == "reason"
    rule.refresh_from_db()
    assert (rule.effective_to, rule.practice_id, rule.days) == (None, world.practice.pk, 30)
    # 29 February is a real day (leap years have it)
    leap = svc.clock_rule_create(actor=world.manager, reason="x", practice_id=world.practice.pk, name="Leap",
                                 kind="unclaimed_property", us_state="TX", dormancy_years=3, cutoff_month=2,
                                 cutoff_day=29, report_month=7, report_day=1)
    assert (leap.cutoff_month, leap.cutoff_day) == (2, 29)


# --- the practice's adjudication settings --------------------------------------------------------------

def test_settings_created_then_changed_by_a_manager_with_history(world):
    row = svc.adjudication_settings_update(practice_id=world.practice.pk, actor=world.manager, reason="Set up",
                                           changes={"warning_window_days": 10, "notice_sender": "Billing "
                                                                                                 "<billing@clinic.test>"})
    assert (row.warning_window_days, row.min_credit_age_days, row.notice_sender) == (
        10, 0, "Billing <billing@clinic.test>")
    h = last_history(AdjudicationSettings, world.practice.pk)
    assert (h.history_type, h.history_user, h.history_change_reason) == ("+", world.manager, "Set up")
    svc.adjudication_settings_update(practice_id=world.practice.pk, actor=world.manager, reason="Older first",
                                     changes={"min_credit_age_days": "3"})
    row = AdjudicationSettings.objects.get(practice=world.practice)
    assert (row.min_credit_age_days, row.warning_window_days) == (3, 10)
    h = last_history(AdjudicationSettings, world.practice.pk)
    assert (h.history_type, h.history_user, h.history_change_reason) == ("~", world.manager, "Older first")


@pytest.mark.parametrize("changes, field", [
    ({"warning_window_days": 366}, "warning_window_days"),
    ({"min_credit_age_days": -1}, "min_credit_age_days"),
    ({"locked_credit_max_days": 3651}, "locked_credit_max_days"),
    ({"payer_credit_max_open_days": "sixty"}, "payer_credit_max_open_days"),
    ({"notice_sender": "not an address"}, "notice_sender"),
    ({"notice_sender": "a@b.test\nBcc: x@y.test"}, "notice_sender"),
    ({"time_zone": "UTC"}, "time_zone"),
])
def test_bad_settings_are_refused_with_the_field(world, changes, field):
    with pytest.raises(InvalidInput) as exc:
        svc.adjudication_settings_update(practice_id=world.practice.pk, actor=world.manager, reason="x",
                                         changes=changes)
    assert exc.value.field == field
    assert not AdjudicationSettings.objects.filter(practice=world.practice).exists()


# --- refund policies and approval bands -------------------------------------------------------------------

def test_refund_policy_created_and_changed_with_history_and_checked(world):
    policy = svc.refund_policy_create(practice_id=world.practice.pk, actor=world.manager, reason="Rule 19",
                                      name="Settled patients", min_amount="1.00", max_amount="500.00",
                                      min_age_days=30)
    assert (policy.min_amount, policy.max_amount, policy.require_no_open_balance) == (D("1.00"), D("500.00"), True)
    assert last_history(RefundPolicy, policy.pk).history_change_reason == "Rule 19"
    svc.refund_policy_update(policy_id=policy.pk, actor=world.manager, reason="Wider", changes={"max_amount": None})
    policy.refresh_from_db()
    assert policy.max_amount is None
    h = last_history(RefundPolicy, policy.pk)
    assert (h.history_user, h.history_change_reason) == (world.manager, "Wider")
    for changes, field in (({"min_amount": "0.00"}, "min_amount"), ({"min_age_days": 3651}, "min_age_days"),
                           ({"max_amount": "0.50"}, "max_amount"), ({"practice": 1}, "practice")):
        with pytest.raises(InvalidInput) as exc:
            svc.refund_policy_update(policy_id=policy.pk, actor=world.manager, reason="x", changes=changes)
        assert exc.value.field == field
    with pytest.raises(InvalidInput) as exc:
        svc.refund_policy_create(practice_id=world.practice.pk, actor=world.manager, reason="x", name="Backwards",
                                 min_amount="50.00", max_amount="10.00")
    assert exc.value.field == "max_amount"
    policy.refresh_from_db()
    assert (policy.min_amount, policy.max_amount, policy.min_age_days) == (D("1.00"), None, 30)
    assert RefundPolicy.objects.count() == 1


def test_refund_bands_one_per_up_to_with_history_and_checked(world, other):
    practice_b, b_boss = other
    small = svc.refund_band_create(practice_id=world.practice.pk, actor=world.manager, reason="Bands",
                                   up_to="50.00", role="billing")
    above = svc.refund_band_create(practice_id=world.practice.pk, actor=world.manager, reason="Bands",
                                   role="manager", four_eyes=True)
    assert (above.up_to, above.role, above.four_eyes) == (None, "manager", True)
    assert last_history(RefundApprovalBand, small.pk).history_user == world.manager
    for fields in ({"up_to": "50.00", "role": "manager"}, {"role": "billing"}):
        with pytest.raises(Duplicate) as exc:
            svc.refund_band_create(practice_id=world.practice.pk, actor=world.manager, reason="x", **fields)
        assert exc.value.field == "up_to"
    # the same up_to in another practice is its own band
    svc.refund_band_create(practice_id=practice_b.pk, actor=b_boss, reason="Ours", up_to="50.00", role="billing")
    for fields, field in (({"up_to": "0.00", "role": "billing"}, "up_to"), ({"up_to": "10.00", "role": "owner"},
                                                                           "role"),
                          ({"up_to": "10.00"}, "role")):
        with pytest.raises(InvalidInput) as exc:
            svc.refund_band_create(practice_id=world.practice.pk, actor=world.manager, reason="x", **fields)
        assert exc.value.field == field
    with pytest.raises(Duplicate):
        svc.refund_band_update(band_id=small.pk, actor=world.manager, reason="x", changes={"up_to": None})
    svc.refund_band_update(band_id=small.pk, actor=world.manager, reason="Four eyes", changes={"four_eyes": True,
                                                                                               "up_to": "75.00"})
    small.refresh_from_db()
    assert (small.up_to, small.four_eyes) == (D("75.00"), True)
    assert last_history(RefundApprovalBand, small.pk).history_change_reason == "Four eyes"
    assert RefundApprovalBand.objects.filter(practice=world.practice).count() == 2


# --- the admin forms call the services ----------------------------------------------------------------------

def test_admin_clock_rule_form_shows_the_services_refusals_on_the_field_and_writes_nothing(client, world, root):
    client.force_login(world.manager)
    add = reverse("admin:adjudication_clockrule_add")
    before = ClockRule.objects.count()
    response = client.post(add, {"practice": world.practice.pk, "kind": "patient_refund", "name": "No days",
                                 "active": "on", "reason": "x"})
    assert response.status_code == 200 and "days" in response.context["adminform"].form.errors
    response = client.post(add, {"practice": "", "kind": "patient_refund", "name": "Everyone", "days": "5",
                                 "active": "on", "reason": "x"})
    assert response.status_code == 200 and "practice" in response.context["adminform"].form.errors
    assert ClockRule.objects.count() == before
    response = client.post(add, {"practice": world.practice.pk, "kind": "patient_refund", "name": "Ours",
                                 "us_state": "tx", "days": "21", "active": "on", "reason": "Board"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    rule = ClockRule.objects.get(name="Ours")
    assert (rule.us_state, rule.days, last_history(ClockRule, rule.pk).history_user) == ("TX", 21, world.manager)

    # an administrator changes a general rule in the admin: the open case's due date moves
    case = make_case(world)
    client.force_login(root)
    texas = texas_rule()
    page = client.get(reverse("admin:adjudication_clockrule_change", args=[texas.pk]))
    form = page.context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update({"days": "40", "reason": "Law (test)", "active": "on", "practice": ""})
    data = {k: v for k, v in data.items() if v is not False}
    response = client.post(reverse("admin:adjudication_clockrule_change", args=[texas.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    texas.refresh_from_db()
    assert texas.days == 40
    case.refresh_from_db()
    assert case.clock_rule_id == rule.pk  # the practice's own Texas rule still comes first
    svc.clock_rule_update(rule_id=rule.pk, actor=world.manager, reason="Retired", changes={"active": False})
    case.refresh_from_db()
    assert case.due_on == DETERMINED + timedelta(days=40)
