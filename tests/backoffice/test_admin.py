"""The back-office admin: every model browsable, tenancy, read-only money, no deletes, and the
actions that call the services after a confirmation page asking for a reason."""

from datetime import date
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from django_q.models import Schedule

from api.tokens import api_token_create
from credits import services as credit_services
from credits.models import Credit, NightlyRun, Refund
from ledger import services as ledger_services
from ledger.access import system_user
from ledger.models import Membership, Patient, Practice
from remittances.posting import remittance_file_post
from remittances.receive import remittance_file_receive
from remittances.x12.generator import ClaimSpec, generate_835
from tests.factories import MembershipFactory, PatientFactory, PayerFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db

SETTLE_APPS = ("ledger", "credits", "remittances", "api", "backoffice")
FINANCIAL = ["ledger.encounter", "ledger.claim", "ledger.payment", "ledger.journalentry", "ledger.journalline",
             "ledger.sandboxcharge", "ledger.sandboxrefund", "credits.credit", "credits.creditapplication",
             "credits.refund", "credits.writeoff", "credits.payercredit", "credits.creditimport",
             "credits.nightlyrun", "remittances.remittancefile", "remittances.remittancetransaction",
             "remittances.remittanceclaim", "remittances.remittanceadjustment"]


def registered():
    return sorted(((m, ma) for m, ma in admin.site._registry.items() if m._meta.app_label in SETTLE_APPS),
                  key=lambda pair: pair[0]._meta.label)


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def changelist(model):
    return url(model, "changelist")


@pytest.fixture
def books(world):
    """One row of every settle model in practice A (world), and a patient with money in practice B."""
    clerk, manager = world.clerk, world.manager
    pat = world.patient(first_name="Alma", last_name="Amberly")
    # Example A: held copay, remittance, nightly application, refund back to the card.
    enc, claim = world.visit(pat, date(2026, 3, 3))
    world.pay(pat, "50.00", encounter=enc)
    world.remit(claim, pr="20.00", paid="150.00")
    run = NightlyRun.objects.create(practice=world.practice, triggered_by=system_user())
    credit_services.credits_apply(patient_id=pat.pk, actor=system_user(), nightly_run=run)
    held = Credit.objects.get(patient=pat)
    refund = credit_services.refund_request(credit_id=held.pk, amount="10.00", actor=clerk, reason="Part back")
    assert refund.state == Refund.State.ISSUED  # below the threshold: approved and paid back to the card at once
    # A copay still held (locked) on a pending claim.
    enc2, _ = world.visit(pat, date(2026, 4, 4))
    world.pay(pat, "30.00", encounter=enc2, channel="cash")
    # A small balance written off, a payer credit, an import.
    enc3, claim3 = world.visit(pat, date(2026, 1, 5))
    world.remit(claim3, pr="5.00", paid="150.00")
    credit_services.writeoff_create(encounter_id=enc3.pk, amount="5.00", reason_code="small_balance", reason="small",
                                    actor=manager)
    credit_services.payer_credit_open(payer_id=world.payer.pk, amount="12.00", reason_code="duplicate_payment",
                                      actor=clerk, claim_id=claim.pk, reason="paid twice")
    credit_services.credit_import_create(practice_id=world.practice.pk, filename="old.csv", actor=clerk,
                                       data=f"account_number,amount,note\n{pat.account_number},7.00,old\n".encode())
    # A refund above the threshold waiting for a manager (the approvals queue); all of its credit is held.
    big = credit_services.manual_credit_add(patient_id=pat.pk, amount="150.00", reason="old system", actor=clerk)
    credit_services.refund_request(credit_id=big.pk, amount="150.00", actor=clerk, reason="Patient asked",
                                   method="check")
    # A remittance file: one claim posted, one unmatched, one provider-level adjustment.
    world.visit(pat, date(2026, 6, 6), number="ERA-1")
    era = generate_835(specs=[ClaimSpec("ERA-1", charge="200.00", paid="150.00",
                                        patient_responsibility=[("2", "10.00")]),
                              ClaimSpec("NOPE-1", charge="80.00", paid="50.00")], plb=[("L6", "INT", "-1.00")])
    received = remittance_file_receive(practice_id=world.practice.pk, data=era, filename="era.835", actor=clerk)
    remittance_file_post(file_id=received.file.pk, actor=clerk)

    other_practice = PracticeFactory(name="Bayside Orthopedics")
    other_staff = MembershipFactory(practice=other_practice, user=UserFactory(username="bayside")).user
    other = PatientFactory(practice=other_practice, first_name="Zelda", last_name="Zzyzx")
    other_payer = PayerFactory(practice=other_practice, name="Bayside Health Plan")
    api_token_create(practice_id=world.practice.pk, role="billing", name="alma-sync", created_by=clerk)
    api_token_create(practice_id=other_practice.pk, role="billing", name="other-sync", created_by=other_staff)
    other_enc = ledger_services.encounter_create(patient_id=other.pk, date_of_service=date(2026, 2, 2),
                                                 charge="100.00", estimated_pr="0.00", actor=other_staff)
    ledger_services.claim_submit(encounter_id=other_enc.pk, payer_id=other_payer.pk, claim_number="ZZ-1",
                                 actor=other_staff)
    credit_services.payment_record(patient_id=other.pk, amount="44.00", channel="portal", card_token="tok_visa",
                                   encounter_id=other_enc.pk, actor=other_staff)
    return {"patient": pat, "held": held, "enc2": enc2, "other": other, "other_practice": other_practice,
            "other_staff": other_staff, "other_credit": Credit.objects.get(patient=other)}


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw")


