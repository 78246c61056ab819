"""The unmatched queue protects the books (issue 9, found 7): a remittance claim matched by hand to
a claim of another patient, payer or date of service is refused unless the user confirms the
differences with a reason (recorded); "not ours" dismisses a waiting claim without posting; the
picker ranks the likely claims first. Service, admin pages and API; another practice's ids are
refused everywhere."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.urls import reverse

from ledger.errors import NotFound, PermissionDenied, RuleViolation
from ledger.models import JournalLine, Membership, Payer
from remittances.models import RemittanceBooking, RemittanceClaim, RemittanceClaimAction
from remittances.queue import (
    remittance_claim_candidates,
    remittance_claim_dismiss,
    remittance_claim_match,
    remittance_claim_mismatches,
)
from remittances.receive import remittance_file_import
from remittances.x12.generator import ClaimSpec, generate_835
from tests.api.conftest import error_of, make_api
from tests.factories import MembershipFactory, PatientFactory, PayerFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db

BCBS_ID = "BCBS01"


@pytest.fixture
def queue(world):
    """The case found: a BCBS remittance for NOBODY PAT, DoS 10/01, waits unmatched; the practice has
    a Medicare claim of another patient with DoS 11/16, and the right BCBS claim of Pat Nobody."""
    bcbs = PayerFactory(practice=world.practice, name="BCBS of Texas", payer_identifier=BCBS_ID)
    medicare = PayerFactory(practice=world.practice, name="Medicare", payer_type=Payer.Type.MEDICARE)
    rosa = world.patient(first_name="Rosa", last_name="Campbell", member_id="MC-77")
    pat = world.patient(first_name="Pat", last_name="Nobody", member_id="BC-12345")
    world.payer = medicare
    _, wrong = world.visit(rosa, date(2026, 11, 16), charge="180.00", number="MC-1116")
    _, same_day = world.visit(rosa, date(2026, 10, 1), charge="95.00", number="MC-1001")
    world.payer = bcbs
    _, right = world.visit(pat, date(2026, 10, 1), charge="120.00", number="BC-1001")
    era = generate_835(specs=[ClaimSpec("TYPO-1001", charge="120.00", paid="90.00",
                                        patient_responsibility=[("2", "30.00")], patient_last="NOBODY",
                                        patient_first="PAT", member_id="BC-12345",
                                        service_date=date(2026, 10, 1))],
                       payer_id=BCBS_ID, payer_name="BCBS OF TEXAS")
    done = remittance_file_import(practice_id=world.practice.pk, data=era, filename="bcbs.835", actor=world.clerk)
    rc = RemittanceClaim.objects.get(file=done.received.file)
    assert rc.state == "unmatched"
    return {"rc": rc, "wrong": wrong, "right": right, "same_day": same_day, "rosa": rosa, "pat": pat}


# --- the service -----------------------------------------------------------------------------------------

def test_a_claim_of_another_payer_patient_and_date_is_refused_then_confirmed(world, queue):
    rc, wrong = queue["rc"], queue["wrong"]
    lines = JournalLine.objects.count()
    with pytest.raises(RuleViolation) as refused:
        remittance_claim_match(remittance_claim_id=rc.pk, claim_id=wrong.pk, actor=world.clerk, reason="looks right")
    message = refused.value.message
    assert refused.value.code == "mismatch" and refused.value.field == "confirm_mismatch"
    assert "payer: the 835 says BCBS of Texas, the claim Medicare" in message
    assert "patient: the 835 says NOBODY, PAT, the claim Campbell, Rosa" in message
    assert "date of service: the 835 says 2026-10-01, the claim 2026-11-16" in message
    rc.refresh_from_db()
    wrong.refresh_from_db()
    assert (rc.state, wrong.state, JournalLine.objects.count()) == ("unmatched", "submitted", lines)
    assert not RemittanceClaimAction.objects.exists()

    # confirmed with a reason: posted, and who confirmed what is kept
    rc = remittance_claim_match(remittance_claim_id=rc.pk, claim_id=wrong.pk, actor=world.clerk,
                                reason="Payer sent it under the wrong plan; called them", confirm_mismatch=True)
    wrong.refresh_from_db()
    assert (rc.state, rc.claim_id, wrong.state, wrong.paid_amount) == ("posted", wrong.pk, "paid", D("90.00"))
    assert "confirmed by clerk" in rc.note and "called them" in rc.note
    (action,) = RemittanceClaimAction.objects.filter(remittance_claim=rc)
    assert (action.action, action.actor, action.claim, action.reason) == (
        "matched", world.clerk, wrong, "Payer sent it under the wrong plan; called them")
    assert [m["field"] for m in action.confirmed_mismatches] == ["payer", "patient", "date_of_service"]
    assert RemittanceBooking.objects.filter(remittance_claim=rc, kind="payer_payment").count() == 1


def test_the_right_claim_needs_no_confirmation_and_is_the_first_candidate(world, queue):
    rc, right, wrong = queue["rc"], queue["right"], queue["wrong"]
    assert remittance_claim_mismatches(rc, right) == []
    candidates = remittance_claim_candidates(rc)
    assert candidates[0][0] == right and candidates[0][1] == []
    assert wrong not in [c for c, _, _ in candidates[:1]]
    rc = remittance_claim_match(remittance_claim_id=rc.pk, claim_id=right.pk, actor=world.clerk,
                                reason="CLP01 mistyped by the payer")
    right.refresh_from_db()
    assert (rc.state, right.state, right.paid_amount) == ("posted", "paid", D("90.00"))
    # matched once: a second match is refused and books nothing
    with pytest.raises(RuleViolation, match="only a claim waiting for staff"):
        remittance_claim_match(remittance_claim_id=rc.pk, claim_id=right.pk, actor=world.clerk, reason="again")
    assert right.remittance_count == 1


def test_dismiss_takes_a_claim_off_the_queue_without_posting(world, queue):
    rc = queue["rc"]
    lines = JournalLine.objects.count()
    with pytest.raises(Exception, match="a reason is required"):
        remittance_claim_dismiss(remittance_claim_id=rc.pk, actor=world.clerk, reason="  ")
    rc = remittance_claim_dismiss(remittance_claim_id=rc.pk, actor=world.clerk, reason="Not our patient")
    assert rc.state == "dismissed" and "Not our patient" in rc.note and "clerk" in rc.note
    (action,) = RemittanceClaimAction.objects.filter(remittance_claim=rc)
    assert (action.action, action.actor, action.reason, action.claim) == ("dismissed", world.clerk,
                                                                           "Not our patient", None)
    assert action.at is not None and JournalLine.objects.count() == lines
    assert not RemittanceClaim.objects.filter(state__in=RemittanceClaim.WAITING).exists()
    # dismissed is final: neither matched nor dismissed again
    with pytest.raises(RuleViolation):
        remittance_claim_match(remittance_claim_id=rc.pk, claim_id=queue["right"].pk, actor=world.clerk, reason="x")
    with pytest.raises(RuleViolation):
        remittance_claim_dismiss(remittance_claim_id=rc.pk, actor=world.clerk, reason="x")


def test_a_posted_claim_cannot_be_dismissed(world, queue):
    rc = remittance_claim_match(remittance_claim_id=queue["rc"].pk, claim_id=queue["right"].pk, actor=world.clerk,
                                reason="right claim")
    with pytest.raises(RuleViolation, match="is posted"):
        remittance_claim_dismiss(remittance_claim_id=rc.pk, actor=world.clerk, reason="oops")
    rc.refresh_from_db()
    assert rc.state == "posted"


def test_another_practice_is_refused(world, queue):
    other = PracticeFactory(name="Elsewhere")
    outsider = MembershipFactory(practice=other, user=UserFactory(username="outsider"),
                                 role=Membership.Role.MANAGER).user
    other_pat = PatientFactory(practice=other)
    from ledger import services

    payer = PayerFactory(practice=other)
    enc = services.encounter_create(patient_id=other_pat.pk, date_of_service=date(2026, 10, 1), charge="120.00",
                                    estimated_pr="0.00", actor=outsider)
    other_claim = services.claim_submit(encounter_id=enc.pk, payer_id=payer.pk, claim_number="BC-1001",
                                        actor=outsider)
    with pytest.raises(PermissionDenied):
        remittance_claim_match(remittance_claim_id=queue["rc"].pk, claim_id=other_claim.pk, actor=outsider,
                               reason="mine now", confirm_mismatch=True)
    with pytest.raises(PermissionDenied):
        remittance_claim_dismiss(remittance_claim_id=queue["rc"].pk, actor=outsider, reason="not yours")
    with pytest.raises(NotFound):  # our clerk cannot post our remittance to their claim
        remittance_claim_match(remittance_claim_id=queue["rc"].pk, claim_id=other_claim.pk, actor=world.clerk,
                               reason="x", confirm_mismatch=True)
    assert other_claim not in [c for c, _, _ in remittance_claim_candidates(queue["rc"])]
    queue["rc"].refresh_from_db()
    assert queue["rc"].state == "unmatched"


# --- the admin pages ---------------------------------------------------------------------------------------

def test_admin_picker_shows_both_sides_and_warns(client, world, queue):
    client.force_login(world.clerk)
    rc = queue["rc"]
    page = client.get(reverse("admin:remittances_remittanceclaim_match", args=[rc.pk]))
    assert page.status_code == 200
    summary = dict(page.context["summary"])
    assert (summary["Patient (NM1*QC)"], summary["Member id"], summary["Service date"]) == \
        ("NOBODY, PAT", "BC-12345", "10/01/2026")
    assert summary["Charge / paid / PR"] == "120.00 / 90.00 / 30.00" and "BCBS of Texas" in summary["Payer (TRN)"]
    rows = page.context["candidates"]
    # likely first: Pat Nobody's BCBS claim of 10/01 agrees; Rosa Campbell's Medicare claim of the same day
    # follows, its payer and patient marked; her claim of 11/16 shares nothing and is not offered
    assert [r["claim"] for r in rows] == [queue["right"], queue["same_day"]]
    assert rows[0]["mismatches"] == [] and rows[1]["fields"] == {"payer", "patient"}
    html = page.content.decode()
    for text in ("Campbell, Rosa", "Medicare", "10/01/2026", "95.00", "Nobody, Pat", "BC-12345", "BCBS of Texas",
                 "payer differs", "patient differs", "Submitted", "Not ours: dismiss"):
        assert text in html

    # the wrong claim without confirmation: the warning, the refusal on the form, nothing posted
    url = reverse("admin:remittances_remittanceclaim_match", args=[rc.pk])
    response = client.post(url, {"claim": queue["wrong"].pk, "reason": "looks right"})
    assert response.status_code == 200 and "confirm_mismatch" in response.context["form"].errors
    assert "the 835 says <strong>NOBODY, PAT</strong>, the claim <strong>Campbell, Rosa</strong>" in \
        response.content.decode()
    rc.refresh_from_db()
    assert rc.state == "unmatched"
    response = client.post(url, {"claim": queue["wrong"].pk, "reason": "checked with the payer",
                                 "confirm_mismatch": "on"})
    assert response.status_code == 302
    rc.refresh_from_db()
    assert rc.state == "posted" and rc.actions.get().confirmed_mismatches
    change = client.get(reverse("admin:remittances_remittanceclaim_change", args=[rc.pk]))
    assert "checked with the payer (confirmed: payer, patient, date_of_service)" in change.content.decode()


def test_admin_dismiss_page(client, world, queue):
    client.force_login(world.clerk)
    rc = queue["rc"]
    url = reverse("admin:remittances_remittanceclaim_dismiss", args=[rc.pk])
    assert client.get(url).status_code == 200
    response = client.post(url, {"reason": ""})
    assert response.status_code == 200 and "reason" in response.context["form"].errors
    response = client.post(url, {"reason": "Not our patient"})
    assert response.status_code == 302
    rc.refresh_from_db()
    assert rc.state == "dismissed"
    again = client.post(url, {"reason": "again"})
    assert again.status_code == 200 and again.context["form"].non_field_errors()


def test_admin_pages_of_another_practice_are_404(client, world, queue):
    other = PracticeFactory(name="Elsewhere")
    outsider = MembershipFactory(practice=other, user=UserFactory(username="outsider"),
                                 role=Membership.Role.BILLING).user
    client.force_login(outsider)
    for name in ("remittances_remittanceclaim_match", "remittances_remittanceclaim_dismiss"):
        assert client.get(reverse(f"admin:{name}", args=[queue["rc"].pk])).status_code == 404
        assert client.post(reverse(f"admin:{name}", args=[queue["rc"].pk]),
                           {"reason": "x", "claim": queue["right"].pk}).status_code == 404
    queue["rc"].refresh_from_db()
    assert queue["rc"].state == "unmatched"


# --- the API -------------------------------------------------------------------------------------------------

def test_api_match_needs_the_confirmation_and_dismiss(world, queue):
    api = make_api(world.practice)
    rc, wrong = queue["rc"], queue["wrong"]
    r = api.post(f"/remittance-claims/{rc.pk}/match", {"claim": wrong.pk, "reason": "looks right"})
    assert r.status_code == 409
    err = error_of(r)
    assert (err["code"], err["field"]) == ("mismatch", "confirm_mismatch") and "NOBODY, PAT" in err["message"]
    r = api.post(f"/remittance-claims/{rc.pk}/match", {"claim": wrong.pk, "reason": "x", "confirm_mismatch": "yes"})
    assert r.status_code == 400  # a boolean, strictly
    r = api.post(f"/remittance-claims/{rc.pk}/dismiss", {})
    assert r.status_code == 400 and error_of(r)["field"] == "reason"
    r = api.post(f"/remittance-claims/{rc.pk}/dismiss", {"reason": "Not ours"})
    assert r.status_code == 200, r.content
    assert r.json()["state"] == "dismissed"
    r = api.post(f"/remittance-claims/{rc.pk}/dismiss", {"reason": "again"})
    assert r.status_code == 409


def test_api_match_confirmed_posts(world, queue):
    api = make_api(world.practice)
    r = api.post(f"/remittance-claims/{queue['rc'].pk}/match",
                 {"claim": queue["wrong"].pk, "reason": "payer confirmed by phone", "confirm_mismatch": True})
    assert r.status_code == 200, r.content
    assert (r.json()["state"], r.json()["claim"]) == ("posted", queue["wrong"].pk)
    assert "confirmed by" in r.json()["note"]


def test_api_of_another_practice_is_refused(world, queue):
    other_api = make_api(PracticeFactory(name="Across Town Clinic"), name="intruder")
    rc = queue["rc"]
    for path, body in ((f"/remittance-claims/{rc.pk}/match", {"claim": queue["right"].pk, "reason": "x"}),
                       (f"/remittance-claims/{rc.pk}/dismiss", {"reason": "x"})):
        assert other_api.post(path, body).status_code == 404
    api = make_api(world.practice)
    other_claim_id = queue["right"].pk + 10_000
    r = api.post(f"/remittance-claims/{rc.pk}/match", {"claim": other_claim_id, "reason": "x"})
    assert r.status_code == 404
    rc.refresh_from_db()
    assert rc.state == "unmatched"
