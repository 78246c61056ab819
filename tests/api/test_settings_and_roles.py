"""Issue 10, item 3 through the API: the same services and checks as the admin. A check payment
without its number, a time zone that is not one, a state that is not one: 400 on the field;
practice settings through practice_update (history with the token's person and the reason, the
nightly schedule follows); staff roles through membership_grant / membership_revoke, refused for
billing tokens and for a person's own role."""

from datetime import date, time
from zoneinfo import ZoneInfo

import pytest
from django_q.models import Schedule

from config.schedules import sync_practice
from ledger.models import Membership, Payment, Practice
from tests.api.conftest import error_of
from tests.credits.test_invariants import counts
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


# --- a check payment needs its number -------------------------------------------------------------------------

def test_check_payments_without_a_number_are_refused_on_check_number(api, world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 3, 3))
    world.remit(claim, pr="60.00", paid="140.00")
    before = counts()
    for path, body in [
        ("/payments", {"patient": pat.pk, "amount": "40.00", "channel": "check"}),
        ("/payments", {"patient": pat.pk, "amount": "40.00", "channel": "check", "check_number": "   "}),
        ("/payments/checkout", {"patient": pat.pk, "encounter_ids": [enc.pk], "channel": "check"}),
        ("/credits/purchase", {"patient": pat.pk, "amount": "40.00", "channel": "check"}),
    ]:
        r = api.post(path, body)
        assert r.status_code == 400, (path, r.content)
        assert error_of(r)["field"] == "check_number", path
    assert counts() == before
    r = api.post("/payments", {"patient": pat.pk, "amount": "40.00", "channel": "check", "check_number": " 1042 "})
    assert r.status_code == 201 and r.json()["payment"]["check_number"] == "1042"
    r = api.post("/credits/purchase", {"patient": pat.pk, "amount": "10.00", "channel": "check", "check_number": "7"})
    assert r.status_code == 201, r.content
    assert Payment.objects.filter(patient=pat, channel="check").count() == 2


# --- practice settings: practice_update -----------------------------------------------------------------------

@pytest.mark.parametrize("body,field", [
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"us_state": "ZZ"}, "us_state"),
    ({"us_state": "Texas"}, "us_state"),
    ({"nightly_run_at": "25:00"}, "nightly_run_at"),
    ({"name": ""}, "name"),
])
def test_bad_practice_settings_are_400_on_their_field(manager_api, world, body, field):
    rows = world.practice.history.count()
    r = manager_api.patch("/practice", {"auto_apply": False, **body, "reason": "x"})
    assert r.status_code == 400, r.content
    assert error_of(r)["field"] == field
    world.practice.refresh_from_db()
    assert world.practice.auto_apply is True and world.practice.history.count() == rows


def test_practice_settings_write_history_and_move_the_nightly_schedule(api, manager_api, world,
                                                                      django_capture_on_commit_callbacks):
    practice = world.practice
    sync_practice(practice.pk)
    before = Schedule.objects.get(name=f"nightly-practice-{practice.pk}").next_run
    assert api.patch("/practice", {"time_zone": "America/Denver", "reason": "x"}).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        r = manager_api.patch("/practice", {"time_zone": "America/Denver", "nightly_run_at": "03:30",
                                            "us_state": "co", "reason": "Moved to Denver"})
    assert r.status_code == 200, r.content
    assert (r.json()["time_zone"], r.json()["nightly_run_at"], r.json()["us_state"]) == \
        ("America/Denver", "03:30", "CO")
    practice = Practice.objects.get(pk=practice.pk)
    last = practice.history.latest()
    assert (last.history_user, last.history_change_reason) == (world.manager, "Moved to Denver")
    after = Schedule.objects.get(name=f"nightly-practice-{practice.pk}").next_run
    assert after != before and after.astimezone(ZoneInfo("America/Denver")).time() == time(3, 30)


# --- staff roles: one rule with the admin -----------------------------------------------------------------------

def test_staff_roles_through_the_api(api, manager_api, world):
    listed = api.get("/memberships").json()["results"]
    assert {(m["username"], m["role"]) for m in listed} == \
        {("boss", "manager"), ("clerk", "billing"), (f"api-{world.practice.pk}-ehr", "billing")}  # the integration
    newcomer = UserFactory(username="newcomer")

    # billing staff never grant roles, themselves included (self-promotion)
    for body in ({"username": "newcomer", "role": "billing", "reason": "x"},
                 {"username": "clerk", "role": "manager", "reason": "Promote me"}):
        r = api.post("/memberships", body)
        assert r.status_code == 403, r.content
    assert not Membership.objects.filter(user=newcomer).exists()
    assert Membership.objects.get(user=world.clerk).role == "billing"

    # a manager: not their own role; others' yes, with history
    r = manager_api.post("/memberships", {"username": "boss", "role": "billing", "reason": "Stepping down"})
    assert r.status_code == 403 and error_of(r)["field"] == "username"
    r = manager_api.post("/memberships", {"username": "newcomer", "role": "billing", "reason": "Hired"})
    assert r.status_code == 201 and r.json()["role"] == "billing"
    r = manager_api.post("/memberships", {"username": "newcomer", "role": "manager", "reason": "Promoted"})
    assert r.status_code == 200 and r.json()["role"] == "manager"
    m = Membership.objects.get(user=newcomer)
    assert [(h.history_user, h.history_change_reason) for h in m.history.order_by("history_id")] == \
        [(world.manager, "Hired"), (world.manager, "Promoted")]
    assert manager_api.post("/memberships", {"username": "nobody", "role": "billing", "reason": "x"}) \
        .status_code == 404

    mine = Membership.objects.get(user=world.manager)
    assert manager_api.post(f"/memberships/{mine.pk}/revoke", {"reason": "x"}).status_code == 403
    assert api.post(f"/memberships/{m.pk}/revoke", {"reason": "x"}).status_code == 403
    assert manager_api.post(f"/memberships/{m.pk}/revoke", {}).status_code == 400  # a reason is required
    r = manager_api.post(f"/memberships/{m.pk}/revoke", {"reason": "Left"})
    assert r.status_code == 204
    assert not Membership.objects.filter(user=newcomer).exists()
    gone = Membership.history.filter(id=m.pk).latest()
    assert (gone.history_type, gone.history_user, gone.history_change_reason) == ("-", world.manager, "Left")
