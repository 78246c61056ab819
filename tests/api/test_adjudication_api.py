"""The adjudication API (issue 11 item 10): the case queue and its filters, a case, its record and
payer contacts, every workflow step through the case services, the scan, the clock rules. Each route:
another practice's case is a 404 with nothing written, the roles and four eyes are the services'
(billing approving, the proposer approving, a second token of the proposer, an integration token:
403), bad input is a 400 and a transition the state does not allow a 409, with nothing written; a
POST with the same Idempotency-Key twice runs once."""

from datetime import date, timedelta
from decimal import Decimal as D
from urllib.parse import parse_qs, urlparse

import pytest
import time_machine

from adjudication.models import Case, CaseEvent, ClockRule, PayerContact, Proposal
from credits import services as credit_services
from credits.models import Credit, Refund
from ledger.models import Membership
from tests.api.conftest import error_of, make_api
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

TODAY = date(2026, 3, 10)


@pytest.fixture(autouse=True)
def _today():
    with time_machine.travel("2026-03-10 15:00 +00:00", tick=False):
        yield


def patient_case(world, amount="120.00", *, due_on=None, channel="card_reader", **kw) -> Case:
    """A patient's available credit (a payment with nothing to pay) and its case, as the scan opens it."""
    pat = world.patient()
    world.pay(pat, amount, channel=channel)
    credit = Credit.objects.filter(patient=pat).latest("id")
    return Case.objects.create(practice=world.practice, kind=Case.Kind.PATIENT_CREDIT,
                               cause=Case.Cause.PATIENT_OVERPAYMENT, source=credit.source, credit=credit, patient=pat,
                               amount=credit.on_hand, determined_on=TODAY, due_on=due_on, **kw)


def written(case_id: int) -> tuple:
    """Everything a case's services write, to prove a refusal wrote nothing."""
    c = Case.objects.get(pk=case_id)
    return (c.state, c.assigned_to_id, c.follow_up_on, c.history.count(), CaseEvent.objects.filter(case=c).count(),
            PayerContact.objects.filter(case=c).count(), Proposal.objects.filter(case=c).count(),
            Refund.objects.filter(credit_id=c.credit_id).count() if c.credit_id else 0)


@pytest.fixture
def deputy(world):
    """A second manager of the practice."""
    return MembershipFactory(practice=world.practice, user=UserFactory(username="deputy"),
                             role=Membership.Role.MANAGER).user


@pytest.fixture
def deputy_api(world, deputy):
    return make_api(world.practice, role=Membership.Role.MANAGER, name="deputy", person=deputy)


# --- the queue ------------------------------------------------------------------------------------------

def test_queue_sorted_by_due_date_with_money_left_days_left_and_flag(api, world):
    late = patient_case(world, "40.00", due_on=TODAY - timedelta(days=1))
    soon = patient_case(world, "60.00", due_on=TODAY + timedelta(days=5))
    later = patient_case(world, "80.00", due_on=TODAY + timedelta(days=30))
    undated = patient_case(world, "20.00")
    r = api.get("/cases")
    assert r.status_code == 200, r.content
    rows = r.json()["results"]
    assert [row["id"] for row in rows] == [late.pk, soon.pk, later.pk, undated.pk]
    assert [(row["money_left"], row["days_left"], row["flagged"]) for row in rows] == [
        ("40.00", -1, True), ("60.00", 5, True), ("80.00", 30, False), ("20.00", None, False)]


def test_queue_pages_by_cursor_in_due_date_order_without_repeats(api, world):
    made = [patient_case(world, "10.00", due_on=TODAY + timedelta(days=d)) for d in (3, 1, 2, 1, 5)]
    made.append(patient_case(world, "10.00"))
    expected = [c.pk for c in sorted(made, key=lambda c: (c.due_on or date.max, c.pk))]
    seen, params = [], {"limit": 2}
    while True:
        r = api.get("/cases", params)
        assert r.status_code == 200, r.content
        seen += [row["id"] for row in r.json()["results"]]
        if not r.json()["next"]:
            break
        params = {"limit": 2, "cursor": parse_qs(urlparse(r.json()["next"]).query)["cursor"][0]}
    assert seen == expected


