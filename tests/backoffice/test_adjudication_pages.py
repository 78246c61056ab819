"""The adjudication back-office pages (issue 11, item 9) through the test client, as billing staff
and as a manager: the case work queue (columns, filters, order, totals, scan now), the case page
(heading card, links, timeline, contacts, proposals, the actions its state allows), each action
through its service (a state change or an event visible afterwards), refusals shown with nothing
written, the managers' proposal approvals, the refund work list, unclaimed property with its
holder report, the rules table and the practice's settings; another practice's rows are refused."""

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from adjudication.models import (
    AdjudicationSettings,
    Case,
    CaseDocument,
    CaseEvent,
    ClockRule,
    PayerContact,
    Proposal,
    RefundPolicy,
    UnclaimedProperty,
)
from adjudication.selectors import practice_dates
from credits import services as credit_services
from credits.models import Credit, Refund
from ledger.models import Membership, Payer
from tests.backoffice.conftest import messages_of
from tests.factories import MembershipFactory, PatientFactory, PayerFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db


def url(name, *args):
    return reverse(f"admin:{name}", args=args)


def act(case, action):
    return url("adjudication_case_act", case.pk, action)


def written(case) -> tuple:
    """What a refused action must leave as it was: the case's events, history rows and proposals."""
    return (CaseEvent.objects.filter(case_id=case.pk).count(), Case.history.filter(id=case.pk).count(),
            Proposal.objects.filter(case_id=case.pk).count())


@pytest.fixture
def adj(world):
    """Practice A: Ana's 150.00 patient credit (a card payment with nothing to pay for), due in 3 days
    (flagged: inside the 7-day window); a Medicare duplicate payer credit of 180.00 due in 40 days; a
    commercial payer credit with no due date yet, assigned to the clerk. Practice B: a case of its own."""
    today = practice_dates([world.practice.pk])[world.practice.pk]
    ana = world.patient(first_name="Ana", last_name="Avila", account_number="A-100", email="ana@example.com")
    world.pay(ana, "150.00")
    credit = Credit.objects.get(patient=ana)
    patient_case = Case.objects.create(
        practice=world.practice, kind=Case.Kind.PATIENT_CREDIT, cause=Case.Cause.PATIENT_OVERPAYMENT,
        source=credit.source, credit=credit, patient=ana, amount=credit.on_hand, determined_on=today,
        due_on=today + timedelta(days=3))
    medicare = PayerFactory(practice=world.practice, name="Medicare Part B", payer_type=Payer.Type.MEDICARE)
    pc = credit_services.payer_credit_open(payer_id=medicare.pk, amount="180.00", reason_code="duplicate_payment",
                                           actor=world.clerk, reason="Paid twice", cash_received=True,
                                           payer_claim_number="ICN-1")
    payer_case = Case.objects.create(
        practice=world.practice, kind=Case.Kind.PAYER_CREDIT, cause=Case.Cause.DUPLICATE, payer_credit=pc,
        payer=medicare, payer_type=Payer.Type.MEDICARE, amount=pc.amount, determined_on=today,
        due_on=today + timedelta(days=40))
    acme = PayerFactory(practice=world.practice, name="Acme Health", payer_type=Payer.Type.COMMERCIAL)
    pc2 = credit_services.payer_credit_open(payer_id=acme.pk, amount="60.00", reason_code="other",
                                            actor=world.clerk, reason="Paid above the charge", cash_received=True)
    undated = Case.objects.create(
        practice=world.practice, kind=Case.Kind.PAYER_CREDIT, cause=Case.Cause.ABOVE_CHARGE, payer_credit=pc2,
        payer=acme, payer_type=Payer.Type.COMMERCIAL, amount=pc2.amount, determined_on=today,
        assigned_to=world.clerk)

    b = PracticeFactory(name="Bayside Orthopedics")
    b_boss = MembershipFactory(practice=b, user=UserFactory(username="bayside"), role=Membership.Role.MANAGER).user
    zed = PatientFactory(practice=b, first_name="Zed", last_name="Zzyzx", account_number="Z-1")
    z_credit = credit_services.manual_credit_add(patient_id=zed.pk, amount="75.00", reason="old system",
                                                 actor=b_boss)
    b_case = Case.objects.create(practice=b, kind=Case.Kind.PATIENT_CREDIT, cause=Case.Cause.OTHER, credit=z_credit,
                                 patient=zed, amount=z_credit.on_hand, determined_on=today)
    return {"today": today, "ana": ana, "credit": credit, "patient_case": patient_case, "payer_case": payer_case,
            "undated": undated, "b": b, "b_boss": b_boss, "b_case": b_case}


