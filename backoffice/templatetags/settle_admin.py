"""Template helpers of the admin back-office: money and the back-office links of the index."""

from decimal import Decimal

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from adjudication.models import Case, Proposal
from backoffice.views.common import user_practice_ids
from credits.models import CreditImport, ManualCreditRequest, Refund
from ledger.models import Membership
from remittances.models import RemittanceClaim

register = template.Library()


@register.filter
def money(value):
    """12345.6 -> '12,345.60'; None -> '—'. Right-aligned by the `money` CSS class where shown."""
    if value is None or value == "":
        return "—"
    try:
        return f"{Decimal(value):,.2f}"
    except (ArithmeticError, ValueError, TypeError):
        return value


@register.filter
def money_cell(value):
    return format_html('<span class="money">{}</span>', money(value))


@register.simple_tag(takes_context=True)
def backoffice_links(context):
    """The back-office pages for the index, with the counts that need attention (scoped)."""
    request = context.get("request")
    if request is None or not request.user.is_active or not request.user.is_staff:
        return []
    ids = user_practice_ids(request)
    if not ids and not request.user.is_superuser:
        return []
    approvals = Refund.objects.filter(practice_id__in=ids, state=Refund.State.REQUESTED, needs_approval=True).count()
    waiting = RemittanceClaim.objects.filter(practice_id__in=ids, state__in=RemittanceClaim.WAITING).count()
    manual = ManualCreditRequest.objects.filter(practice_id__in=ids, state=ManualCreditRequest.State.PENDING).count()
    imports = CreditImport.objects.filter(practice_id__in=ids, state=CreditImport.State.PENDING).count()
    open_cases = Case.objects.filter(practice_id__in=ids).exclude(state=Case.State.RESOLVED).count()
    proposals = Proposal.objects.filter(case__practice_id__in=ids, state=Proposal.State.PROPOSED).count()
    return [
        {"url": reverse("admin:credits_patientresponsibility_changelist"), "label": "Patient responsibility",
         "help": "Patients with open balances and their credits"},
        {"url": reverse("admin:backoffice_lockedcredit_changelist"), "label": "Locked credits",
         "help": "Credits held for a date of service; unlock in bulk"},
        {"url": reverse("admin:backoffice_refundapproval_changelist"), "label": "Refunds awaiting approval",
         "count": approvals, "help": "Refunds above the practice's threshold (managers)"},
        {"url": reverse("admin:credits_manualcreditrequest_changelist"), "label": "Manual credits awaiting approval",
         "count": manual, "help": "Manual credits above the practice's limit (managers)"},
        {"url": reverse("admin:credits_creditimport_changelist") + "?state__exact=pending",
         "label": "Credit imports awaiting approval", "count": imports,
         "help": "CSV imports above the practice's limit (managers)"},
        {"url": reverse("admin:remittances_remittancefile_upload"), "label": "Upload 835 files",
         "help": "Read and post payers' remittances"},
        {"url": reverse("admin:remittances_remittanceclaim_changelist") + "?waiting=yes", "label": "Unmatched claims",
         "count": waiting, "help": "Remittance claims waiting for staff"},
        {"url": reverse("admin:credits_creditimport_upload"), "label": "Import credits (CSV)",
         "help": "Credits from an older system, in bulk"},
        {"url": reverse("admin:credits_nightlyrun_changelist"), "label": "Nightly runs",
         "help": "Runs, their lines; preview or run now"},
        {"url": reverse("admin:adjudication_case_changelist"), "label": "Case work queue", "count": open_cases,
         "help": "Open credit-balance cases by due date; scan now"},
        {"url": reverse("admin:adjudication_proposal_changelist"), "label": "Proposals awaiting approval",
         "count": proposals, "help": "Proposed resolutions of cases (managers)"},
        {"url": reverse("admin:adjudication_case_refund_work_list"), "label": "Refund work list",
         "help": "Credits the practice's refund policies put up for refund"},
        {"url": reverse("admin:adjudication_unclaimedproperty_changelist"), "label": "Unclaimed property",
         "help": "Credits past their state's dormancy; letters, turn-over, holder report"},
    ]


# the managers' reports (issue 12): each (url name, label, help); a page not registered yet is left out
REPORT_LINKS = (
    ("admin:reports_dashboard", "Dashboard", "Turnaround, approval and error rates, aging, share of A/R, trends"),
    ("admin:reports_auditfinding_changelist", "Audit findings", "What the daily and weekly audits found"),
    ("admin:reports_casereview_changelist", "Case reviews", "Resolved cases sampled for a second review"),
    ("admin:reports_exportjob_catalog", "Reports and exports", "Every report as CSV, Excel or PDF"),
    ("admin:reports_cms838report_changelist", "Medicare credit balance report", "CMS-838, on demand"),
)


@register.simple_tag(takes_context=True)
def report_links(context):
    """The managers' report pages for the index (managers and superusers only)."""
    request = context.get("request")
    if request is None or not request.user.is_active or not request.user.is_staff:
        return []
    if not request.user.is_superuser and not Membership.objects.filter(
            user=request.user, role=Membership.Role.MANAGER).exists():
        return []
    out = []
    for name, label, help_text in REPORT_LINKS:
        try:
            out.append({"url": reverse(name), "label": label, "help": help_text})
        except NoReverseMatch:
            continue
    return out