def test_queue_filters_as_query_params(api, world):
    a = patient_case(world, due_on=TODAY + timedelta(days=3), assigned_to=world.clerk)
    b = patient_case(world, due_on=TODAY + timedelta(days=20))
    Case.objects.filter(pk=b.pk).update(state=Case.State.INVESTIGATING)
    c = patient_case(world, due_on=TODAY + timedelta(days=40))

    def ids(**params):
        r = api.get("/cases", params)
        assert r.status_code == 200, r.content
        return [row["id"] for row in r.json()["results"]]

    assert ids(state="investigating") == [b.pk]
    assert ids(state="open") == [a.pk, b.pk, c.pk]
    assert ids(state="resolved") == []
    assert ids(kind="patient_credit") == [a.pk, b.pk, c.pk]
    assert ids(kind="payer_credit") == []
    assert ids(cause="duplicate_payment") == []
    assert ids(due_within_days=20) == [a.pk, b.pk]
    assert ids(assigned_to=world.clerk.pk) == [a.pk]
    assert ids(assigned_to=0) == [b.pk, c.pk]
    assert ids(flagged="true") == [a.pk]
    assert ids(flagged="false") == [b.pk, c.pk]
    r = api.get("/cases/totals", {"state": "open", "due_within_days": 20})
    assert r.status_code == 200, r.content
    assert r.json() == {"count": 2, "amount": "240.00", "money_left": "240.00", "flagged": 1, "overdue": 0,
                        "follow_up_overdue": 0}
    for bad in ({"state": "closed"}, {"due_within_days": "-1"}, {"flagged": "maybe"}, {"kind": "x"},
                {"assigned_to": "me"}, {"stat": "open"}):
        r = api.get("/cases", bad)
        assert r.status_code == 400, (bad, r.content)
        assert error_of(r)["field"] == next(iter(bad)), bad


def test_another_practice_sees_no_case_and_reaches_none(world, other_api):
    case = patient_case(world)
    before = written(case.pk)
    other = make_api(other_api.practice, role=Membership.Role.MANAGER, name="intruder-manager")
    assert other.get("/cases").json()["results"] == []
    assert other.get("/cases/totals").json()["count"] == 0
    for path, body in [(f"/cases/{case.pk}", None), (f"/cases/{case.pk}/events", None),
                       (f"/cases/{case.pk}/contacts", None)]:
        r = other.get(path)
        assert r.status_code == 404 and error_of(r)["code"] == "not_found", path
    for verb, body in [("events", {"text": "x"}), ("investigate", {"reason": "x"}), ("propose", {
            "kind": "refund_patient", "method": "check", "reason": "x"}), ("approve", {"reason": "x"}),
            ("reject", {"reason": "x"}), ("reopen", {"reason": "x"}), ("election", {"election": "keep", "reason": "x"}),
            ("assign", {"assignee": None, "reason": "x"})]:
        r = other.post(f"/cases/{case.pk}/{verb}", body)
        assert r.status_code == 404 and error_of(r)["code"] == "not_found", (verb, r.content)
    assert written(case.pk) == before


def test_unknown_case_is_404(api):
    r = api.get("/cases/987654")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    r = api.post("/cases/987654/investigate", {"reason": "x"})
    assert r.status_code == 404


# --- a case, its record ----------------------------------------------------------------------------------

def test_case_detail_and_timeline_with_a_note_and_a_contact(api, world):
    case = patient_case(world, due_on=TODAY + timedelta(days=9))
    r = api.post(f"/cases/{case.pk}/events", {"text": "Called the patient's employer"})
    assert r.status_code == 201, r.content
    assert (r.json()["kind"], r.json()["text"], r.json()["actor"]) == ("note", "Called the patient's employer",
                                                                         api.token.acting_user.username)
    r = api.post(f"/cases/{case.pk}/contacts", {"contacted_on": "2026-03-09", "channel": "phone", "person": "Ann",
                                                "reference": "T-77", "outcome": "Will recoup", "follow_up_on":
                                                    "2026-03-20", "wait_on_payer": True})
    assert r.status_code == 201, r.content
    assert (r.json()["reference"], r.json()["follow_up_on"]) == ("T-77", "2026-03-20")
    detail = api.get(f"/cases/{case.pk}").json()
    assert (detail["state"], detail["follow_up_on"], detail["money_left"], detail["days_left"]) == \
        ("waiting_payer", "2026-03-20", "120.00", 9)
    events = api.get(f"/cases/{case.pk}/events").json()["results"]
    assert [e["kind"] for e in events] == ["note", "contact", "state"]
    assert events[1]["contact"] == PayerContact.objects.get(case=case).pk
    contacts = api.get(f"/cases/{case.pk}/contacts").json()["results"]
    assert [c["outcome"] for c in contacts] == ["Will recoup"]