def second_manager(world, username="boss2"):
    return MembershipFactory(practice=world.practice, user=UserFactory(username=username),
                             role=Membership.Role.MANAGER).user


# --- the work queue --------------------------------------------------------------------------------------

def test_queue_lists_the_practices_open_cases_by_due_date_with_totals(client, world, adj):
    client.force_login(world.clerk)
    response = client.get(url("adjudication_case_changelist"))
    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert [c.pk for c in rows] == [adj["patient_case"].pk, adj["payer_case"].pk, adj["undated"].pk]  # nulls last
    assert adj["b_case"].pk not in [c.pk for c in rows]
    totals = response.context["totals"]
    assert (totals["count"], totals["money_left"], totals["flagged"]) == (3, D("390.00"), 1)
    html = response.content.decode().lower()
    for text in ("case work queue", "amount now", "days left", "follow-up", "scan now", "refund work list",
                 "390.00", "paid twice", "avila, ana", "medicare part b", "⚑"):
        assert text in html, text
    assert "zzyzx" not in html


@pytest.mark.parametrize("params, expected", [
    ({"flagged": "yes"}, ["patient_case"]),
    ({"flagged": "no"}, ["payer_case", "undated"]),
    ({"due_within": "7"}, ["patient_case"]),
    ({"due_within": "60"}, ["patient_case", "payer_case"]),
    ({"due_within": "none"}, ["undated"]),
    ({"cause": "duplicate_payment"}, ["payer_case"]),
    ({"kind": "patient_credit"}, ["patient_case"]),
    ({"payer_type": "medicare"}, ["payer_case"]),
    ({"payer_type": "none"}, ["patient_case"]),
    ({"assigned": "me"}, ["undated"]),
    ({"assigned": "nobody"}, ["patient_case", "payer_case"]),
    ({"state": "investigating"}, []),
    ({"q": "avila"}, ["patient_case"]),
])
def test_queue_filters(client, world, adj, params, expected):
    client.force_login(world.clerk)
    rows = client.get(url("adjudication_case_changelist"), params).context["cl"].result_list
    assert [c.pk for c in rows] == [adj[name].pk for name in expected]


def test_queue_shows_resolved_cases_only_when_asked(client, world, adj):
    case = adj["undated"]
    Case.objects.filter(pk=case.pk).update(state=Case.State.RESOLVED, outcome=Case.Outcome.MONEY_GONE,
                                           resolved_at=case.identified_at)
    client.force_login(world.manager)
    open_ids = [c.pk for c in client.get(url("adjudication_case_changelist")).context["cl"].result_list]
    assert case.pk not in open_ids
    resolved = client.get(url("adjudication_case_changelist"), {"state": "resolved"}).context["cl"].result_list
    assert [c.pk for c in resolved] == [case.pk]


def test_scan_now_opens_cases_for_the_practice_as_the_user(client, world):
    bob = world.patient(first_name="Bob", last_name="Bell", account_number="B-1")
    world.pay(bob, "40.00")  # an available credit nobody has looked at
    client.force_login(world.clerk)
    page = client.get(url("adjudication_case_scan_now"))
    assert page.status_code == 200 and "Scan now" in page.content.decode()
    response = client.post(url("adjudication_case_scan_now"), {"practice": world.practice.pk, "reason": "Scan now"})
    assert response.status_code == 302
    case = Case.objects.get(patient=bob)
    assert case.kind == Case.Kind.PATIENT_CREDIT and case.amount == D("40.00")
    assert any("1 case(s) opened" in m for m in messages_of(client, response))
    again = client.post(url("adjudication_case_scan_now"), {"practice": world.practice.pk, "reason": "Again"})
    assert any("0 case(s) opened" in m for m in messages_of(client, again))
    assert Case.objects.filter(patient=bob).count() == 1


def test_scan_now_refuses_another_practice_and_asks_a_reason(client, world, adj):
    client.force_login(world.clerk)
    response = client.post(url("adjudication_case_scan_now"), {"practice": adj["b"].pk, "reason": "x"})
    assert response.status_code == 200 and response.context["form"].errors  # not a choice for this user
    response = client.post(url("adjudication_case_scan_now"), {"practice": world.practice.pk, "reason": ""})
    assert response.context["form"].errors["reason"]


# --- the case page ---------------------------------------------------------------------------------------

