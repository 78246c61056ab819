"""The demo's adjudication (seed_demo): what the nightly scan finds in the demo books, and a
morning's work on it. Kept apart from the books' stories in seed_demo.py."""

from datetime import timedelta

from django.test.utils import override_settings

from adjudication import scan as adjudication_scan
from adjudication.models import Case, RefundApprovalBand, RefundPolicy
from adjudication.services import cases as case_services
from adjudication.services import notices as notice_services
from adjudication.services import proposals as proposal_services
from credits import services as credit_services
from ledger.models import Claim, Payer


def adjudication(demo, riverside, lakeside, u):
    """What the nightly scan finds in the demo books, and a morning's work on it: a payer credit
    waiting on the payer after a phone call, a Medicare duplicate under a good-faith
    investigation, a patient refund proposed by billing for the manager to decide, a case
    assigned with a note; in California an overpayment notice sent. Riverside has a refund
    policy and approval bands."""
    b, m, lena = u["billing"], u["manager"], u["lakeside"]
    for policy in (RefundPolicy(practice=riverside, name="Small credits, nothing owed", min_amount="1.00",
                                max_amount="250.00", min_age_days=14),):
        policy._history_user, policy._change_reason = m, "Demo data"
        policy.save()
    for up_to, role, four_eyes in (("100.00", "billing", False), ("1000.00", "manager", False),
                                   (None, "manager", True)):
        band = RefundApprovalBand(practice=riverside, up_to=up_to, role=role, four_eyes=four_eyes)
        band._history_user, band._change_reason = m, "Demo data"
        band.save()
    # Medicare pays one of its paid claims a second time (example I)
    claim = Claim.objects.filter(practice=riverside, payer__payer_type=Payer.Type.MEDICARE, state=Claim.State.PAID,
                                 paid_amount__gt=0, payer_credits__isnull=True).order_by("pk").first()
    credit_services.payer_credit_open(
        payer_id=claim.payer_id, amount=claim.paid_amount, reason_code="duplicate_payment", actor=b,
        claim_id=claim.pk, payer_claim_number=claim.payer_claim_number, cash_received=True,
        reason="Medicare paid the claim a second time")
    for practice in (riverside, lakeside):
        adjudication_scan.scan_practice(practice_id=practice.pk, reason="Nightly scan (demo data)")
    cases = Case.objects.filter(practice=riverside).open().order_by("pk")
    payer_cases = list(cases.filter(kind=Case.Kind.PAYER_CREDIT).select_related("payer"))
    for case in payer_cases:
        if case.payer.payer_type == Payer.Type.MEDICARE:
            case_services.case_investigate(case=case, actor=b, good_faith=True,
                                           reason="Checking the Medicare payment history before returning it")
        else:
            case_services.case_record_contact(
                case=case, actor=b, contacted_on=demo.today, channel="phone", person="Provider services",
                reference=f"CALL-{case.pk:05d}", outcome="The payer will recoup the duplicate from a later check",
                follow_up_on=demo.today + timedelta(days=14), wait_on_payer=True,
                reason="Called the payer about the duplicate payment")
    patient_cases = list(cases.filter(kind=Case.Kind.PATIENT_CREDIT).select_related("credit"))
    for case in patient_cases[:1]:
        proposal_services.case_propose(case=case, actor=b, kind="refund_patient", method="check",
                                       reason="The patient asked for the money back; refund by check")
    for case in patient_cases[1:2]:
        case_services.case_assign(case=case, actor=m, assignee_id=b.pk, reason="Please look into this one")
        case_services.case_note(case=case, actor=b, text="Waiting for the patient to call back about the credit")
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):  # no mail from a seed
        for case in Case.objects.filter(practice=lakeside, kind=Case.Kind.PATIENT_CREDIT).open().order_by("pk")[:1]:
            notice_services.case_send_notice(case=case, actor=lena, reason="Overpayment notice (California)")
