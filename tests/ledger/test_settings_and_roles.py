"""Issue 10, item 3: the rules that lived only in admin forms are the services' now. Practice
settings (a real US state, an IANA time zone, the limits) through practice_create and
practice_update, which moves the nightly schedule after the commit; patient and payer edits; and
the one rule of who grants, changes and revokes staff roles. The admin and the API call these
(tests/backoffice/test_admin_services.py, tests/api/test_settings_and_roles.py)."""

from contextlib import contextmanager
from datetime import time
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django_q.models import Schedule

from api.tokens import api_token_create
from config.schedules import sync_practice
from ledger.access import role_candidates, system_user
from ledger.errors import Duplicate, InvalidInput, NotFound, PermissionDenied
from ledger.inputs import US_STATES, time_zone_name, us_state_code
from ledger.models import Membership, Patient, Practice
from ledger.services import (
    membership_grant,
    membership_revoke,
    patient_set_auto_apply,
    patient_update,
    payer_update,
    practice_create,
    practice_update,
)
from tests.factories import MembershipFactory, PatientFactory, PayerFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db


@contextmanager
def refused(exc_type, field):
    """The service refuses with `exc_type`, naming `field` (what the admin and the API show it on)."""
    with pytest.raises(exc_type) as info:
        yield info
    assert info.value.field == field, info.value.as_dict()


# --- the validators ------------------------------------------------------------------------------------------

def test_us_states_are_the_fifty_dc_and_the_territories():
    assert len(US_STATES) == 56
    assert us_state_code(" tx ") == "TX" and us_state_code("pr") == "PR" and us_state_code("DC") == "DC"
    for bad in ("ZZ", "Texas", "T", "", None, 12, "AA", "FM"):
        with refused(InvalidInput, "us_state"):
            us_state_code(bad)


def test_time_zones_are_the_tz_databases():
    assert time_zone_name(" America/Chicago ") == "America/Chicago"
    assert time_zone_name("UTC") == "UTC"
    for bad in ("Mars/Olympus", "", None, "../etc/passwd", "america/chicago", "EST+5"):
        with refused(InvalidInput, "time_zone"):
            time_zone_name(bad)


# --- practice_create and practice_update: one set of checks ---------------------------------------------------

def test_practice_create_checks_state_time_zone_and_limits():
    root = UserFactory(username="root", is_superuser=True)
    with refused(InvalidInput, "us_state"):
        practice_create(name="Hill Clinic", us_state="ZZ", actor=root)
    with refused(InvalidInput, "time_zone"):
        practice_create(name="Hill Clinic", us_state="TX", time_zone="Mars/Olympus", actor=root)
    with refused(InvalidInput, "max_operation_amount"):
        practice_create(name="Hill Clinic", us_state="TX", max_operation_amount="10000000.01", actor=root)
    with refused(InvalidInput, "created_at"):  # only settings, not any column
        practice_create(name="Hill Clinic", us_state="TX", created_at=None, actor=root)
    assert not Practice.objects.filter(name="Hill Clinic").exists()
    p = practice_create(name=" Hill Clinic ", us_state="ok", time_zone="America/Chicago", actor=root,
                        reason="Signed up")
    assert (p.name, p.us_state, p.history.get().history_change_reason) == ("Hill Clinic", "OK", "Signed up")


def test_a_manager_changes_settings_with_history_and_the_schedule_follows(world, django_capture_on_commit_callbacks):
    practice = world.practice
    sync_practice(practice.pk)
    before = Schedule.objects.get(name=f"nightly-practice-{practice.pk}").next_run
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        p = practice_update(practice_id=practice.pk, changes={"time_zone": "America/Los_Angeles",
                                                              "nightly_run_at": time(4, 15),
                                                              "refund_approval_threshold": "250.00"},
                            actor=world.manager, reason="Moved west", on_schedule_change=sync_practice)
    assert len(callbacks) == 1
    assert (p.time_zone, p.nightly_run_at, p.refund_approval_threshold) == ("America/Los_Angeles", time(4, 15),
                                                                            D("250.00"))
    last = p.history.latest()
    assert (last.history_user, last.history_change_reason) == (world.manager, "Moved west")
    after = Schedule.objects.get(name=f"nightly-practice-{practice.pk}").next_run
    assert after != before and after.astimezone(ZoneInfo("America/Los_Angeles")).time() == time(4, 15)

    # a change that does not move the nightly run does not touch the schedule; no change writes no history
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        practice_update(practice_id=practice.pk, changes={"auto_apply": False}, actor=world.manager, reason="Off",
                        on_schedule_change=sync_practice)
        practice_update(practice_id=practice.pk, changes={"auto_apply": False}, actor=world.manager, reason="Again",
                        on_schedule_change=sync_practice)
    assert callbacks == []
    assert [h.history_change_reason for h in practice.history.order_by("-history_id")[:2]] == ["Off", "Moved west"]


