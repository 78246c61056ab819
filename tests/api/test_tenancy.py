"""Tenancy: a token of another practice never reads or writes this practice's data. Every route
of the schema is called with the other practice's token against this practice's objects: ids in
the path or in the body are "not found" (404, never 403), lists show none of them, and writes
that name no object act on the token's own practice only. A new route must be added here (the
last test fails otherwise)."""

import json
from datetime import date
from decimal import Decimal as D
from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from drf_spectacular.generators import SchemaGenerator

from adjudication.models import Case, ClockRule, UnclaimedProperty
from adjudication.services.cases import case_attach_document
from credits import services as credit_services
from credits.models import Credit, CreditImport, ManualCreditRequest, NightlyRun, Refund
from ledger.models import Claim, Encounter, Membership, Patient, Payer, Payment
from remittances.models import RemittanceClaim, RemittanceFile
from remittances.nightly import nightly_run
from remittances.posting import remittance_file_post
from remittances.receive import remittance_file_receive
from remittances.x12.generator import ClaimSpec, generate_835
from reports.audits.runner import run_audit
from reports.cms838 import cms838_generate
from reports.exports.jobs import export_run, export_start
from reports.models import AuditFinding, AuditRun, CaseReview, Cms838Line, Cms838Report, ExportJob, ReportSettings
from tests.api.conftest import error_of, make_api
from tests.factories import PatientFactory, PayerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def a(world):
    """Practice A with one of everything."""
    w = world
    w.payer.payer_identifier = "PAYER-A"
    w.payer.save()
    pat = w.patient()
    enc, claim = w.visit(pat, date(2026, 3, 3), number="A-1")
    held = w.pay(pat, "50.00", encounter=enc).credits[0]
    w.remit(claim, pr="20.00", paid="150.00")
    pay = w.pay(pat, "300.00", channel="portal")
    avail = pay.credits[0]
    refund = credit_services.refund_request(credit_id=avail.pk, amount="200.00", actor=w.clerk, reason="Asked")
    received = remittance_file_receive(practice_id=w.practice.pk, filename="a.835", actor=w.clerk, data=generate_835(
        specs=[ClaimSpec("UNKNOWN-1", charge="80.00", paid="50.00")], payer_id="PAYER-A"))
    remittance_file_post(file_id=received.file.pk, actor=w.clerk)
    rc = RemittanceClaim.objects.get(file=received.file)
    run = nightly_run(practice_id=w.practice.pk).run
    # waiting for a manager (issue 9): a manual credit and a CSV import above the practice's limit
    manual = credit_services.manual_credit_add(patient_id=pat.pk, amount="5000.00", reason="old", actor=w.clerk)
    batch = credit_services.credit_import_create(practice_id=w.practice.pk, filename="a.csv", actor=w.clerk,
                                               data=f"account_number,amount,note\n{pat.account_number},2500.00,old\n"
                                               .encode()).batch
    # adjudication (issue 11): a case about the available credit, and a clock rule of A's own
    case = Case.objects.create(practice=w.practice, kind=Case.Kind.PATIENT_CREDIT, cause=Case.Cause.PATIENT_OVERPAYMENT,
                               credit=Credit.objects.get(pk=avail.pk), patient=pat, amount=D("100.00"),
                               determined_on=date(2026, 3, 3))
    rule = ClockRule.objects.create(kind=ClockRule.Kind.PATIENT_REFUND, name="A's policy", practice=w.practice, days=45)
    doc = case_attach_document(case=case.pk, actor=w.clerk, reason="EOB",
                               upload=SimpleUploadedFile("eob.pdf", b"%PDF-1.4\n%%EOF\n"))
    item = UnclaimedProperty.objects.create(
        practice=w.practice, case=case, credit_id=avail.pk, owner_state="TX", amount=D("100.00"),
        rule=ClockRule.objects.filter(kind=ClockRule.Kind.UNCLAIMED, us_state="TX").first(),
        last_activity_on=date(2023, 2, 15), presumed_on=date(2026, 3, 1), report_due_on=date(2026, 7, 1),
        report_year=2026)
    # reports (issue 12): an audit run with a finding and a case review, a finished export, a Medicare Part B
    # report of one payer credit and a second payer credit not yet reported
    audit_run = run_audit(practice_id=w.practice.pk, kind="books", actor=w.manager, reason="Month end")
    finding = AuditFinding.objects.create(run=audit_run, practice=w.practice, kind="credit_buckets", severity="error",
                                          object_type="credit", object_id=avail.pk, object_label="A's credit",
                                          key=f"credit_buckets:credit:{avail.pk}")
    review = CaseReview.objects.create(practice=w.practice, case=case, run=audit_run)
    job = export_start(practice_id=w.practice.pk, report="aging", format="csv", params={"as_of": "2026-03-31"},
                       actor=w.manager)
    export_run(job.pk)
    medicare = PayerFactory(practice=w.practice, payer_type=Payer.Type.MEDICARE, medicare_part="B")
    ReportSettings.objects.update_or_create(practice=w.practice, defaults={
        "medicare_ptan_part_b": "A-PTAN", "report_contact_name": "A", "report_contact_phone": "1"})
    reported = credit_services.payer_credit_open(payer_id=medicare.pk, amount="30.00", reason_code="duplicate_payment",
                                                 actor=w.clerk, cash_received=True, reason="Paid twice")
    cms838 = cms838_generate(practice_id=w.practice.pk, part="B", period_start=date(2026, 1, 1),
                             period_end=date(2026, 12, 31), actor=w.manager)
    unreported = credit_services.payer_credit_open(payer_id=medicare.pk, amount="40.00",
                                                   reason_code="duplicate_payment", actor=w.clerk, cash_received=True,
                                                   reason="Paid twice")
    assert reported.cms838_line.report_id == cms838.pk
    return SimpleNamespace(patient=pat.pk, encounter=enc.pk, claim=claim.pk, payment=pay.payment.pk, held=held.pk,
                           credit=avail.pk, refund=refund.pk, file=received.file.pk, rclaim=rc.pk, run=run.pk,
                           payer=w.payer.pk, manual=manual.pk, batch=batch.pk,
                           membership=Membership.objects.get(user=w.clerk, practice=w.practice).pk,
                           case=case.pk, rule=rule.pk, doc=doc.pk, item=item.pk, audit_run=audit_run.pk,
                           finding=finding.pk, review=review.pk, job=job.pk, cms838=cms838.pk,
                           unreported=unreported.pk)


