"""Issue 10, item 3 in the admin: every edit goes through a service and asks for a reason, which
the history keeps with the user; the values are checked by the service layer's own functions and
refusals are shown on the field. Practice settings (and their nightly schedule), patients, payers,
staff roles (one rule with the API), API tokens; the check number of a check payment; a refund
under the threshold decided the same way as through the API; a CSV file's every bad line."""

from datetime import date, time
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.contrib.admin.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django_q.models import Schedule

from api.models import ApiToken
from api.tokens import api_token_create
from config.schedules import sync_practice
from credits.models import CreditImport, Refund
from ledger import services as ledger_services
from ledger.errors import PermissionDenied as Refused
from ledger.models import Membership, Patient, Payer, Practice
from tests.api.conftest import error_of, make_api
from tests.backoffice.test_admin import form_data, url
from tests.credits.test_invariants import counts
from tests.factories import MembershipFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db


def errors_of(response) -> dict:
    return {k: " ".join(v) for k, v in response.context["adminform"].form.errors.items()}


# --- practice settings ------------------------------------------------------------------------------------------

def test_practice_settings_need_a_reason_and_keep_it_with_the_user(client, world):
    client.force_login(world.manager)
    page = client.get(url(Practice, "change", world.practice.pk))
    rows = world.practice.history.count()
    r = client.post(url(Practice, "change", world.practice.pk), form_data(page, auto_apply=False))
    assert r.status_code == 200 and set(errors_of(r)) == {"reason"}
    assert world.practice.history.count() == rows
    r = client.post(url(Practice, "change", world.practice.pk),
                    form_data(page, auto_apply=False, reason="Patients asked for statements instead"))
    assert r.status_code == 302
    last = Practice.objects.get(pk=world.practice.pk).history.latest()
    assert (last.auto_apply, last.history_user, last.history_change_reason) == \
        (False, world.manager, "Patients asked for statements instead")


@pytest.mark.parametrize("changes,field,says", [
    ({"time_zone": "Mars/Olympus"}, "time_zone", "'Mars/Olympus' is not an IANA time zone"),
    ({"us_state": "ZZ"}, "us_state", "'ZZ' is not a US state or territory code"),
    ({"max_operation_amount": "10000000.01"}, "max_operation_amount", "the hard ceiling"),
    ({"approval_window_days": "3651"}, "approval_window_days", "from 0 to 3650"),
])
def test_practice_settings_are_checked_by_the_service_layer(client, world, changes, field, says):
    client.force_login(world.manager)
    page = client.get(url(Practice, "change", world.practice.pk))
    rows = world.practice.history.count()
    r = client.post(url(Practice, "change", world.practice.pk), form_data(page, reason="x", **changes))
    assert r.status_code == 200
    assert says in errors_of(r)[field]
    assert world.practice.history.count() == rows


def test_a_new_time_zone_moves_the_practices_schedule(client, world, django_capture_on_commit_callbacks):
    other = PracticeFactory(name="Other Clinic", time_zone="America/New_York")
    sync_practice(world.practice.pk)
    sync_practice(other.pk)
    mine = Schedule.objects.get(name=f"nightly-practice-{world.practice.pk}")
    theirs = Schedule.objects.get(name=f"nightly-practice-{other.pk}")
    client.force_login(world.manager)
    page = client.get(url(Practice, "change", world.practice.pk))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        r = client.post(url(Practice, "change", world.practice.pk),
                        form_data(page, time_zone="Pacific/Honolulu", reason="The clinic moved"))
    assert r.status_code == 302 and len(callbacks) == 1
    moved = Schedule.objects.get(pk=mine.pk)
    assert moved.next_run != mine.next_run
    assert moved.next_run.astimezone(ZoneInfo("Pacific/Honolulu")).time() == time(2, 0)
    assert Schedule.objects.get(pk=theirs.pk).next_run == theirs.next_run  # another practice's is untouched


