"""The Medicare credit balance report in the CMS-838 layout (DOMAIN rule 22), on demand.

`cms838_generate` takes, for one Medicare part, every credit balance due to a Medicare payer of
that part (a payer credit) identified on or before the period's end and never reported, and
records it as a line of a new report; the line is kept as reported (append-only) and a payer
credit can be on one line only, ever (a unique key): "a balance once reported is marked and not
reported again". Parts A and B are separate reports (each payer names its part).

Per line: beneficiary (last name, first initial), Medicare beneficiary identifier (the patient's
member id), internal control number (the payer's claim number), type of bill (institutional
claims), from and through dates (the date of service), paid date (the remittance that paid it;
else the day the credit was recorded), cost-report period open (O) or closed (C) against
ReportSettings.cost_report_closed_through, credit balance, amount repaid, method (C check, A
adjustment bill: recouped in a remittance, X adjustment submitted: a refund or recoupment proposed
or approved and not yet done), amount outstanding, reason (1 duplicate Medicare payment, 2 another
payer primary, 3 other, explained).

The PDF is the form: the header block on every page, 17 lines a page, page totals, and a last page
with the certification (fpdf2)."""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction
from fpdf import FPDF

from adjudication.models import Case, Proposal
from credits.models import PayerCredit
from ledger.access import ensure_staff
from ledger.errors import InvalidInput, NotFound, RuleViolation
from ledger.inputs import parse_id, require_reason
from ledger.locks import lock
from ledger.models import Payer, Practice
from remittances.models import RemittanceBooking
from reports.audits.runner import report_settings
from reports.exports.base import Column, ExportParams, ReportDef, register
from reports.exports.writers import latin1
from reports.models import Cms838Line, Cms838Report

LINES_PER_PAGE = 17
ZERO = Decimal("0.00")
REASONS = {PayerCredit.Reason.DUPLICATE: Cms838Line.Reason.DUPLICATE,
           PayerCredit.Reason.WRONG_PRIMARY: Cms838Line.Reason.OTHER_PRIMARY}
CERTIFICATION = (
    "I certify that I have read the above statements and that I have examined the accompanying credit balance "
    "report prepared by the provider named above for the period shown, and that to the best of my knowledge and "
    "belief, it is a true, correct and complete statement prepared from the books and records of the provider in "
    "accordance with applicable Federal laws, regulations and instructions.")


def _cutoff(practice: Practice, day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=ZoneInfo(practice.time_zone))


def cms838_candidates(*, practice_id: int, part: str, period_end: date):
    practice = Practice.objects.get(pk=practice_id)
    return (PayerCredit.objects.filter(practice_id=practice_id, payer__payer_type=Payer.Type.MEDICARE,
                                       payer__medicare_part=part, created_at__lt=_cutoff(practice, period_end),
                                       cms838_line__isnull=True)
            .select_related("claim__encounter__patient", "payer").order_by("created_at", "pk"))


def _paid_date(pc: PayerCredit, practice: Practice):
    if pc.claim_id:
        booking = (RemittanceBooking.objects.filter(kind="payer_credit", remittance_claim__claim_id=pc.claim_id)
                   .select_related("remittance_claim__transaction").order_by("entry_id").first())
        if booking and booking.remittance_claim.transaction.payment_date:
            return booking.remittance_claim.transaction.payment_date
    return pc.created_at.astimezone(ZoneInfo(practice.time_zone)).date()


def _method(pc: PayerCredit, case: Case | None) -> str:
    if pc.state == PayerCredit.State.REFUNDED:
        return Cms838Line.Method.CHECK
    if pc.state == PayerCredit.State.RECOUPED:
        return Cms838Line.Method.ADJUSTMENT_BILL
    if case and Proposal.objects.filter(case=case, kind__in=["refund_payer", "await_recoupment"],
                                        state__in=["proposed", "approved"]).exists():
        return Cms838Line.Method.ADJUSTMENT_SUBMITTED
    return Cms838Line.Method.NONE