def scoped_first(model_admin, user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return model_admin.get_queryset(request).order_by("pk").first()


@pytest.mark.parametrize("who", ["superuser", "clerk"])
def test_every_changelist_change_page_and_history_opens(client, books, world, superuser, who):
    user = superuser if who == "superuser" else world.clerk
    client.force_login(user)
    assert client.get(reverse("admin:index")).status_code == 200
    for model, model_admin in registered():
        response = client.get(changelist(model))
        assert response.status_code == 200, model._meta.label
        obj = scoped_first(model_admin, user)
        assert obj is not None, f"no {model._meta.label} row visible to {who}"
        response = client.get(url(model, "change", obj.pk))
        assert response.status_code == 200, model._meta.label
        assert client.get(url(model, "history", obj.pk)).status_code == 200, model._meta.label


def test_every_changelist_filters_and_searches(client, books, world):
    client.force_login(world.clerk)
    for model, model_admin in registered():
        if model_admin.search_fields:
            assert client.get(changelist(model), {"q": "Amberly"}).status_code == 200, model._meta.label
    assert client.get(changelist(Patient), {"credits": "both"}).status_code == 200
    assert client.get(changelist(Credit), {"state__exact": "locked"}).status_code == 200


def test_staff_do_not_see_another_practice(client, books, world):
    client.force_login(world.clerk)
    other, other_credit = books["other"], books["other_credit"]

    for model, _ in registered():
        content = client.get(changelist(model)).content.decode()
        assert "Zzyzx" not in content and "Bayside" not in content, model._meta.label
    response = client.get(changelist(Patient), {"q": "Zzyzx"})
    assert response.context["cl"].result_count == 0

    for obj in (other, other_credit, books["other_practice"]):
        response = client.get(url(type(obj), "change", obj.pk))
        assert response.status_code == 302 and response.url == reverse("admin:index")
        followed = client.get(response.url)
        assert "Zzyzx" not in followed.content.decode()
        assert "doesn’t exist" in followed.content.decode()
        history = client.get(url(type(obj), "history", obj.pk))
        assert history.status_code in (403, 404) and b"Zzyzx" not in history.content
    version = other.history.first()
    response = client.get(reverse("admin:ledger_patient_simple_history", args=[other.pk, version.history_id]))
    assert response.status_code == 403


def test_staff_without_membership_get_nothing(client, books):
    stranger = UserFactory(username="stranger")
    client.force_login(stranger)
    index = client.get(reverse("admin:index"))
    assert b"Patients" not in index.content
    assert client.get(changelist(Patient)).status_code == 403


def test_the_other_practice_sees_only_its_own(client, books):
    client.force_login(books["other_staff"])
    content = client.get(changelist(Patient)).content.decode()
    assert "Zzyzx" in content and "Amberly" not in content
    response = client.get(url(Patient, "change", books["patient"].pk))
    assert response.status_code == 302


@pytest.mark.parametrize("label", FINANCIAL)
def test_no_deletes_of_financial_rows(client, books, superuser, label):
    model = next(m for m, _ in registered() if m._meta.label_lower == label)
    model_admin = admin.site._registry[model]
    client.force_login(superuser)
    obj = model.objects.order_by("pk").first()
    assert client.get(url(model, "delete", obj.pk)).status_code == 403
    assert client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    request = RequestFactory().get("/")
    request.user = superuser
    assert "delete_selected" not in model_admin.get_actions(request)
    assert model.objects.filter(pk=obj.pk).exists()


def test_money_fields_are_read_only_even_where_editing_is_allowed(client, books, world):
    client.force_login(world.manager)
    held = books["held"]
    held.refresh_from_db()
    before = held.on_hand
    response = client.get(url(Credit, "change", held.pk))
    assert response.status_code == 200
    assert not response.context["adminform"].form.fields  # nothing editable on a credit
    response = client.post(url(Credit, "change", held.pk), {"on_hand": "999.00"})
    assert response.status_code == 403
    held.refresh_from_db()
    assert held.on_hand == before

    response = client.get(url(Patient, "change", books["patient"].pk))
    editable = set(response.context["adminform"].form.fields)
    assert editable == {"first_name", "last_name", "date_of_birth", "email", "member_id", "exclude_from_auto_apply",
                        "address_line1", "address_line2", "city", "us_state", "postal_code",
                        "reason"}  # the reason goes with the change into the history


def form_data(response, **changes) -> dict:
    """The POST a browser would send for an admin change form (main form and inline management)."""
    data = {}
    form = response.context["adminform"].form
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        fs = inline.formset
        management = fs.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        for f in fs.forms:
            for name in f.fields:
                value = f[name].value()
                if value is not None and not isinstance(value, bool):
                    data[f.add_prefix(name)] = value
    for key, value in changes.items():
        if value is False:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def test_patient_edit_keeps_history_with_user_and_reason(client, books, world):
    pat = books["patient"]
    client.force_login(world.clerk)
    page = client.get(url(Patient, "change", pat.pk))
    response = client.post(url(Patient, "change", pat.pk), form_data(page, first_name="Alma Rose",
                                                                      exclude_from_auto_apply="on",
                                                                      reason="She asked for a refund instead"))
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    pat.refresh_from_db()
    assert (pat.first_name, pat.exclude_from_auto_apply) == ("Alma Rose", True)
    last = pat.history.first()
    assert (last.history_user, last.history_change_reason) == (world.clerk, "She asked for a refund instead")


def test_patient_page_shows_balance_and_credit_totals(client, books, world):
    client.force_login(world.clerk)
    response = client.get(url(Patient, "change", books["patient"].pk))
    content = response.content.decode()
    assert "Available credit" in content and "Locked credit" in content and "Due now" in content
    assert "Pending the payer" in content
    model_admin = admin.site._registry[Patient]
    obj = response.context["original"]
    # Example A left $30 - $10 refunded = $20 available plus the $7 import; $30 held for 4 April.
    assert (model_admin.available_credit(obj), model_admin.locked_credit(obj)) == (D("27.00"), D("30.00"))
    assert "available credit 27.00 · locked credit 30.00" in response.context["subtitle"]
    assert "Dates of service" in content and "Payments" in content


def test_patient_add_goes_through_the_service(client, world):
    client.force_login(world.clerk)
    response = client.post(url(Patient, "add"), {
        "practice": world.practice.pk, "account_number": "NEW-1", "first_name": "Nora", "last_name": "Newman",
        "email": "", "member_id": "", "date_of_birth": "", "reason": "Added in admin",
    })
    assert response.status_code == 302
    pat = Patient.objects.get(account_number="NEW-1")
    assert (pat.practice, pat.history.first().history_change_reason) == (world.practice, "Added in admin")
    # Another practice cannot be chosen.
    other = PracticeFactory(name="Elsewhere")
    response = client.post(url(Patient, "add"), {"practice": other.pk, "account_number": "NEW-2",
                                                 "first_name": "X", "last_name": "Y"})
    assert response.status_code == 200 and "practice" in response.context["adminform"].form.errors
    assert not Patient.objects.filter(account_number="NEW-2").exists()


def test_practice_settings_are_for_managers(client, world, django_capture_on_commit_callbacks):
    practice = world.practice
    client.force_login(world.clerk)
    page = client.get(url(Practice, "change", practice.pk))
    assert page.status_code == 200 and not page.context["adminform"].form.fields
    assert client.post(url(Practice, "change", practice.pk), {"auto_apply": ""}).status_code == 403

    client.force_login(world.manager)
    page = client.get(url(Practice, "change", practice.pk))
    data = form_data(page, auto_apply=False, refund_approval_threshold="250.00", nightly_run_at="03:30",
                     time_zone="America/Denver", reason="Front desk moved to Denver")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url(Practice, "change", practice.pk), data).status_code == 302
    practice.refresh_from_db()
    assert (practice.auto_apply, practice.refund_approval_threshold) == (False, D("250.00"))
    last = practice.history.first()
    assert (last.history_user, last.history_change_reason) == (world.manager, "Front desk moved to Denver")
    # the nightly schedule follows the new local time
    schedule = Schedule.objects.get(name=f"nightly-practice-{practice.pk}")
    local = schedule.next_run.astimezone(ZoneInfo("America/Denver"))
    assert (local.hour, local.minute) == (3, 30)

    bad = client.post(url(Practice, "change", practice.pk),
                      form_data(page, time_zone="Mars/Olympus", us_state="T", reason="typo"))
    assert bad.status_code == 200
    assert set(bad.context["adminform"].form.errors) == {"time_zone", "us_state"}