def test_a_refusal_at_save_time_keeps_nothing_and_says_why(client, world, monkeypatch):
    """The form's checks passed, then the service refused (e.g. the user stopped being a manager
    meanwhile): the admin's transaction rolls back whole (no log entry either) and the page says why."""
    def refuse(**kwargs):
        raise Refused("user boss is not a manager of practice 1")

    monkeypatch.setattr(ledger_services, "practice_update", refuse)
    client.force_login(world.manager)
    change = url(Practice, "change", world.practice.pk)
    page = client.get(change)
    logs = LogEntry.objects.count()
    r = client.post(change, form_data(page, auto_apply=False, reason="x"))
    assert r.status_code == 302 and r.url == change
    assert [str(m) for m in client.get(r.url).context["messages"]] == \
        ["Not saved: user boss is not a manager of practice 1"]
    assert LogEntry.objects.count() == logs
    assert Practice.objects.get(pk=world.practice.pk).auto_apply is True


# --- patients and payers ------------------------------------------------------------------------------------

def test_patient_edits_go_through_patient_update(client, world):
    pat = world.patient(first_name="Ana", last_name="Avila")
    client.force_login(world.clerk)
    page = client.get(url(Patient, "change", pat.pk))
    r = client.post(url(Patient, "change", pat.pk), form_data(page, email="not-an-address", reason="x"))
    assert r.status_code == 200 and "email" in errors_of(r)
    r = client.post(url(Patient, "change", pat.pk), form_data(page, email="ana@example.com",
                                                              exclude_from_auto_apply="on",
                                                              reason="Wants a refund, not credits applied"))
    assert r.status_code == 302
    last = Patient.objects.get(pk=pat.pk).history.latest()
    assert (last.email, last.exclude_from_auto_apply, last.history_user, last.history_change_reason) == \
        ("ana@example.com", True, world.clerk, "Wants a refund, not credits applied")


def test_payer_edits_go_through_payer_update(client, world):
    client.force_login(world.clerk)
    page = client.get(url(Payer, "change", world.payer.pk))
    r = client.post(url(Payer, "change", world.payer.pk), form_data(page, name="Blue Cross TX", reason="Renamed"))
    assert r.status_code == 302
    last = Payer.objects.get(pk=world.payer.pk).history.latest()
    assert (last.name, last.history_user, last.history_change_reason) == ("Blue Cross TX", world.clerk, "Renamed")


# --- staff roles: the rule of ledger.access.roles_refusal ---------------------------------------------------

def test_billing_staff_cannot_grant_roles_in_the_admin(client, world):
    newcomer = UserFactory(username="newcomer")
    client.force_login(world.clerk)
    assert client.get(url(Membership, "add")).status_code == 403
    r = client.post(url(Membership, "add"), {"user": newcomer.pk, "practice": world.practice.pk, "role": "billing",
                                             "reason": "x"})
    assert r.status_code == 403
    mine = Membership.objects.get(user=world.clerk)
    assert client.post(url(Membership, "change", mine.pk), {"role": "manager", "reason": "me"}).status_code == 403
    assert not Membership.objects.filter(user=newcomer).exists()
    assert Membership.objects.get(user=world.clerk).role == "billing"