def test_the_schedule_moves_only_after_the_commit(world, django_capture_on_commit_callbacks):
    seen = []
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        practice_update(practice_id=world.practice.pk, changes={"nightly_run_at": time(1, 0)}, actor=world.manager,
                        reason="Earlier", on_schedule_change=seen.append)
        assert seen == []  # inside the transaction: nothing yet
    for callback in callbacks:
        callback()
    assert seen == [world.practice.pk]


@pytest.mark.parametrize("changes,field", [
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"us_state": "ZZ"}, "us_state"),
    ({"max_operation_amount": "10000000.01"}, "max_operation_amount"),
    ({"max_operation_amount": "0.00"}, "max_operation_amount"),
    ({"refund_approval_threshold": "-1.00"}, "refund_approval_threshold"),
    ({"approval_window_days": 3651}, "approval_window_days"),
    ({"card_refund_window_days": "30"}, "card_refund_window_days"),
    ({"auto_apply": "yes"}, "auto_apply"),
    ({"nightly_run_at": "25:00"}, "nightly_run_at"),
    ({"name": "  "}, "name"),
    ({"created_at": None}, "created_at"),
])
def test_practice_update_refuses_bad_values_and_writes_nothing(world, changes, field):
    rows = world.practice.history.count()
    with refused(InvalidInput, field):
        practice_update(practice_id=world.practice.pk, changes={"auto_apply": False, **changes}, actor=world.manager,
                        reason="x", on_schedule_change=None)
    world.practice.refresh_from_db()
    assert world.practice.auto_apply is True and world.practice.history.count() == rows


def test_practice_update_is_for_the_practices_managers_with_a_reason(world):
    other = PracticeFactory(name="Other Clinic")
    PracticeFactory(name="Taken")
    kw = {"changes": {"auto_apply": False}, "on_schedule_change": None}
    with pytest.raises(PermissionDenied):
        practice_update(practice_id=world.practice.pk, actor=world.clerk, reason="x", **kw)
    with pytest.raises(PermissionDenied):
        practice_update(practice_id=other.pk, actor=world.manager, reason="x", **kw)
    with refused(InvalidInput, "reason"):
        practice_update(practice_id=world.practice.pk, actor=world.manager, reason=" ", **kw)
    with refused(Duplicate, "name"):
        practice_update(practice_id=world.practice.pk, changes={"name": "Taken"}, actor=world.manager, reason="x",
                        on_schedule_change=None)
    with pytest.raises(TypeError):  # the hook is required: no caller forgets the schedule
        practice_update(practice_id=world.practice.pk, changes={}, actor=world.manager, reason="x")


# --- patients and payers ---------------------------------------------------------------------------------------

def test_patient_update_changes_only_what_differs_with_history(world):
    pat = world.patient(first_name="Ana", last_name="Avila")
    updated = patient_update(patient_id=pat.pk, changes={"first_name": " Ana María ", "last_name": "Avila",
                                                         "email": "ana@example.com",
                                                         "exclude_from_auto_apply": True},
                             actor=world.clerk, reason="Called to update her details")
    assert (updated.first_name, updated.email, updated.exclude_from_auto_apply) == \
        ("Ana María", "ana@example.com", True)
    last = updated.history.latest()
    assert (last.history_user, last.history_change_reason) == (world.clerk, "Called to update her details")
    for changes, field in [({"email": "not-an-address"}, "email"), ({"first_name": ""}, "first_name"),
                           ({"account_number": "X"}, "account_number"), ({"date_of_birth": "1850-01-01"},
                                                                         "date_of_birth"),
                           ({"exclude_from_auto_apply": "on"}, "exclude_from_auto_apply")]:
        with refused(InvalidInput, field):
            patient_update(patient_id=pat.pk, changes=changes, actor=world.clerk, reason="x")
    elsewhere = MembershipFactory(practice=PracticeFactory(name="Elsewhere"), user=UserFactory(username="far")).user
    with pytest.raises(PermissionDenied):
        patient_update(patient_id=pat.pk, changes={"first_name": "X"}, actor=elsewhere, reason="x")
    # the auto-apply exclusion's own service is the same change
    patient_set_auto_apply(patient_id=pat.pk, excluded=False, actor=world.clerk, reason="Wants credits applied")
    assert Patient.objects.get(pk=pat.pk).exclude_from_auto_apply is False


def test_payer_update(world):
    PayerFactory(practice=world.practice, name="Aetna")
    payer = payer_update(payer_id=world.payer.pk, changes={"name": "Blue Cross", "payer_type": "medicare"},
                         actor=world.clerk, reason="Renamed")
    assert (payer.name, payer.payer_type, payer.history.latest().history_change_reason) == \
        ("Blue Cross", "medicare", "Renamed")
    with refused(Duplicate, "name"):
        payer_update(payer_id=payer.pk, changes={"name": "Aetna"}, actor=world.clerk, reason="x")
    with refused(InvalidInput, "payer_type"):
        payer_update(payer_id=payer.pk, changes={"payer_type": "martian"}, actor=world.clerk, reason="x")