LISTED = {"/payers": Payer, "/patients": Patient, "/encounters": Encounter, "/claims": Claim, "/payments": Payment,
          "/credits": Credit, "/refunds": Refund, "/remittance-files": RemittanceFile,
          "/remittance-claims": RemittanceClaim, "/nightly-runs": NightlyRun, "/manual-credits": ManualCreditRequest,
          "/credit-imports": CreditImport, "/memberships": Membership, "/cases": Case, "/rules": ClockRule,
          "/refund-work-list": Credit, "/unclaimed-property": UnclaimedProperty, "/audit-runs": AuditRun,
          "/audit-findings": AuditFinding, "/case-reviews": CaseReview, "/exports": ExportJob,
          "/cms838-reports": Cms838Report}


def routes(a):
    """(method, schema path, concrete path, body, expectation). Expectations: "404" (with `field` for ids in
    a body: (404, field)), "list" (200, none of A's rows), "own" (2xx on the token's own practice)."""
    d, c = a, None
    return [
        ("get", "/api/v1/token", "/token", c, "own"),
        ("get", "/api/v1/practice", "/practice", c, "own"),
        ("patch", "/api/v1/practice", "/practice", {"auto_apply": False, "reason": "x"}, "own"),
        ("get", "/api/v1/payers", "/payers", c, "list"),
        ("post", "/api/v1/payers", "/payers", {"name": "Mine", "payer_type": "commercial"}, "own"),
        ("get", "/api/v1/payers/{id}", f"/payers/{d.payer}", c, "404"),
        ("get", "/api/v1/patients", "/patients", c, "list"),
        ("post", "/api/v1/patients", "/patients", {"account_number": "B-1", "first_name": "B", "last_name": "B"},
         "own"),
        ("get", "/api/v1/patients/{id}", f"/patients/{d.patient}", c, "404"),
        ("post", "/api/v1/patients/{id}/auto-apply", f"/patients/{d.patient}/auto-apply",
         {"excluded": True, "reason": "x"}, "404"),
        ("post", "/api/v1/patients/{id}/apply-credits", f"/patients/{d.patient}/apply-credits", {}, "404"),
        ("get", "/api/v1/patients/{id}/preselect", f"/patients/{d.patient}/preselect?encounter_ids={d.encounter}",
         c, "404"),
        ("get", "/api/v1/encounters", "/encounters", c, "list"),
        ("post", "/api/v1/encounters", "/encounters",
         {"patient": d.patient, "date_of_service": "2026-01-01", "charge": "10.00"}, ("404", "patient")),
        ("get", "/api/v1/encounters/{id}", f"/encounters/{d.encounter}", c, "404"),
        ("get", "/api/v1/claims", "/claims", c, "list"),
        ("post", "/api/v1/claims", "/claims", {"encounter": d.encounter, "payer": d.payer, "claim_number": "X"},
         ("404", "encounter")),
        ("get", "/api/v1/claims/{id}", f"/claims/{d.claim}", c, "404"),
        ("post", "/api/v1/claims/{id}/result", f"/claims/{d.claim}/result",
         {"outcome": "denied", "reason": "x"}, "404"),
        ("post", "/api/v1/claims/{id}/resubmit", f"/claims/{d.claim}/resubmit", {"reason": "x"}, "404"),
        ("get", "/api/v1/payments", "/payments", c, "list"),
        ("post", "/api/v1/payments", "/payments", {"patient": d.patient, "amount": "5.00", "channel": "cash"},
         ("404", "patient")),
        ("get", "/api/v1/payments/{id}", f"/payments/{d.payment}", c, "404"),
        ("post", "/api/v1/payments/checkout", "/payments/checkout",
         {"patient": d.patient, "encounter_ids": [d.encounter]}, ("404", "patient")),
        ("get", "/api/v1/credits", "/credits", c, "list"),
        ("get", "/api/v1/credits/{id}", f"/credits/{d.credit}", c, "404"),
        ("post", "/api/v1/credits/manual", "/credits/manual", {"patient": d.patient, "amount": "5.00", "reason": "x"},
         ("404", "patient")),
        ("post", "/api/v1/credits/purchase", "/credits/purchase",
         {"patient": d.patient, "amount": "5.00", "channel": "cash"}, ("404", "patient")),
        ("post", "/api/v1/credits/unlock", "/credits/unlock", {"credit_ids": [d.held], "reason": "x"},
         ("404", "credit_ids")),
        ("post", "/api/v1/credits/{id}/move", f"/credits/{d.held}/move", {"to_encounter": None, "reason": "x"},
         "404"),
        ("post", "/api/v1/credits/{id}/refunds", f"/credits/{d.credit}/refunds", {"amount": "1.00", "reason": "x"},
         "404"),
        ("post", "/api/v1/credits/{id}/remove", f"/credits/{d.credit}/remove", {"reason": "x"}, "404"),
        ("get", "/api/v1/refunds", "/refunds", c, "list"),
        ("get", "/api/v1/refunds/{id}", f"/refunds/{d.refund}", c, "404"),
        ("post", "/api/v1/refunds/{id}/approve", f"/refunds/{d.refund}/approve", {}, "404"),
        ("post", "/api/v1/refunds/{id}/reject", f"/refunds/{d.refund}/reject", {"reason": "x"}, "404"),
        ("post", "/api/v1/refunds/{id}/issue", f"/refunds/{d.refund}/issue", {"reference": "1"}, "404"),
        ("get", "/api/v1/manual-credits", "/manual-credits", c, "list"),
        ("get", "/api/v1/manual-credits/{id}", f"/manual-credits/{d.manual}", c, "404"),
        ("post", "/api/v1/manual-credits/{id}/approve", f"/manual-credits/{d.manual}/approve", {}, "404"),
        ("post", "/api/v1/manual-credits/{id}/reject", f"/manual-credits/{d.manual}/reject", {"reason": "x"}, "404"),
        ("get", "/api/v1/credit-imports", "/credit-imports", c, "list"),
        ("post", "/api/v1/credit-imports", "/credit-imports", "csv-upload", "own"),
        ("get", "/api/v1/credit-imports/{id}", f"/credit-imports/{d.batch}", c, "404"),
        ("post", "/api/v1/credit-imports/{id}/approve", f"/credit-imports/{d.batch}/approve", {}, "404"),
        ("post", "/api/v1/credit-imports/{id}/reject", f"/credit-imports/{d.batch}/reject", {"reason": "x"}, "404"),
        ("get", "/api/v1/remittance-files", "/remittance-files", c, "list"),
        ("post", "/api/v1/remittance-files", "/remittance-files", "upload", "own"),
        ("get", "/api/v1/remittance-files/{id}", f"/remittance-files/{d.file}", c, "404"),
        ("get", "/api/v1/remittance-files/{id}/claims", f"/remittance-files/{d.file}/claims", c, "404"),
        ("get", "/api/v1/remittance-claims", "/remittance-claims", c, "list"),
        ("get", "/api/v1/remittance-claims/{id}", f"/remittance-claims/{d.rclaim}", c, "404"),
        ("post", "/api/v1/remittance-claims/{id}/match", f"/remittance-claims/{d.rclaim}/match",
         {"claim": d.claim, "reason": "x"}, "404"),
        ("post", "/api/v1/remittance-claims/{id}/dismiss", f"/remittance-claims/{d.rclaim}/dismiss",
         {"reason": "x"}, "404"),
        ("get", "/api/v1/nightly-runs", "/nightly-runs", c, "list"),
        ("post", "/api/v1/nightly-runs", "/nightly-runs", {}, "own"),
        ("get", "/api/v1/nightly-runs/{id}", f"/nightly-runs/{d.run}", c, "404"),
        ("post", "/api/v1/nightly-runs/preview", "/nightly-runs/preview", {}, "own"),
        ("get", "/api/v1/memberships", "/memberships", c, "list"),
        # A's staff are not B's manager's to hire: an unknown user, as if there were none
        ("post", "/api/v1/memberships", "/memberships", {"username": "clerk", "role": "billing", "reason": "x"},
         ("404", "username")),
        ("get", "/api/v1/memberships/{id}", f"/memberships/{d.membership}", c, "404"),
        ("post", "/api/v1/memberships/{id}/revoke", f"/memberships/{d.membership}/revoke", {"reason": "x"}, "404"),
        ("get", "/api/v1/cases", "/cases", c, "list"),
        ("get", "/api/v1/cases/totals", "/cases/totals", c, "own"),
        ("post", "/api/v1/cases/scan", "/cases/scan", {"reason": "x"}, "own"),
        ("get", "/api/v1/cases/{id}", f"/cases/{d.case}", c, "404"),
        ("get", "/api/v1/cases/{id}/events", f"/cases/{d.case}/events", c, "404"),
        ("post", "/api/v1/cases/{id}/events", f"/cases/{d.case}/events", {"text": "x"}, "404"),
        ("get", "/api/v1/cases/{id}/contacts", f"/cases/{d.case}/contacts", c, "404"),
        ("post", "/api/v1/cases/{id}/contacts", f"/cases/{d.case}/contacts",
         {"contacted_on": "2026-03-03", "channel": "phone", "outcome": "x"}, "404"),
        ("post", "/api/v1/cases/{id}/investigate", f"/cases/{d.case}/investigate", {"reason": "x"}, "404"),
        ("post", "/api/v1/cases/{id}/end-investigation", f"/cases/{d.case}/end-investigation", {"reason": "x"},
         "404"),
        ("post", "/api/v1/cases/{id}/wait-on-payer", f"/cases/{d.case}/wait-on-payer",
         {"reason": "x", "follow_up_on": "2026-04-01"}, "404"),
        ("post", "/api/v1/cases/{id}/assign", f"/cases/{d.case}/assign", {"reason": "x", "assignee": None}, "404"),
        ("post", "/api/v1/cases/{id}/reopen", f"/cases/{d.case}/reopen", {"reason": "x"}, "404"),
        ("post", "/api/v1/cases/{id}/propose", f"/cases/{d.case}/propose",
         {"kind": "refund_patient", "method": "check", "reason": "x"}, "404"),
        ("post", "/api/v1/cases/{id}/approve", f"/cases/{d.case}/approve", {"reason": "x"}, "404"),
        ("post", "/api/v1/cases/{id}/reject", f"/cases/{d.case}/reject", {"reason": "x"}, "404"),
        ("post", "/api/v1/cases/{id}/carry-out", f"/cases/{d.case}/carry-out", {"reason": "x"}, "404"),
        ("post", "/api/v1/cases/{id}/notice", f"/cases/{d.case}/notice", {}, "404"),
        ("post", "/api/v1/cases/{id}/election", f"/cases/{d.case}/election", {"election": "keep", "reason": "x"},
         "404"),
        ("post", "/api/v1/cases/{id}/confirm-balance", f"/cases/{d.case}/confirm-balance", {"reason": "x"}, "404"),
        ("post", "/api/v1/cases/{id}/review-source", f"/cases/{d.case}/review-source",
         {"reason": "x", "findings": "x"}, "404"),
        ("get", "/api/v1/cases/{id}/documents", f"/cases/{d.case}/documents", c, "404"),
        ("post", "/api/v1/cases/{id}/documents", f"/cases/{d.case}/documents", "document", "404"),
        ("get", "/api/v1/cases/{id}/documents/{doc_id}/file", f"/cases/{d.case}/documents/{d.doc}/file", c, "404"),
        ("get", "/api/v1/refund-work-list", "/refund-work-list", c, "list"),
        ("post", "/api/v1/refund-work-list/refund", "/refund-work-list/refund",
         {"credit_ids": [d.credit], "reason": "x"}, ("404", "credit_ids")),
        ("get", "/api/v1/unclaimed-property", "/unclaimed-property", c, "list"),
        ("get", "/api/v1/unclaimed-property/{id}", f"/unclaimed-property/{d.item}", c, "404"),
        ("post", "/api/v1/unclaimed-property/{id}/send-letter", f"/unclaimed-property/{d.item}/send-letter",
         {"reason": "x"}, "404"),
        ("post", "/api/v1/unclaimed-property/{id}/turn-over", f"/unclaimed-property/{d.item}/turn-over",
         {"reason": "x"}, "404"),
        ("get", "/api/v1/unclaimed-property/{id}/letter", f"/unclaimed-property/{d.item}/letter", c, "404"),
        ("get", "/api/v1/unclaimed-property/holder-report", "/unclaimed-property/holder-report?year=2026", c,
         "own-csv"),
        ("get", "/api/v1/rules", "/rules", c, "list"),
        ("get", "/api/v1/rules/{id}", f"/rules/{d.rule}", c, "404"),
        # reports (issue 12): manager tokens only; the other practice's manager sees none of A's
        ("get", "/api/v1/audit-runs", "/audit-runs", c, "list"),
        ("post", "/api/v1/audit-runs", "/audit-runs", {"kind": "books", "reason": "x"}, "own"),
        ("get", "/api/v1/audit-runs/{id}", f"/audit-runs/{d.audit_run}", c, "404"),
        ("get", "/api/v1/audit-findings", "/audit-findings", c, "list"),
        ("get", "/api/v1/audit-findings/{id}", f"/audit-findings/{d.finding}", c, "404"),
        ("post", "/api/v1/audit-findings/{id}/acknowledge", f"/audit-findings/{d.finding}/acknowledge",
         {"reason": "x"}, "404"),
        ("post", "/api/v1/audit-findings/{id}/resolve", f"/audit-findings/{d.finding}/resolve", {"reason": "x"},
         "404"),
        ("get", "/api/v1/case-reviews", "/case-reviews", c, "list"),
        ("get", "/api/v1/case-reviews/{id}", f"/case-reviews/{d.review}", c, "404"),
        ("post", "/api/v1/case-reviews/{id}/record", f"/case-reviews/{d.review}/record",
         {"outcome": "passed", "note": "x"}, "404"),
        ("get", "/api/v1/measures", "/measures?date_from=2026-01-01&date_to=2026-12-31", c, "own"),
        ("get", "/api/v1/measures/trend", "/measures/trend?end=2026-12-31&weeks=2", c, "own"),
        ("get", "/api/v1/reconciliation", "/reconciliation?as_of=2026-12-31", c, "own"),
        ("get", "/api/v1/reports", "/reports", c, "own"),
        ("get", "/api/v1/exports", "/exports", c, "list"),
        ("post", "/api/v1/exports", "/exports", {"report": "aging", "format": "csv", "params": {"as_of": "2026-12-31"}},
         "own"),
        ("get", "/api/v1/exports/{id}", f"/exports/{d.job}", c, "404"),
        ("get", "/api/v1/exports/{id}/file", f"/exports/{d.job}/file", c, "404"),
        ("get", "/api/v1/cms838-reports", "/cms838-reports", c, "list"),
        # B has no Medicare credit of its own: A's unreported one is not B's to report
        ("post", "/api/v1/cms838-reports", "/cms838-reports",
         {"part": "B", "period_start": "2026-01-01", "period_end": "2026-12-31", "reason": "x"}, "own-nothing"),
        ("get", "/api/v1/cms838-reports/{id}", f"/cms838-reports/{d.cms838}", c, "404"),
    ]