def test_bad_input_is_400_with_nothing_written(api, world):
    case = patient_case(world)
    before = written(case.pk)
    for path, body, field in [
        ("events", {"text": "   "}, "text"),
        ("events", {}, "text"),
        ("contacts", {"contacted_on": "2026-13-01", "channel": "phone", "outcome": "x"}, "contacted_on"),
        ("contacts", {"contacted_on": "2026-03-09", "channel": "pigeon", "outcome": "x"}, "channel"),
        ("contacts", {"contacted_on": "2026-04-01", "channel": "phone", "outcome": "x"}, "contacted_on"),  # future
        ("wait-on-payer", {"reason": "x"}, "follow_up_on"),
        ("investigate", {}, "reason"),
        ("assign", {"assignee": 0, "reason": "x"}, "assignee"),
        ("propose", {"kind": "refund_patient", "amount": "12.345", "reason": "x"}, "amount"),
        ("propose", {"kind": "refund_patient", "amount": "-5.00", "reason": "x"}, "amount"),
        ("propose", {"kind": "refund_patient", "amount": 5.5, "reason": "x"}, "amount"),
        ("propose", {"kind": "gift", "reason": "x"}, "kind"),
        ("election", {"election": "maybe", "reason": "x"}, "election"),
    ]:
        r = api.post(f"/cases/{case.pk}/{path}", body)
        assert r.status_code == 400, (path, body, r.content)
        assert error_of(r)["field"] == field, (path, body, r.json())
    assert written(case.pk) == before


def test_assign_to_staff_only(api, world, other_api):
    case = patient_case(world)
    r = api.post(f"/cases/{case.pk}/assign", {"assignee": world.clerk.pk, "reason": "Yours"})
    assert r.status_code == 200, r.content
    assert r.json()["assigned_to"] == world.clerk.pk
    before = written(case.pk)
    outsider = MembershipFactory(practice=other_api.practice, user=UserFactory(username="outsider")).user
    r = api.post(f"/cases/{case.pk}/assign", {"assignee": outsider.pk, "reason": "x"})
    assert r.status_code == 400 and error_of(r)["field"] == "assignee_id", r.content
    assert written(case.pk) == before


# --- the workflow -----------------------------------------------------------------------------------------

def test_investigate_then_a_transition_the_state_does_not_allow_is_409(api, world):
    case = patient_case(world)
    r = api.post(f"/cases/{case.pk}/investigate", {"reason": "Looking at the EOB"})
    assert r.status_code == 200, r.content
    assert r.json()["state"] == "investigating"
    before = written(case.pk)
    r = api.post(f"/cases/{case.pk}/investigate", {"reason": "again"})
    assert r.status_code == 409 and error_of(r)["code"] == "invalid_transition", r.content
    r = api.post(f"/cases/{case.pk}/reject", {"reason": "nothing proposed"})
    assert r.status_code == 403  # a billing token may not decide at all
    assert written(case.pk) == before


def test_reopen_needs_a_manager_token(api, manager_api, world):
    case = patient_case(world)
    Case.objects.filter(pk=case.pk).update(state=Case.State.RESOLVED, outcome=Case.Outcome.APPLIED,
                                           outcome_note="applied by the nightly run", resolved_at="2026-03-09T12:00Z")
    before = written(case.pk)
    r = api.post(f"/cases/{case.pk}/reopen", {"reason": "Applied to the wrong visit"})
    assert r.status_code == 403 and error_of(r)["code"] == "permission_denied"
    assert written(case.pk) == before
    r = manager_api.post(f"/cases/{case.pk}/reopen", {"reason": "Applied to the wrong visit"})
    assert r.status_code == 200, r.content
    assert (r.json()["state"], r.json()["reopened_count"]) == ("investigating", 1)