def cms838_generate(*, practice_id, part: str, period_start: date, period_end: date, actor,
                    reason: str = "Medicare credit balance report") -> Cms838Report:
    reason = require_reason(reason)
    practice_id = parse_id(practice_id, field="practice")
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        raise NotFound(f"practice {practice_id} not found", field="practice")
    ensure_staff(actor, practice_id, manager=True)
    if part not in Cms838Report.Part.values:
        raise InvalidInput(f"part: {part!r} is not A or B", field="part")
    if period_end < period_start:
        raise InvalidInput(f"period_end: {period_end:%m/%d/%Y} is before the start {period_start:%m/%d/%Y}",
                           field="period_end")
    settings = report_settings(practice_id)
    ptan = settings.medicare_ptan_part_a if part == "A" else settings.medicare_ptan_part_b
    for value, field, words in ((ptan, f"medicare_ptan_part_{part.lower()}", f"the Part {part} provider number"),
                                (settings.report_contact_name, "report_contact_name", "the report's contact"),
                                (settings.report_contact_phone, "report_contact_phone", "the contact's phone")):
        if not value.strip():
            raise InvalidInput(f"{field}: {words} is not set in the practice's report settings", field=field)
    with transaction.atomic(durable=True):
        lock(practices=[practice_id])  # one generation at a time: a balance goes on one report
        report = Cms838Report.objects.create(
            practice=practice, part=part, period_start=period_start, period_end=period_end,
            provider_name=practice.name, provider_number=ptan, contact_name=settings.report_contact_name,
            contact_phone=settings.report_contact_phone, generated_by=actor, reason=reason)
        lines = []
        for n, pc in enumerate(cms838_candidates(practice_id=practice_id, part=part, period_end=period_end), 1):
            enc = pc.claim.encounter if pc.claim_id else None
            patient = enc.patient if enc else None
            case = Case.objects.filter(payer_credit=pc).first()
            paid = _paid_date(pc, practice)
            closed = settings.cost_report_closed_through
            code = REASONS.get(pc.reason, Cms838Line.Reason.OTHER)
            lines.append(Cms838Line(
                report=report, practice=practice, line_number=n, payer_credit=pc, case=case,
                beneficiary_last_name=patient.last_name if patient else "(no claim)",
                beneficiary_first_initial=(patient.first_name[:1] if patient else ""),
                mbi=patient.member_id if patient else "",
                icn=pc.payer_claim_number or (pc.claim.payer_claim_number if pc.claim_id else ""),
                type_of_bill=pc.claim.type_of_bill if pc.claim_id else "",
                from_date=enc.date_of_service if enc else None, through_date=enc.date_of_service if enc else None,
                paid_date=paid, cost_report_period="C" if closed and paid <= closed else "O",
                credit_balance=pc.amount, amount_repaid=pc.resolved_amount, method=_method(pc, case),
                amount_outstanding=pc.amount - pc.resolved_amount, reason=code,
                explanation="" if code != "3" else PayerCredit.Reason(pc.reason).label[:200]))
        if not lines:
            raise RuleViolation(f"no Medicare Part {part} credit balance is left to report up to "
                                f"{period_end:%m/%d/%Y}: every one is on an earlier report", field="part",
                                code="nothing_to_report")
        Cms838Line.objects.bulk_create(lines)
        report.line_count = len(lines)
        report.credit_total = sum((ln.credit_balance for ln in lines), ZERO)
        report.repaid_total = sum((ln.amount_repaid for ln in lines), ZERO)
        report.outstanding_total = report.credit_total - report.repaid_total
        report.save(update_fields=["line_count", "credit_total", "repaid_total", "outstanding_total"])
    return report


# --- the export: CSV/XLSX rows, and the form as PDF -------------------------------------------------

COLUMNS = [Column("line", "Line", "int", 0.45), Column("last", "Beneficiary last name", width=1.4),
           Column("initial", "First initial", width=0.5), Column("mbi", "Medicare beneficiary identifier", width=1.3),
           Column("icn", "Internal control number", width=1.3), Column("tob", "Type of bill", width=0.55),
           Column("from", "From", "date", 0.8), Column("through", "Through", "date", 0.8),
           Column("paid", "Paid date", "date", 0.8), Column("cost_report", "Open/closed", width=0.55),
           Column("credit", "Credit balance", "money", 0.9), Column("repaid", "Amount repaid", "money", 0.9),
           Column("method", "Method", width=0.5), Column("outstanding", "Amount outstanding", "money", 0.9),
           Column("reason", "Reason", width=0.5), Column("explanation", "Explanation", width=1.4)]


def _validate(params: ExportParams) -> ExportParams:
    rid = parse_id(params.extra.get("report"), field="report")
    if not Cms838Report.objects.filter(pk=rid, practice_id=params.practice_id).exists():
        raise NotFound(f"Medicare credit balance report {rid} not found", field="report")
    return ExportParams(practice_id=params.practice_id, extra={"report": rid})


def _lines(params):
    return Cms838Line.objects.filter(report_id=params.extra["report"]).order_by("line_number")


def _rows(params):
    for ln in _lines(params).iterator(chunk_size=2000):
        yield (ln.line_number, ln.beneficiary_last_name, ln.beneficiary_first_initial, ln.mbi, ln.icn,
               ln.type_of_bill, ln.from_date, ln.through_date, ln.paid_date, ln.cost_report_period,
               ln.credit_balance, ln.amount_repaid, ln.method, ln.amount_outstanding, ln.reason, ln.explanation)