def test_every_route_refuses_another_practices_objects(a, other_api, world):
    """With a manager token of the other practice, so that role checks pass and tenancy is what refuses."""
    other_api = make_api(other_api.practice, role="manager", name="intruder-manager")
    ReportSettings.objects.update_or_create(practice=other_api.practice, defaults={
        "medicare_ptan_part_b": "B-PTAN", "report_contact_name": "B", "report_contact_phone": "2"})
    before = {c.pk: (c.state, c.on_hand, c.refund_hold) for c in Credit.objects.filter(practice=world.practice)}
    for method, _, path, body, expect in routes(a):
        if body == "upload":
            r = other_api.post(path, {"file": SimpleUploadedFile("b.835", generate_835(
                specs=[ClaimSpec("A-1")], payer_id="PAYER-A"))}, fmt="multipart")
        elif body == "csv-upload":  # A's account numbers mean nothing here: B imports for its own patient
            PatientFactory(practice=other_api.practice, account_number="B-CSV-1")
            r = other_api.post(path, {"file": SimpleUploadedFile("b.csv", b"account_number,amount,note\n"
                                                                           b"B-CSV-1,5.00,old\n")}, fmt="multipart")
        elif body == "document":
            r = other_api.post(path, {"file": SimpleUploadedFile("b.pdf", b"%PDF-1.4\nB\n"), "reason": "x"},
                               fmt="multipart")
        elif method == "get":
            base, _, query = path.partition("?")
            r = other_api.get(base, dict(p.split("=") for p in query.split("&")) if query else None)
        else:
            r = getattr(other_api, method)(path, body)
        where = f"{method.upper()} {path}"
        if expect == "list":
            assert r.status_code == 200, where
            shown = [row["id"] for row in r.json()["results"]]
            assert not LISTED[path].objects.filter(pk__in=shown, practice=world.practice).exists(), where
        elif expect == "own-csv":  # a file, not JSON: none of A's rows in it
            assert r.status_code == 200, (where, r.content)
            assert world.practice.name not in r.content.decode() and r.content.decode().count("\n") == 1, where
        elif expect == "own-nothing":  # refused for want of the token's own rows, nothing of A's taken
            assert r.status_code == 409 and error_of(r)["code"] == "nothing_to_report", (where, r.content)
        elif expect == "own":
            assert r.status_code in (200, 201, 202), (where, r.content)
            assert json.dumps(r.json()).find(world.practice.name) == -1, where
        else:
            status, field = (expect, None) if isinstance(expect, str) else expect
            assert r.status_code == int(status), (where, r.content)
            assert error_of(r)["code"] == "not_found", where
            if field:
                assert error_of(r)["field"] == field, where
    # practice A is untouched: its credits as they were, its 835 claim still unmatched, the B upload not matched
    after = {c.pk: (c.state, c.on_hand, c.refund_hold) for c in Credit.objects.filter(practice=world.practice)}
    assert after == before
    assert RemittanceClaim.objects.get(pk=a.rclaim).state == "unmatched"
    assert not RemittanceClaim.objects.filter(practice=other_api.practice, claim__isnull=False).exists()
    assert NightlyRun.objects.filter(practice=world.practice).count() == 1
    assert UnclaimedProperty.objects.get(pk=a.item).state == "listed"
    assert Case.objects.get(pk=a.case).documents.count() == 1
    assert AuditFinding.objects.get(pk=a.finding).state == "open" and CaseReview.objects.get(pk=a.review).state == \
        "pending"
    assert not Cms838Report.objects.filter(practice=other_api.practice).exists()
    assert not Cms838Line.objects.filter(payer_credit_id=a.unreported).exists()
    world.practice.refresh_from_db()
    assert world.practice.auto_apply is True


def test_the_table_covers_every_route_in_the_schema(a):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    in_schema = {(m, p) for p, ops in schema["paths"].items() for m in ops if m in ("get", "post", "patch")}
    in_table = {(m, p) for m, p, *_ in routes(a)}
    assert in_schema == in_table
