"""The demo's reports (seed_demo): a billing-company manager who sees both practices side by side,
the report settings (Medicare provider number, contact), Medicare's part on its payer, the first
audits of the books and of the work (the work audit puts resolved cases up for a second review),
a Medicare credit balance report of the year so far, and an aging export. All through the
services, as a manager would do it on the pages."""

from datetime import date

from django.db import transaction

from adjudication.models import Case
from adjudication.services import proposals as proposal_services
from ledger import services as ledger_services
from ledger.models import Membership, Payer
from reports.audits import run_audit
from reports.cms838 import cms838_candidates, cms838_generate
from reports.exports.jobs import export_start
from reports.services.settings import report_settings_update


def reports(demo, riverside, lakeside, u):
    company = u["company"]
    for practice in (riverside, lakeside):
        demo.membership(company, practice, Membership.Role.MANAGER, actor=u["admin"])
    m = u["manager"]
    for payer in Payer.objects.filter(practice=riverside, payer_type=Payer.Type.MEDICARE):
        ledger_services.payer_update(payer_id=payer.pk, changes={"medicare_part": "B"}, actor=m,
                                     reason="Novitas pays Part B for the practice")
    report_settings_update(practice_id=riverside.pk, actor=m, reason="Demo data", medicare_ptan_part_b="R44120",
                           report_contact_name="Maria Delgado", report_contact_phone="512-555-0142",
                           cost_report_closed_through=date(demo.today.year - 1, 12, 31).isoformat(),
                           review_sample_size=3)
    report_settings_update(practice_id=lakeside.pk, actor=company, reason="Demo data",
                           report_contact_name="Carla Reyes", report_contact_phone="510-555-0177",
                           review_sample_size=2)
    # two patient refunds decided this morning, so the work audit has resolved cases to sample
    b = u["billing"]
    for n, case in enumerate(Case.objects.filter(practice=riverside, kind=Case.Kind.PATIENT_CREDIT,
                                                 state=Case.State.IDENTIFIED).order_by("-pk")[:2]):
        proposal_services.case_propose(case=case, actor=b, kind="refund_patient", method="check",
                                       reason="Nothing owed; the patient wants the credit back")
        proposal_services.case_approve(case=case, actor=m, reason="Refund by check", reference=f"CHK {5101 + n}")
    for practice, actor in ((riverside, m), (lakeside, company)):
        for kind in ("books", "work"):
            run_audit(practice_id=practice.pk, kind=kind, actor=actor, reason="First audit after the move to settle")
    start = date(demo.today.year, 1, 1)
    if cms838_candidates(practice_id=riverside.pk, part="B", period_end=demo.today).exists():
        cms838_generate(practice_id=riverside.pk, part="B", period_start=start, period_end=demo.today, actor=m,
                        reason="Medicare credit balances of the year so far")
    # queued after its commit: bin/run's scheduler writes the file (tests run django-q synchronously)
    with transaction.atomic():
        export_start(practice_id=riverside.pk, report="aging", format="xlsx", params={}, actor=m)