def test_history_cannot_be_reverted(client, books, world):
    pat = books["patient"]
    client.force_login(world.clerk)
    version = pat.history.last()
    view = reverse("admin:ledger_patient_simple_history", args=[pat.pk, version.history_id])
    assert client.get(view).status_code == 200
    assert client.post(view, {"first_name": "Reverted"}).status_code == 405


# --- actions -----------------------------------------------------------------------------------------

def run_action(client, model, action, ids, **extra):
    return client.post(changelist(model), {"action": action, "_selected_action": [str(i) for i in ids], **extra})


def test_unlock_credits_action_asks_for_a_reason_then_unlocks(client, books, world):
    locked = Credit.objects.get(patient=books["patient"], state=Credit.State.LOCKED)
    client.force_login(world.clerk)

    page = run_action(client, Credit, "unlock_credits", [locked.pk, books["held"].pk])
    assert page.status_code == 200
    assert page.templates[0].name == "admin/settle/confirm_action.html"
    assert str(locked) in page.content.decode() and str(books["held"]) not in page.content.decode()

    missing_reason = run_action(client, Credit, "unlock_credits", [locked.pk], confirm="yes", reason=" ")
    assert missing_reason.status_code == 200 and missing_reason.context["form"].errors
    locked.refresh_from_db()
    assert locked.state == Credit.State.LOCKED

    done = run_action(client, Credit, "unlock_credits", [locked.pk, books["held"].pk], confirm="yes",
                      reason="Payer will never answer")
    assert done.status_code == 302
    locked.refresh_from_db()
    assert locked.state == Credit.State.AVAILABLE
    last = locked.history.first()
    assert last.history_user == world.clerk
    assert last.history_change_reason == "Manual unlock: Payer will never answer"
    messages = [str(m) for m in client.get(done.url).context["messages"]]
    assert "Credits unlocked: 1." in messages