def test_case_page_shows_card_links_timeline_and_the_actions_of_its_state(client, world, adj):
    case = adj["patient_case"]
    client.force_login(world.clerk)
    response = client.get(url("adjudication_case_change", case.pk))
    assert response.status_code == 200
    html = response.content.decode()
    for text in ('id="case-card"', "Amount identified", "Money left now", "150.00", "3 days left", "flagged",
                 "Identified", 'id="case-covered"', 'id="case-timeline"', 'id="case-contacts"', 'id="case-proposals"',
                 url("credits_credit_change", adj["credit"].pk), url("ledger_payment_change", adj["credit"].payment_id),
                 url("ledger_patient_change", adj["ana"].pk)):
        assert text in html, text
    offered = {a.name for a, _ in response.context["case_actions"]}
    assert {"investigate", "wait_on_payer", "propose", "note", "confirm_balance", "review_source", "attach_document",
            "record_contact", "assign", "send_notice", "record_election"} <= offered
    assert not offered & {"approve", "reject", "carry_out", "reopen", "end_investigation"}


def test_another_practices_case_is_refused_everywhere(client, world, adj):
    other = adj["b_case"]
    client.force_login(world.clerk)
    assert client.get(url("adjudication_case_change", other.pk)).status_code == 302  # the admin's "doesn't exist"
    before = written(other)
    assert client.get(act(other, "note")).status_code == 404
    assert client.post(act(other, "note"), {"note-text": "peek"}).status_code == 404
    assert client.get(url("adjudication_case_document", other.pk, 1)).status_code == 404
    assert written(other) == before
    assert client.get(url("adjudication_case_history", other.pk)).status_code in (302, 403, 404)


def test_investigate_then_wait_on_payer_then_note_through_the_services(client, world, adj):
    case = adj["payer_case"]
    client.force_login(world.clerk)
    response = client.post(act(case, "investigate"), {"investigate-reason": "Checking the 835s"})
    assert response.status_code == 302 and response.url == url("adjudication_case_change", case.pk)
    case.refresh_from_db()
    assert case.state == Case.State.INVESTIGATING
    assert Case.history.filter(id=case.pk).latest("history_id").history_change_reason == "Checking the 835s"
    follow_up = adj["today"] + timedelta(days=10)
    client.post(act(case, "wait_on_payer"), {"wait_on_payer-reason": "Asked for a take-back",
                                             "wait_on_payer-follow_up_on": follow_up.isoformat()})
    case.refresh_from_db()
    assert (case.state, case.follow_up_on) == (Case.State.WAITING_PAYER, follow_up)
    client.post(act(case, "note"), {"note-text": "Rep said 2 weeks"})
    assert CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.NOTE, text__contains="Rep said 2 weeks",
                                    actor=world.clerk).exists()
    page = client.get(url("adjudication_case_change", case.pk)).content.decode()
    assert "Rep said 2 weeks" in page and "Waiting on the payer" in page


def test_contact_assign_confirm_review_and_a_document(client, world, adj):
    case = adj["payer_case"]
    client.force_login(world.clerk)
    client.post(act(case, "record_contact"), {
        "record_contact-contacted_on": adj["today"].isoformat(), "record_contact-channel": "phone",
        "record_contact-person": "Pat at Medicare", "record_contact-reference": "CALL-77",
        "record_contact-outcome": "They will recoup", "record_contact-reason": ""})
    contact = PayerContact.objects.get(case=case)
    assert (contact.reference, contact.created_by) == ("CALL-77", world.clerk)
    client.post(act(case, "assign"), {"assign-assignee": world.manager.pk, "assign-reason": "Medicare expert"})
    case.refresh_from_db()
    assert case.assigned_to == world.manager
    client.post(act(case, "confirm_balance"), {"confirm_balance-reason": "Checked the books"})
    client.post(act(case, "review_source"), {"review_source-reason": "Source", "review_source-findings": "ERA twice"})
    kinds = set(CaseEvent.objects.filter(case=case).values_list("kind", flat=True))
    assert {CaseEvent.Kind.CONTACT, CaseEvent.Kind.ASSIGNED, CaseEvent.Kind.BALANCE_CONFIRMED,
            CaseEvent.Kind.SOURCE_REVIEWED} <= kinds
    upload = SimpleUploadedFile("eob.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
                                content_type="application/pdf")
    response = client.post(act(case, "attach_document"), {"attach_document-reason": "The EOB",
                                                          "attach_document-upload": upload})
    assert response.status_code == 302, response.content.decode()[:2000]
    doc = CaseDocument.objects.get(case=case)
    page = client.get(url("adjudication_case_change", case.pk)).content.decode()
    link = url("adjudication_case_document", case.pk, doc.pk)
    assert link in page and "CALL-77" in page and "eob.pdf" in page
    download = client.get(link)
    assert download.status_code == 200 and b"".join(download.streaming_content).startswith(b"%PDF")
    assert "attachment" in download["Content-Disposition"]
    client.force_login(adj["b_boss"])  # another practice's manager: the document is not found
    assert client.get(link).status_code == 404