def test_a_manager_grants_and_revokes_roles_but_not_their_own(client, world):
    newcomer = UserFactory(username="newcomer")
    far = PracticeFactory(name="Far Clinic")
    far_staff = MembershipFactory(practice=far, user=UserFactory(username="far-staff")).user
    client.force_login(world.manager)
    page = client.get(url(Membership, "add"))
    form = page.context["adminform"].form
    assert {u.username for u in form.fields["user"].queryset} == {"clerk", "newcomer"}  # not boss, not far-staff
    assert list(form.fields["practice"].queryset) == [world.practice]
    r = client.post(url(Membership, "add"), {"user": newcomer.pk, "practice": world.practice.pk, "role": "billing",
                                             "reason": "Hired for the front desk"})
    assert r.status_code == 302, errors_of(r)
    m = Membership.objects.get(user=newcomer)
    assert (m.role, m.history.latest().history_user, m.history.latest().history_change_reason) == \
        ("billing", world.manager, "Hired for the front desk")
    r = client.post(url(Membership, "add"), {"user": far_staff.pk, "practice": world.practice.pk, "role": "billing",
                                             "reason": "x"})
    assert r.status_code == 200 and "user" in errors_of(r)

    # their own membership: shown, not changeable (self-promotion or self-demotion)
    mine = Membership.objects.get(user=world.manager)
    page = client.get(url(Membership, "change", mine.pk))
    assert page.status_code == 200 and not page.context["adminform"].form.fields
    assert client.post(url(Membership, "change", mine.pk), {"role": "billing", "reason": "x"}).status_code == 403

    # revoking asks for a reason; their own is refused by the service, the newcomer's done
    changelist = url(Membership, "changelist")
    r = client.post(changelist, {"action": "revoke_selected", "_selected_action": [mine.pk, m.pk],
                                 "confirm": "yes", "reason": "Moved to another clinic"})
    assert r.status_code == 302
    shown = [str(x) for x in client.get(r.url).context["messages"]]
    assert "Memberships revoked: 1." in shown
    assert any("nobody changes their own role" in x for x in shown)
    assert Membership.objects.filter(pk=mine.pk).exists() and not Membership.objects.filter(pk=m.pk).exists()
    gone = Membership.history.filter(id=m.pk).latest()
    assert (gone.history_type, gone.history_user, gone.history_change_reason) == \
        ("-", world.manager, "Moved to another clinic")


def test_admin_and_api_give_one_answer_on_roles(client, world):
    """The same question (may the clerk promote themselves? may the manager demote themselves?)
    gets the same answer from the admin and from the API, because both ask membership_grant."""
    clerk_token = make_api(world.practice, name="clerk-sync", person=world.clerk)
    boss_token = make_api(world.practice, role="manager", name="boss-sync", person=world.manager)
    assert clerk_token.post("/memberships", {"username": "clerk", "role": "manager", "reason": "x"}).status_code == 403
    r = boss_token.post("/memberships", {"username": "boss", "role": "billing", "reason": "x"})
    assert r.status_code == 403 and "their own role" in error_of(r)["message"]
    client.force_login(world.manager)
    mine = Membership.objects.get(user=world.manager)
    assert client.post(url(Membership, "change", mine.pk), {"role": "billing", "reason": "x"}).status_code == 403
    assert Membership.objects.get(user=world.manager).role == "manager"


# --- API tokens ---------------------------------------------------------------------------------------------

def test_tokens_made_and_revoked_in_the_admin_keep_who_and_why(client, world):
    client.force_login(world.clerk)
    r = client.post("/admin/api/apitoken/add/", {"practice": world.practice.pk, "name": "clerk-sync",
                                                 "role": "billing", "reason": "For the scheduling system",
                                                 "_save": "1"})
    assert r.status_code == 200
    token = ApiToken.objects.get(name="clerk-sync")
    made = token.history.get()
    assert (made.history_type, made.history_user, made.history_change_reason) == \
        ("+", world.clerk, "For the scheduling system")
    assert not hasattr(made, "key_hash")  # the hash is not history

    boss_token, _ = api_token_create(practice_id=world.practice.pk, role="manager", name="boss-sync",
                                     created_by=world.manager, reason="Approvals")
    changelist = reverse("admin:api_apitoken_changelist")
    r = client.post(changelist, {"action": "revoke_selected", "_selected_action": [token.pk, boss_token.pk],
                                 "confirm": "yes", "reason": "Laptop lost"})
    shown = [str(x) for x in client.get(r.url).context["messages"]]
    assert "Revoked: 1." in shown
    assert any(x.startswith("boss-sync: only a manager of practice") for x in shown)  # the service's rule
    token.refresh_from_db()
    boss_token.refresh_from_db()
    assert token.revoked_at is not None and boss_token.revoked_at is None
    revoked = token.history.latest()
    assert (revoked.history_user, revoked.history_change_reason) == (world.clerk, "Laptop lost")
    assert client.get(reverse("admin:api_apitoken_history", args=[token.pk])).status_code == 200