def test_unlock_action_cannot_reach_another_practice(client, books, world):
    other = books["other_credit"]
    assert other.state == Credit.State.LOCKED
    client.force_login(world.clerk)
    run_action(client, Credit, "unlock_credits", [other.pk], confirm="yes", reason="sneaky")
    other.refresh_from_db()
    assert other.state == Credit.State.LOCKED


def test_patient_actions_apply_and_unlock(client, books, world):
    pat = books["patient"]
    client.force_login(world.clerk)
    page = run_action(client, Patient, "unlock_patient_credits", [pat.pk])
    assert page.status_code == 200 and "30.00" in page.content.decode()
    run_action(client, Patient, "unlock_patient_credits", [pat.pk], confirm="yes", reason="Payer gone")
    assert not Credit.objects.filter(patient=pat, state=Credit.State.LOCKED).exists()

    # A new balance, and the (now available) credits pay it when staff ask.
    enc, claim = world.visit(pat, date(2026, 5, 5))
    world.remit(claim, pr="15.00", paid="150.00")
    page = run_action(client, Patient, "apply_credits_now", [pat.pk])
    assert page.status_code == 200
    run_action(client, Patient, "apply_credits_now", [pat.pk], confirm="yes", reason="Patient asked on the phone")
    enc.refresh_from_db()
    assert enc.balance == 0
    app = enc.applications.get()
    assert (app.amount, app.created_by, app.reason) == (D("15.00"), world.clerk, "Patient asked on the phone")