def _summary(params):
    r = Cms838Report.objects.get(pk=params.extra["report"])
    return [("Provider", r.provider_name), ("Provider number", r.provider_number),
            ("Period", f"{r.period_start:%m/%d/%Y} - {r.period_end:%m/%d/%Y}"), ("Medicare part", r.get_part_display()),
            ("Contact", f"{r.contact_name}, {r.contact_phone}"), ("Lines", str(r.line_count)),
            ("Credit balances", f"{r.credit_total:,.2f}"), ("Repaid", f"{r.repaid_total:,.2f}"),
            ("Outstanding", f"{r.outstanding_total:,.2f}")]


class FormPDF(FPDF):
    def __init__(self, report: Cms838Report):
        super().__init__(orientation="L", unit="mm", format="Letter")
        self.report = report
        self.alias_nb_pages()
        self.set_auto_page_break(auto=False)
        usable = self.w - self.l_margin - self.r_margin
        total = sum(c.width for c in COLUMNS)
        self.widths = [usable * c.width / total for c in COLUMNS]

    def header_block(self):
        r = self.report
        self.set_font("Helvetica", "B", 11)
        self.cell(0, 6, "MEDICARE CREDIT BALANCE REPORT (CMS-838)", new_x="LMARGIN", new_y="NEXT", align="C")
        self.set_font("Helvetica", "", 8)
        for left, right in ((f"Provider name: {r.provider_name}", f"Provider number: {r.provider_number}"),
                            (f"Reporting period: {r.period_start:%m/%d/%Y} to {r.period_end:%m/%d/%Y}",
                             f"Medicare {r.get_part_display()}"),
                            (f"Contact: {r.contact_name}", f"Phone: {r.contact_phone}")):
            self.cell(self.w / 2 - self.l_margin, 4.5, latin1(left))
            self.cell(0, 4.5, latin1(right), new_x="LMARGIN", new_y="NEXT")
        self.ln(1)
        self.set_font("Helvetica", "B", 6)
        y = self.get_y()
        x = self.l_margin
        for col, w in zip(COLUMNS, self.widths):
            self.set_xy(x, y)
            self.multi_cell(w, 3, latin1(col.label), border="B", align="C")
            x += w
        self.set_xy(self.l_margin, y + 9)
        self.set_font("Helvetica", "", 7)

    def footer(self):
        self.set_y(-10)
        self.set_font("Helvetica", "", 7)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="C")


def _cell(value, kind):
    if value is None:
        return ""
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "date":
        return f"{value:%m/%d/%Y}"
    return latin1(value)


def _pdf(params, out, progress=None):
    report = Cms838Report.objects.get(pk=params.extra["report"])
    pdf = FormPDF(report)
    page_rows: list = []

    def flush():
        pdf.add_page()
        pdf.header_block()
        totals = [ZERO, ZERO, ZERO]
        for row in page_rows:
            for col, w, value in zip(COLUMNS, pdf.widths, row):
                text = _cell(value, col.kind)
                while text and pdf.get_string_width(text) > w - 1:
                    text = text[:-1]
                pdf.cell(w, 8, text, border="B", align="R" if col.kind in ("money", "int") else "L")
            pdf.ln()
            totals = [totals[0] + row[10], totals[1] + row[11], totals[2] + row[13]]
        pdf.set_font("Helvetica", "B", 7)
        pdf.cell(0, 6, f"Page totals: credit balances {totals[0]:,.2f}   repaid {totals[1]:,.2f}   "
                       f"outstanding {totals[2]:,.2f}", new_x="LMARGIN", new_y="NEXT")
        page_rows.clear()

    n = 0
    for row in _rows(params):
        page_rows.append(row)
        n += 1
        if len(page_rows) == LINES_PER_PAGE:
            flush()
    if page_rows or n == 0:
        flush()
    pdf.add_page()  # the certification
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 8, "CERTIFICATION", new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(0, 5, latin1(f"Provider: {report.provider_name}, provider number {report.provider_number}, "
                          f"Medicare {report.get_part_display()}, period {report.period_start:%m/%d/%Y} to "
                          f"{report.period_end:%m/%d/%Y}"), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, f"Lines: {report.line_count}; credit balances {report.credit_total:,.2f}; repaid "
                   f"{report.repaid_total:,.2f}; outstanding {report.outstanding_total:,.2f}",
             new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.multi_cell(0, 5, CERTIFICATION, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    for label in ("Signature of officer or administrator", "Printed name", "Title", "Date"):
        pdf.cell(0, 10, f"{label}: " + "_" * 60, new_x="LMARGIN", new_y="NEXT")
    out.write(bytes(pdf.output()))
    if progress:
        progress(n)


register(ReportDef(
    name="cms838", title="Medicare credit balance report (CMS-838)", takes=("report",), columns=COLUMNS,
    rows=_rows, summary=_summary, validate=_validate, pdf=_pdf, count=lambda p: _lines(p).count(),
    description="A generated CMS-838 report: its lines as reported, and the form with its certification."))