# --- who grants, changes and revokes roles: one rule ----------------------------------------------------------

def test_managers_grant_billing_and_manager_roles_in_their_practice(world):
    newcomer = UserFactory(username="newcomer")
    m = membership_grant(user_id=newcomer.pk, practice_id=world.practice.pk, role="billing", actor=world.manager,
                         reason="Hired")
    m = membership_grant(user_id=newcomer.pk, practice_id=world.practice.pk, role="manager", actor=world.manager,
                         reason="Promoted")
    assert m.role == "manager"
    assert [(h.history_user, h.history_change_reason) for h in m.history.order_by("history_id")] == \
        [(world.manager, "Hired"), (world.manager, "Promoted")]
    membership_revoke(membership_id=m.pk, actor=world.manager, reason="Left the practice")
    assert not Membership.objects.filter(pk=m.pk).exists()
    gone = Membership.history.filter(id=m.pk).latest()
    assert (gone.history_type, gone.history_user, gone.history_change_reason) == \
        ("-", world.manager, "Left the practice")


def test_billing_staff_never_grant_roles_and_nobody_changes_their_own(world):
    newcomer = UserFactory(username="newcomer")
    root = UserFactory(username="root", is_superuser=True)
    with pytest.raises(PermissionDenied, match="only a manager"):
        membership_grant(user_id=newcomer.pk, practice_id=world.practice.pk, role="billing", actor=world.clerk,
                         reason="x")
    with pytest.raises(PermissionDenied, match="their own role"):  # self-promotion
        membership_grant(user_id=world.clerk.pk, practice_id=world.practice.pk, role="manager", actor=world.clerk,
                         reason="x")
    with pytest.raises(PermissionDenied, match="their own role"):  # a manager demoting or removing themselves
        membership_grant(user_id=world.manager.pk, practice_id=world.practice.pk, role="billing",
                         actor=world.manager, reason="x")
    mine = Membership.objects.get(user=world.manager)
    with pytest.raises(PermissionDenied, match="their own role"):
        membership_revoke(membership_id=mine.pk, actor=world.manager, reason="x")
    with pytest.raises(PermissionDenied, match="their own role"):  # an administrator neither
        membership_grant(user_id=root.pk, practice_id=world.practice.pk, role="manager", actor=root, reason="x")
    clerk = Membership.objects.get(user=world.clerk)
    with pytest.raises(PermissionDenied):
        membership_revoke(membership_id=clerk.pk, actor=world.clerk, reason="x")
    # administrators anywhere
    m = membership_grant(user_id=world.clerk.pk, practice_id=world.practice.pk, role="manager", actor=root,
                         reason="Office manager now")
    assert m.role == "manager"
    assert Membership.objects.get(user=world.manager).role == "manager"


def test_a_manager_of_another_practice_cannot_and_sees_none_of_its_staff(world):
    far = PracticeFactory(name="Far Clinic")
    far_manager = MembershipFactory(practice=far, user=UserFactory(username="far-boss"),
                                    role=Membership.Role.MANAGER).user
    with pytest.raises(PermissionDenied):
        membership_grant(user_id=UserFactory(username="x").pk, practice_id=world.practice.pk, role="billing",
                         actor=far_manager, reason="x")
    with pytest.raises(PermissionDenied):
        membership_revoke(membership_id=Membership.objects.get(user=world.clerk).pk, actor=far_manager, reason="x")
    # hiring into their own practice: not another practice's staff (unknown to them), new staff yes
    with refused(NotFound, "user"):
        membership_grant(user_id=world.clerk.pk, practice_id=far.pk, role="billing", actor=far_manager, reason="x")
    new = UserFactory(username="fresh")
    candidates = set(role_candidates(far_manager))
    assert new in candidates and not candidates & {world.clerk, world.manager, far_manager}
    membership_grant(user_id=new.pk, practice_id=far.pk, role="billing", actor=far_manager, reason="Hired")


def test_integrations_patients_and_the_system_get_no_roles_and_give_none(world):
    token, _ = api_token_create(practice_id=world.practice.pk, role="billing", name="ehr")
    integration = token.user
    portal = UserFactory(username="ana-portal", is_staff=False)
    PatientFactory(practice=world.practice, user=portal)
    for user in (integration, system_user()):
        with refused(InvalidInput, "user"):
            membership_grant(user_id=user.pk, practice_id=world.practice.pk, role="manager", actor=world.manager,
                             reason="x")
    with refused(InvalidInput, "user"):
        membership_grant(user_id=portal.pk, practice_id=world.practice.pk, role="billing", actor=world.manager,
                         reason="x")
    with pytest.raises(PermissionDenied, match="integration"):
        membership_grant(user_id=UserFactory(username="y").pk, practice_id=world.practice.pk, role="billing",
                         actor=integration, reason="x")
    assert Membership.objects.get(user=integration).role == "billing"