def test_propose_and_four_eyes_on_approval(world, manager_api, deputy_api, deputy):
    """boss proposes; boss (the same token, or another token of boss), billing and an integration token
    may not approve; the deputy does, and the refund is carried out through the credits services."""
    case = patient_case(world, "120.00", channel="check")
    r = manager_api.post(f"/cases/{case.pk}/propose", {"kind": "refund_patient", "method": "check",
                                                       "reason": "Patient asked for a refund"})
    assert r.status_code == 201, r.content
    assert (r.json()["amount"], r.json()["state"], r.json()["proposed_by"]) == ("120.00", "proposed", "boss")
    before = written(case.pk)
    boss_again = make_api(world.practice, role=Membership.Role.MANAGER, name="boss-2", person=world.manager)
    billing_person = make_api(world.practice, name="clerk-token", person=world.clerk)
    integration = make_api(world.practice, name="ehr-sync")
    for who in (manager_api, boss_again):
        r = who.post(f"/cases/{case.pk}/approve", {"reason": "mine", "reference": "CHK 1"})
        assert r.status_code == 403 and error_of(r)["code"] == "permission_denied", r.content
    for who in (billing_person, integration):
        r = who.post(f"/cases/{case.pk}/approve", {"reason": "x"})
        assert r.status_code == 403, r.content
        r = who.post(f"/cases/{case.pk}/reject", {"reason": "x"})
        assert r.status_code == 403, r.content
    assert written(case.pk) == before
    r = deputy_api.post(f"/cases/{case.pk}/approve", {"reason": "Checked", "reference": "CHK 1001"})
    assert r.status_code == 200, r.content
    body = r.json()
    proposal = Proposal.objects.get(case=case)
    assert (proposal.state, proposal.decided_by) == (Proposal.State.CARRIED_OUT, deputy)
    assert body["state"] == "resolved" and body["outcome"] == "refund_patient"
    assert body["proposals"][0]["state"] == "carried_out"
    assert Refund.objects.filter(credit_id=case.credit_id, amount=D("120.00")).count() == 1


def test_money_moved_before_the_approval_is_refused_with_the_reason_and_nothing_half_done(api, deputy_api, world):
    """Example N through the API: 400.00 proposed by check; 100.00 of the credit leaves before the approval;
    the approval answers 200 with the case back in proposed, the proposal's refusal naming what is left,
    and no refund."""
    case = patient_case(world, "400.00", channel="check")
    r = api.post(f"/cases/{case.pk}/propose", {"kind": "refund_patient", "method": "check", "reason": "Refund"})
    assert r.status_code == 201, r.content
    credit_services.credit_remove(credit_id=case.credit_id, amount="100.00", actor=world.clerk,
                                  reason="Refunded 100.00 outside settle")
    r = deputy_api.post(f"/cases/{case.pk}/approve", {"reason": "OK", "reference": "CHK 2002"})
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["state"], body["money_left"]) == ("proposed", "300.00")
    assert body["proposals"][0]["state"] == "proposed"
    assert "300.00" in body["proposals"][0]["refusal"]
    assert not Refund.objects.filter(credit_id=case.credit_id).exists()
    assert CaseEvent.objects.filter(case=case, kind="refused").count() == 1


def test_propose_more_than_is_left_is_409_and_a_second_live_proposal_too(api, deputy_api, world):
    case = patient_case(world, "120.00", channel="check")
    before = written(case.pk)
    r = api.post(f"/cases/{case.pk}/propose", {"kind": "refund_patient", "method": "check", "amount": "120.01",
                                               "reason": "x"})
    assert r.status_code == 409, r.content
    assert "120.00" in error_of(r)["message"]
    assert written(case.pk) == before
    r = api.post(f"/cases/{case.pk}/propose", {"kind": "refund_patient", "method": "check", "amount": "100.00",
                                               "reason": "Part"})
    assert r.status_code == 201, r.content
    before = written(case.pk)
    r = api.post(f"/cases/{case.pk}/propose", {"kind": "refund_patient", "method": "check", "reason": "again"})
    assert r.status_code == 409, r.content
    assert written(case.pk) == before
    # the deputy rejects: back to investigating
    r = deputy_api.post(f"/cases/{case.pk}/reject", {"reason": "Apply it instead"})
    assert r.status_code == 200, r.content
    assert (r.json()["state"], r.json()["proposals"][0]["state"]) == ("investigating", "rejected")