# --- a check payment in the admin: the service asks for the number ------------------------------------------

def test_the_payment_page_shows_the_services_check_number_refusal(client, office, world):
    ana = office["ana"]
    client.force_login(world.clerk)
    before = counts()
    r = client.post(reverse("admin:ledger_patient_payment", args=[ana.pk]),
                    {"dos": [office["ana_dos"].pk], "amount": "60.00", "channel": "check", "check_number": "  ",
                     "reason": "Mailed check"})
    assert r.status_code == 200
    assert "a check payment needs the check number" in " ".join(r.context["form"].errors["check_number"])
    assert counts() == before


# --- a refund under the threshold: the admin and the API decide alike ---------------------------------------

def test_a_refund_under_the_threshold_is_the_same_through_the_admin_and_the_api(client, world):
    api = make_api(world.practice)
    ana, ben = world.patient(last_name="Avila"), world.patient(last_name="Brook")
    by_admin = world.pay(ana, "80.00", channel="portal").credits[0]
    by_api = world.pay(ben, "80.00", channel="portal").credits[0]
    client.force_login(world.clerk)
    r = client.post(reverse("admin:ledger_patient_credit_refund", args=[ana.pk, by_admin.pk]),
                    {"amount": "30.00", "method": "original_payment", "reference": "", "reason": "Asked"})
    assert r.status_code == 302, r.context and r.context["form"].errors
    r = api.post(f"/credits/{by_api.pk}/refunds", {"amount": "30.00", "method": "original_payment",
                                                   "reason": "Asked"})
    assert r.status_code == 201, r.content
    admin_refund, api_refund = Refund.objects.get(credit=by_admin), Refund.objects.get(credit=by_api)

    def decided(refund):
        return (refund.state, refund.method, refund.needs_approval, refund.amount,
                refund.reference.startswith("sbx_re_"))

    assert decided(admin_refund) == decided(api_refund) == ("issued", "original_payment", False, D("30.00"), True)
    assert (r.json()["state"], r.json()["needs_approval"]) == ("issued", False)


# --- the CSV import: one parser, every bad line, in the admin and the API ------------------------------------

BAD_FILE = (b"account_number,amount,note,date_of_service\n"
            b"A-1,10.00,ok,\n"                      # 2 fine
            b"NOPE,1.00,unknown,\n"                 # 3 unknown account
            b"A-1,abc,bad amount,\n"                # 4
            b"A-1,5.00,,\n"                         # 5 no note
            b"B-2,5.00,x,2026-13-01\n"              # 6 not a date
            b"A-1,5.00,x,,extra\n"                  # 7 too many fields
            b"B-2,5.00,no visit that day,2026-01-10\n"  # 8 no visit for Ben that day
            b"A-1,7.00,locked to the visit,2026-01-10\n")


def test_a_file_with_bad_lines_3_to_7_and_8_lists_all_six_in_the_admin_and_the_api(client, world):
    ana = world.patient(account_number="A-1")
    world.patient(account_number="B-2")
    world.visit(ana, date(2026, 1, 10))
    before = counts()
    client.force_login(world.clerk)
    r = client.post(reverse("admin:credits_creditimport_upload"), {
        "practice": world.practice.pk, "reason": "Import", "file": SimpleUploadedFile("old.csv", BAD_FILE)})
    assert r.status_code == 200
    assert [e.split(":")[0] for e in r.context["line_errors"]] == [f"line {n}" for n in (3, 4, 5, 6, 7, 8)]
    assert "6 problem(s); nothing was imported" in str(r.context["form"].errors["file"])

    r = make_api(world.practice).post("/credit-imports", {"file": SimpleUploadedFile("old.csv", BAD_FILE)},
                                      fmt="multipart")
    assert r.status_code == 400
    message = error_of(r)["message"]
    assert message.startswith("old.csv: 6 problem(s); nothing was imported")
    assert all(f"line {n}: " in message for n in (3, 4, 5, 6, 7, 8)) and "line 2: " not in message
    assert "line 9: " not in message
    assert counts() == before and not CreditImport.objects.exists()