def test_refund_actions_show_service_errors_as_messages(client, books, world):
    pat = books["patient"]
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="300.00", reason="old system", actor=world.manager)
    mine = credit_services.refund_request(credit_id=c.pk, amount="150.00", actor=world.manager, reason="by check")
    theirs = credit_services.refund_request(credit_id=c.pk, amount="120.00", actor=world.clerk, reason="by check")
    assert mine.state == theirs.state == Refund.State.REQUESTED

    client.force_login(world.clerk)  # billing staff may not approve
    request = RequestFactory().get("/")
    request.user = world.clerk
    assert "approve_refunds" not in admin.site._registry[Refund].get_actions(request)

    client.force_login(world.manager)
    page = run_action(client, Refund, "approve_refunds", [mine.pk, theirs.pk])
    assert page.status_code == 200
    done = run_action(client, Refund, "approve_refunds", [mine.pk, theirs.pk], confirm="yes", reason="")
    assert done.status_code == 302
    messages = [str(m) for m in client.get(done.url).context["messages"]]
    assert "Refunds approved: 1." in messages
    assert any("cannot approve their own refund" in m for m in messages)
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.state, theirs.state, theirs.decided_by) == ("requested", "approved", world.manager)

    # Rejecting one's own request above the threshold: refused (by the four-eyes rule), shown, no 500.
    done = run_action(client, Refund, "reject_refunds", [mine.pk], confirm="yes", reason="Withdrawn")
    assert done.status_code == 302
    assert any(f"Refund #{mine.pk}:" in str(m) for m in client.get(done.url).context["messages"])
    mine.refresh_from_db()
    assert mine.state == "requested"

    # another patient (this one's refunds already add up above the threshold over the approval window)
    other = credit_services.manual_credit_add(patient_id=world.patient().pk, amount="20.00", reason="old system",
                                              actor=world.manager)
    small = credit_services.refund_request(credit_id=other.pk, amount="20.00", actor=world.clerk, reason="by check")
    assert small.state == Refund.State.APPROVED  # below the threshold
    client.force_login(world.clerk)
    run_action(client, Refund, "reject_refunds", [small.pk], confirm="yes", reason="Patient keeps the credit")
    small.refresh_from_db()
    assert (small.state, small.decision_note, small.decided_by) == ("rejected", "Patient keeps the credit", world.clerk)
    again = run_action(client, Refund, "reject_refunds", [small.pk], confirm="yes", reason="twice")
    assert again.status_code == 302
    assert any("cannot be rejected" in str(m) for m in client.get(again.url).context["messages"])


def test_membership_roles_are_changed_by_the_practices_managers(client, world, superuser):
    """The rule of ledger.access.roles_refusal (more in tests/backoffice/test_admin_services.py)."""
    m = Membership.objects.get(user=world.clerk)
    client.force_login(world.clerk)
    assert client.post(url(Membership, "change", m.pk), {"role": "manager", "reason": "me"}).status_code == 403
    client.force_login(world.manager)
    page = client.get(url(Membership, "change", m.pk))
    assert client.post(url(Membership, "change", m.pk), form_data(page, role="manager",
                                                                  reason="Runs the office now")).status_code == 302
    m.refresh_from_db()
    assert m.role == "manager"
    assert (m.history.first().history_user, m.history.first().history_change_reason) == \
        (world.manager, "Runs the office now")
    client.force_login(superuser)
    page = client.get(url(Membership, "change", m.pk))
    assert client.post(url(Membership, "change", m.pk), form_data(page, role="billing",
                                                                  reason="Back to billing")).status_code == 302
    m.refresh_from_db()
    assert m.role == "billing"