def test_bad_input_shows_the_error_and_writes_nothing(client, world, adj):
    case = adj["patient_case"]
    client.force_login(world.clerk)
    before = written(case)
    # no follow-up date: the form refuses
    response = client.post(act(case, "wait_on_payer"), {"wait_on_payer-reason": "Asked"})
    assert response.status_code == 200 and response.context["form"].errors["follow_up_on"]
    # more than is on hand: the service refuses, on the amount field, and as the page's message
    response = client.post(act(case, "propose"), {"propose-reason": "Refund", "propose-kind": "refund_patient",
                                                  "propose-amount": "151.00", "propose-method": "check"})
    assert response.status_code == 200
    assert "only 150.00 is left" in str(response.context["form"].errors)
    assert any("only 150.00 is left" in str(m) for m in response.context["messages"])
    # a transition the state does not allow (a billing clerk, a case that is not resolved)
    response = client.post(act(case, "reopen"), {"reopen-reason": "Try"})
    assert response.status_code == 200 and response.context["form"].errors
    assert any("cannot" in m or "manager" in m for m in [str(m) for m in response.context["messages"]])
    # an empty note
    response = client.post(act(case, "note"), {"note-text": "  "})
    assert response.status_code == 200 and response.context["form"].errors
    assert written(case) == before
    case.refresh_from_db()
    assert case.state == Case.State.IDENTIFIED


# --- proposals: propose, approve by another manager ------------------------------------------------------

def test_propose_then_approve_by_a_manager_who_did_not_propose(client, world, adj):
    case = adj["patient_case"]
    client.force_login(world.clerk)
    response = client.post(act(case, "propose"), {"propose-reason": "Patient asked", "propose-kind": "refund_patient",
                                                  "propose-amount": "150.00", "propose-method": "check",
                                                  "propose-reference": "CHK-100"})
    assert response.status_code == 302, response.content.decode()[:3000]
    proposal = Proposal.objects.get(case=case)
    case.refresh_from_db()
    assert case.state == Case.State.PROPOSED and proposal.proposed_by == world.clerk
    # the clerk is offered no decision; the page says a manager decides
    page = client.get(url("adjudication_case_change", case.pk))
    assert not {"approve", "reject"} & {a.name for a, _ in page.context["case_actions"]}
    assert "A manager of the practice approves" in page.content.decode()
    # the approvals list shows it to a manager
    client.force_login(world.manager)
    listed = client.get(url("adjudication_proposal_changelist"))
    assert [p.pk for p in listed.context["cl"].result_list] == [proposal.pk]
    page = client.get(url("adjudication_case_change", case.pk))
    assert {"approve", "reject"} <= {a.name for a, _ in page.context["case_actions"]}
    response = client.post(act(case, "approve"), {"approve-reason": "OK", "approve-reference": "CHK-100"})
    assert response.status_code == 302, response.content.decode()[:3000]
    proposal.refresh_from_db()
    case.refresh_from_db()
    assert proposal.decided_by == world.manager and proposal.state in (Proposal.State.APPROVED,
                                                                       Proposal.State.CARRIED_OUT)
    assert case.state in (Case.State.APPROVED, Case.State.RESOLVED)
    assert Refund.objects.filter(credit=adj["credit"], amount=D("150.00")).exists()