def test_propose_names_a_known_claim(api, world):
    case = patient_case(world)
    before = written(case.pk)
    r = api.post(f"/cases/{case.pk}/propose", {"kind": "resubmit_claim", "claim": 987654, "reason": "x"})
    assert r.status_code == 404 and error_of(r)["field"] == "claim", r.content
    assert written(case.pk) == before


def test_same_idempotency_key_twice_runs_once(api, world):
    case = patient_case(world)
    first = api.post(f"/cases/{case.pk}/events", {"text": "Once"}, key="note-1")
    again = api.post(f"/cases/{case.pk}/events", {"text": "Once"}, key="note-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert CaseEvent.objects.filter(case=case, kind="note").count() == 1
    other = api.post(f"/cases/{case.pk}/events", {"text": "Another"}, key="note-1")
    assert other.status_code == 422
    r1 = api.post(f"/cases/{case.pk}/investigate", {"reason": "Look"}, key="inv-1")
    r2 = api.post(f"/cases/{case.pk}/investigate", {"reason": "Look"}, key="inv-1")
    assert (r1.status_code, r2.status_code) == (200, 200)
    assert CaseEvent.objects.filter(case=case, kind="state").count() == 1


def test_election_refund_is_recorded(api, world):
    case = patient_case(world)
    r = api.post(f"/cases/{case.pk}/election", {"election": "refund", "reason": "Patient phoned"})
    assert r.status_code == 200, r.content
    assert r.json()["election"] == "refund" and r.json()["state"] != "resolved"
    before = written(case.pk)
    r = api.post(f"/cases/{case.pk}/election", {"election": "refund", "reason": "again"})
    assert r.status_code == 409 and error_of(r)["code"] == "duplicate", r.content
    assert written(case.pk) == before


# --- the scan and the rules --------------------------------------------------------------------------------

def test_scan_now_opens_a_case_once(api, world, other_api):
    pat = world.patient()
    world.pay(pat, "75.00")
    r = api.post("/cases/scan", {"reason": "Month end"})
    assert r.status_code == 200, r.content
    assert r.json()["opened"] == 1
    case = Case.objects.get(practice=world.practice)
    assert (case.kind, case.amount, case.patient_id) == ("patient_credit", D("75.00"), pat.pk)
    r = api.post("/cases/scan", {"reason": "Again"})
    assert r.status_code == 200 and r.json()["opened"] == 0
    assert Case.objects.filter(practice=world.practice).count() == 1
    r = other_api.post("/cases/scan", {"reason": "Theirs"})
    assert r.status_code == 200 and r.json()["opened"] == 0
    assert Case.objects.count() == 1


def test_rules_are_read_only_and_another_practices_rule_is_not_found(api, world, other_api):
    mine = ClockRule.objects.create(kind="patient_refund", name="Our policy", practice=world.practice, days=45)
    theirs = ClockRule.objects.create(kind="patient_refund", name="Their policy", practice=other_api.practice,
                                      days=20)
    r = api.get("/rules", {"kind": "patient_refund", "limit": 200})
    assert r.status_code == 200, r.content
    names = {row["name"] for row in r.json()["results"]}
    assert "Our policy" in names and "Their policy" not in names
    assert api.get(f"/rules/{mine.pk}").json()["days"] == 45
    r = api.get(f"/rules/{theirs.pk}")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    assert api.client.post(f"/api/v1/rules/{mine.pk}", {}, format="json").status_code == 405
    assert api.patch(f"/rules/{mine.pk}", {"days": 1}).status_code == 405
    mine.refresh_from_db()
    assert mine.days == 45