def test_a_manager_never_decides_their_own_proposal(client, world, adj):
    case = adj["payer_case"]
    client.force_login(world.manager)
    client.post(act(case, "propose"), {"propose-reason": "Return it", "propose-kind": "refund_payer",
                                       "propose-reference": "CHK-9"})
    proposal = Proposal.objects.get(case=case)
    page = client.get(url("adjudication_case_change", case.pk))
    assert not {"approve", "reject"} & {a.name for a, _ in page.context["case_actions"]}
    assert "You proposed it: another manager approves" in page.content.decode()
    listed = client.get(url("adjudication_proposal_changelist")).content.decode()
    assert "your proposal: another manager decides" in listed
    before = written(case)
    response = client.post(act(case, "approve"), {"approve-reason": "Me myself"})  # a hand-made POST
    assert response.status_code == 200 and "requester cannot approve" in str(response.context["form"].errors)
    assert written(case) == before
    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.PROPOSED and proposal.decided_by is None
    # another manager rejects it from the approvals list (a confirmation page with a reason)
    client.force_login(second_manager(world))
    confirm = client.post(url("adjudication_proposal_changelist"),
                          {"action": "reject_selected", "_selected_action": [proposal.pk]})
    assert confirm.status_code == 200 and "Reject proposals" in confirm.content.decode()
    done = client.post(url("adjudication_proposal_changelist"), {"action": "reject_selected", "confirm": "yes",
                                                                 "_selected_action": [proposal.pk],
                                                                 "reason": "Wait for the recoupment"})
    assert done.status_code == 302
    proposal.refresh_from_db()
    case.refresh_from_db()
    assert proposal.state == Proposal.State.REJECTED and case.state == Case.State.INVESTIGATING


def test_billing_staff_cannot_decide_from_the_approvals_list(client, world, adj):
    case = adj["payer_case"]
    client.force_login(world.manager)
    client.post(act(case, "propose"), {"propose-reason": "Return it", "propose-kind": "refund_payer",
                                       "propose-reference": "CHK-9"})
    client.force_login(world.clerk)
    page = client.get(url("adjudication_proposal_changelist"))
    assert page.status_code == 200
    assert "approve_selected" not in page.content.decode()


# --- unclaimed property, the refund work list ------------------------------------------------------------

def unclaimed_item(world, adj, amount="35.00"):
    rule = ClockRule.objects.create(kind=ClockRule.Kind.UNCLAIMED, name="Texas unclaimed (test)", us_state="TX",
                                    practice=world.practice, dormancy_years=3, cutoff_month=3, cutoff_day=1,
                                    report_month=7, report_day=1, letter_month=5, letter_day=1,
                                    letter_threshold=D("250.00"))
    case = adj["patient_case"]
    return UnclaimedProperty.objects.create(
        practice=world.practice, case=case, credit=adj["credit"], rule=rule, owner_state="TX", amount=D(amount),
        last_activity_on=date(2023, 2, 15), presumed_on=date(2026, 3, 1), report_due_on=date(2026, 7, 1),
        letter_due_on=None, report_year=2026)


def test_unclaimed_list_and_holder_report(client, world, adj):
    item = unclaimed_item(world, adj)
    client.force_login(world.clerk)
    response = client.get(url("adjudication_unclaimedproperty_changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("Unclaimed property", "report 07/01/2026", "no letter needed", "Holder report (CSV)", "Avila, Ana",
                 "35.00", "listed"):
        assert text in html, text
    form = client.get(url("adjudication_unclaimedproperty_report"))
    assert form.status_code == 200
    csv = client.get(url("adjudication_unclaimedproperty_report"),
                     {"practice": world.practice.pk, "year": 2026, "us_state": "tx"})
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    assert "attachment" in csv["Content-Disposition"]
    bad = client.get(url("adjudication_unclaimedproperty_report"), {"practice": world.practice.pk, "year": "x"})
    assert bad.status_code == 200 and bad.context["form"].errors
    client.force_login(adj["b_boss"])
    assert item.pk not in [i.pk for i in client.get(url("adjudication_unclaimedproperty_changelist"))
                           .context["cl"].result_list]


def test_refund_work_list_refunds_the_selected_credits(client, world, adj):
    RefundPolicy.objects.create(practice=world.practice, name="Small credits", min_amount=D("1.00"),
                                max_amount=D("500.00"))
    client.force_login(world.clerk)
    page = client.get(url("adjudication_case_refund_work_list"))
    assert page.status_code == 200
    listed = [c.pk for c in page.context["rows"]]
    assert adj["credit"].pk in listed
    response = client.post(url("adjudication_case_refund_work_list"), {"reason": ""})
    assert response.status_code == 200 and response.context["form"].errors
    response = client.post(url("adjudication_case_refund_work_list"), {"reason": "Refund policy",
                                                                       "credit": [adj["credit"].pk]})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Refund.objects.filter(credit=adj["credit"], requested_by=world.clerk).exists()


# --- the rules table and the settings admins --------------------------------------------------------------

def test_rules_billing_reads_manager_edits_their_practices_rule_with_history(client, world, adj):
    own = ClockRule.objects.create(kind=ClockRule.Kind.PATIENT_REFUND, name="Our 45 days", practice=world.practice,
                                   days=45)
    general = ClockRule.objects.create(kind=ClockRule.Kind.PATIENT_REFUND, name="Everyone 60", days=60)
    theirs = ClockRule.objects.create(kind=ClockRule.Kind.PATIENT_REFUND, name="Bayside 20", practice=adj["b"],
                                      days=20)
    client.force_login(world.clerk)
    listed = {r.pk for r in client.get(url("adjudication_clockrule_changelist")).context["cl"].result_list}
    assert {own.pk, general.pk} <= listed and theirs.pk not in listed
    page = client.get(url("adjudication_clockrule_change", own.pk))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()  # read only
    client.force_login(world.manager)
    page = client.get(url("adjudication_clockrule_change", own.pk))
    assert 'name="_save"' in page.content.decode()
    form = page.context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update({"days": "40", "reason": "Board decision", "active": "on", "practice": world.practice.pk})
    data = {k: v for k, v in data.items() if v is not False}
    response = client.post(url("adjudication_clockrule_change", own.pk), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    own.refresh_from_db()
    assert own.days == 40
    h = ClockRule.history.filter(id=own.pk).latest("history_id")
    assert (h.history_user, h.history_change_reason) == (world.manager, "Board decision")
    general_page = client.get(url("adjudication_clockrule_change", general.pk))
    assert 'name="_save"' not in general_page.content.decode()  # the seeded rules: administrators only
    assert client.get(url("adjudication_clockrule_history", own.pk)).status_code == 200


def test_settings_policies_and_bands_are_added_by_managers_only(client, world, adj):
    client.force_login(world.clerk)
    assert client.get(url("adjudication_refundpolicy_add")).status_code == 403
    assert client.get(url("adjudication_adjudicationsettings_add")).status_code == 403
    client.force_login(world.manager)
    response = client.post(url("adjudication_refundpolicy_add"), {
        "practice": world.practice.pk, "name": "Under 50", "active": "on", "min_amount": "0.01",
        "max_amount": "50.00", "min_age_days": "30", "require_no_open_balance": "on",
        "require_no_pending_claim": "on", "reason": "Rule 19"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    policy = RefundPolicy.objects.get(name="Under 50")
    assert RefundPolicy.history.filter(id=policy.pk).latest("history_id").history_change_reason == "Rule 19"
    response = client.post(url("adjudication_refundpolicy_add"), {
        "practice": world.practice.pk, "name": "Backwards", "active": "on", "min_amount": "50.00",
        "max_amount": "10.00", "min_age_days": "0", "reason": "x"})
    assert response.status_code == 200 and not RefundPolicy.objects.filter(name="Backwards").exists()
    response = client.post(url("adjudication_adjudicationsettings_add"), {
        "practice": world.practice.pk, "min_credit_age_days": "3", "warning_window_days": "10",
        "payer_credit_max_open_days": "60", "locked_credit_max_days": "90", "notice_sender": "",
        "reason": "Set up"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert AdjudicationSettings.objects.get(practice=world.practice).warning_window_days == 10
    # another practice's manager never sees them
    client.force_login(adj["b_boss"])
    assert policy.pk not in [p.pk for p in client.get(url("adjudication_refundpolicy_changelist"))
                             .context["cl"].result_list]
    assert client.post(url("adjudication_refundpolicy_add"), {
        "practice": world.practice.pk, "name": "Sneaky", "min_amount": "1.00", "min_age_days": "0",
        "reason": "x"}).status_code == 200
    assert not RefundPolicy.objects.filter(name="Sneaky").exists()


def test_index_lists_the_adjudication_pages(client, world, adj):
    client.force_login(world.manager)
    html = client.get(url("index")).content.decode()
    for name in ("adjudication_case_changelist", "adjudication_proposal_changelist",
                 "adjudication_case_refund_work_list", "adjudication_unclaimedproperty_changelist"):
        assert url(name) in html, name


# --- more actions: notice and election, the good-faith investigation, reopen, carry out, unclaimed ----------

def test_send_notice_then_the_patient_keeps_the_credit(client, world, adj, mailoutbox,
                                                       django_capture_on_commit_callbacks):
    case = adj["patient_case"]
    client.force_login(world.clerk)
    with django_capture_on_commit_callbacks(execute=True):  # the e-mail goes once the notice is committed
        response = client.post(act(case, "send_notice"), {"send_notice-reason": "Overpayment notice"})
    assert response.status_code == 302, response.content.decode()[:3000]
    case.refresh_from_db()
    notice = case.notices.get()
    assert case.notice_sent_on == notice.sent_on and mailoutbox and mailoutbox[0].to == ["ana@example.com"]
    page = client.get(url("adjudication_case_change", case.pk)).content.decode()
    letter = url("adjudication_case_notice_letter", case.pk, notice.pk)
    assert letter in page
    pdf = client.get(letter)
    assert pdf.status_code == 200 and b"".join(pdf.streaming_content).startswith(b"%PDF")
    response = client.post(act(case, "record_election"), {"record_election-reason": "Patient called",
                                                          "record_election-election": "keep"})
    assert response.status_code == 302, response.content.decode()[:3000]
    case.refresh_from_db()
    assert (case.election, case.election_by, case.state) == ("keep", world.clerk, Case.State.RESOLVED)
    assert case.outcome == Case.Outcome.KEPT
    # the same answer again: refused, shown, nothing written
    before = written(case)
    again = client.post(act(case, "record_election"), {"record_election-reason": "Again",
                                                       "record_election-election": "keep"})
    assert again.status_code == 200 and again.context["form"].errors and written(case) == before


def test_good_faith_investigation_pauses_a_medicare_clock_and_ending_it_restarts_it(client, world, adj):
    case = adj["payer_case"]
    rule = ClockRule.objects.create(kind=ClockRule.Kind.PAYER_RETURN, name="Medicare 60 days (test)",
                                    practice=world.practice, payer_type="medicare", days=60, suspension_max_days=180)
    Case.objects.filter(pk=case.pk).update(clock_rule=rule)
    client.force_login(world.clerk)
    page = client.get(url("adjudication_case_change", case.pk))
    investigate = next(form for a, form in page.context["case_actions"] if a.name == "investigate")
    assert "good_faith" in investigate.fields  # the rule allows a suspension
    response = client.post(act(case, "investigate"), {"investigate-reason": "Good faith", "investigate-good_faith": "on"})
    assert response.status_code == 302, response.content.decode()[:3000]
    case.refresh_from_db()
    assert case.investigation_started_on == adj["today"] and case.state == Case.State.INVESTIGATING
    page = client.get(url("adjudication_case_change", case.pk))
    assert "end_investigation" in {a.name for a, _ in page.context["case_actions"]}
    response = client.post(act(case, "end_investigation"), {"end_investigation-reason": "Found it"})
    assert response.status_code == 302, response.content.decode()[:3000]
    case.refresh_from_db()
    assert case.investigation_ended_on == adj["today"] and case.due_on is not None


def test_the_investigate_form_offers_no_good_faith_without_a_suspension_rule(client, world, adj):
    client.force_login(world.clerk)
    page = client.get(url("adjudication_case_change", adj["patient_case"].pk))
    investigate = next(form for a, form in page.context["case_actions"] if a.name == "investigate")
    assert "good_faith" not in investigate.fields


def test_a_manager_reopens_a_resolved_case_billing_is_not_offered_it(client, world, adj):
    case = adj["patient_case"]
    client.force_login(world.clerk)
    client.post(act(case, "record_election"), {"record_election-reason": "Patient called",
                                               "record_election-election": "keep"})
    case.refresh_from_db()
    assert case.state == Case.State.RESOLVED
    page = client.get(url("adjudication_case_change", case.pk))
    assert "reopen" not in {a.name for a, _ in page.context["case_actions"]}
    client.force_login(world.manager)
    page = client.get(url("adjudication_case_change", case.pk))
    assert "reopen" in {a.name for a, _ in page.context["case_actions"]}
    response = client.post(act(case, "reopen"), {"reopen-reason": "The patient changed their mind"})
    assert response.status_code == 302, response.content.decode()[:3000]
    case.refresh_from_db()
    assert (case.state, case.reopened_count) == (Case.State.INVESTIGATING, 1)


def test_an_approved_payer_refund_waits_for_its_check_number_then_is_carried_out(client, world, adj):
    case = adj["payer_case"]
    client.force_login(world.clerk)
    client.post(act(case, "propose"), {"propose-reason": "Return it", "propose-kind": "refund_payer"})
    client.force_login(world.manager)
    response = client.post(act(case, "approve"), {"approve-reason": "OK"})
    assert response.status_code == 302, response.content.decode()[:3000]
    case.refresh_from_db()
    assert case.state == Case.State.APPROVED
    page = client.get(url("adjudication_case_change", case.pk))
    assert "carry_out" in {a.name for a, _ in page.context["case_actions"]}
    assert "the check number is needed" in page.content.decode()
    response = client.post(act(case, "carry_out"), {"carry_out-reason": "Check mailed",
                                                    "carry_out-reference": "CHK-777"})
    assert response.status_code == 302, response.content.decode()[:3000]
    case.refresh_from_db()
    assert case.state == Case.State.RESOLVED and case.outcome == Case.Outcome.REFUND_PAYER
    assert Proposal.objects.get(case=case).state == Proposal.State.CARRIED_OUT


def test_unclaimed_turn_over_from_the_list_removes_the_credit(client, world, adj):
    item = unclaimed_item(world, adj, amount="150.00")
    client.force_login(world.clerk)  # billing staff propose it on the case; the list refuses them
    refused = client.post(url("adjudication_unclaimedproperty_changelist"),
                          {"action": "turn_over", "confirm": "yes", "_selected_action": [item.pk],
                           "reason": "Report year 2026"})
    item.refresh_from_db()
    assert item.state != UnclaimedProperty.State.TURNED_OVER
    assert not Credit.objects.get(pk=adj["credit"].pk).removed_amount
    listing = client.get(url("adjudication_unclaimedproperty_changelist"))
    assert "send_letters" in listing.content.decode() and '"turn_over"' not in listing.content.decode()
    client.force_login(world.manager)
    confirm = client.post(url("adjudication_unclaimedproperty_changelist"),
                          {"action": "turn_over", "_selected_action": [item.pk]})
    assert confirm.status_code == 200 and "Turn over as unclaimed property" in confirm.content.decode()
    done = client.post(url("adjudication_unclaimedproperty_changelist"),
                       {"action": "turn_over", "confirm": "yes", "_selected_action": [item.pk],
                        "reason": "Report year 2026"})
    assert done.status_code == 302
    messages = messages_of(client, done)
    item.refresh_from_db()
    assert item.state == UnclaimedProperty.State.TURNED_OVER, messages
    credit = Credit.objects.get(pk=adj["credit"].pk)
    assert (credit.on_hand, credit.removed_amount) == (D("0.00"), D("150.00"))
    case = Case.objects.get(pk=adj["patient_case"].pk)
    assert (case.state, case.outcome) == (Case.State.RESOLVED, Case.Outcome.UNCLAIMED)


def test_the_queue_costs_the_same_queries_for_few_and_many_cases(client, world, adj):
    client.force_login(world.clerk)
    client.get(url("adjudication_case_changelist"))  # warm the session and the caches
    with CaptureQueriesContext(connection) as few:
        client.get(url("adjudication_case_changelist"))
    for n in range(8):
        p = world.patient(first_name=f"P{n}", last_name="Many", account_number=f"M-{n}")
        world.pay(p, "10.00")
        Case.objects.create(practice=world.practice, kind=Case.Kind.PATIENT_CREDIT,
                            cause=Case.Cause.PATIENT_OVERPAYMENT, credit=Credit.objects.get(patient=p), patient=p,
                            amount=D("10.00"), determined_on=adj["today"], assigned_to=world.manager)
    with CaptureQueriesContext(connection) as many:
        response = client.get(url("adjudication_case_changelist"))
    assert len(response.context["cl"].result_list) == 11
    assert len(many) == len(few)


def test_unclaimed_send_letter_from_the_list_then_download_it(client, world, adj):
    item = unclaimed_item(world, adj, amount="150.00")
    UnclaimedProperty.objects.filter(pk=item.pk).update(letter_due_on=date(2026, 5, 1))
    client.force_login(world.clerk)
    done = client.post(url("adjudication_unclaimedproperty_changelist"),
                       {"action": "send_letters", "confirm": "yes", "_selected_action": [item.pk],
                        "reason": "Due diligence"})
    assert done.status_code == 302
    messages = messages_of(client, done)
    item.refresh_from_db()
    assert item.state == UnclaimedProperty.State.LETTER_SENT and item.letter, messages
    link = url("adjudication_unclaimedproperty_letter", item.pk)
    assert link in client.get(url("adjudication_unclaimedproperty_changelist")).content.decode()
    pdf = client.get(link)
    assert pdf.status_code == 200 and b"".join(pdf.streaming_content).startswith(b"%PDF")
    client.force_login(adj["b_boss"])
    assert client.get(link).status_code == 404
