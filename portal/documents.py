"""What the patient reads (issue 13): the portal's PDFs (receipts, the checkout receipt, statements
of account) and the plain words the pages and the PDFs share (how a payment was made, where a
credit came from, what a payer did), so a page and its PDF never say it differently.

The PDFs are fpdf2 documents, as adjudication/letters.py and reports/exports/writers.py make them:
each function returns the bytes; the views send them as an attachment. They only read (through
portal.selectors, always through the patient) and never write. The built-in PDF fonts know Latin-1
only: other characters are folded to their closest Latin-1 letter or shown as "?"."""

import unicodedata
from collections import OrderedDict
from datetime import date
from decimal import Decimal, InvalidOperation

from django.conf import settings
from fpdf import FPDF

from adjudication.clocks import local_date, practice_today
from credits.models import Credit, CreditApplication
from credits.selectors import patient_owes
from ledger.models import Claim, Payment
from ledger.money import ZERO
from portal import selectors

# --- plain words ---------------------------------------------------------------------------------------


def usdate(d) -> str:
    return f"{d:%m/%d/%Y}" if d else ""


def dollars(amount) -> str:
    return f"${Decimal(amount):,.2f}"


def visit_name(encounter) -> str:
    """What a visit was, for a patient: its description, or "Office visit"."""
    return encounter.description or "Office visit"


def visit_status(encounter) -> str:
    """Rule 9 in words, from `has_open_claim` / `waiting_on` (portal.selectors.owing_visits): the
    share is an estimate while a claim waits on the payer, final once none does."""
    if getattr(encounter, "has_open_claim", False):
        payer = getattr(encounter, "waiting_on", None)
        return f"Estimate — waiting on {payer}" if payer else "Estimate — waiting on your insurer"
    return "Final"


def how_paid(payment: Payment) -> str:
    ch = Payment.Channel
    words = {ch.PORTAL: "Card in the portal", ch.CARD_READER: "Card at the desk", ch.CASH: "Cash",
             ch.EXTERNAL: "Recorded by the practice"}
    if payment.channel == ch.CHECK:
        return f"Check no. {payment.check_number}" if payment.check_number else "Check"
    return words.get(payment.channel, payment.get_channel_display())


def card_ending(payment: Payment) -> str:
    """The last part of the card processor's reference (never the whole of it, and nothing of the card)."""
    ref = payment.processor_reference or ""
    return ref[-4:] if ref else ""


def credit_origin(credit: Credit) -> str:
    """Where a credit came from (Credit.Source), in a patient's words."""
    visit = credit.origin_encounter or credit.locked_encounter
    on = f" on {usdate(visit.date_of_service)}" if visit is not None else ""
    src = Credit.Source
    words = {
        src.OVERPAYMENT: (f"You paid more than you owe for your visit{on} (a payment above your share, or a "
                          "share your insurer lowered later): the difference is yours." if visit is not None
                          else "You paid more than you owed: the difference is yours."),
        src.RESUBMISSION: f"Your payment for your visit{on}, set aside while the insurer looks at the claim again.",
        src.HELD_PAYMENT: f"A payment for your visit{on}, held until the insurer decides what you owe.",
        src.MANUAL: "Added by the practice.",
        src.PURCHASED: (f"Bought ahead for your visit{on}." if credit.locked_encounter_id or credit.origin_encounter_id
                        else "Bought ahead, to use for any bill."),
        src.IMPORT: "Carried over from the practice's earlier billing system.",
    }
    return words.get(credit.source, credit.get_source_display())


def credit_status(credit: Credit) -> str:
    st = Credit.State
    if credit.state == st.AVAILABLE:
        return "Available: you can use this for any bill, or ask for it back."
    if credit.state == st.LOCKED:
        return (f"Held for your visit on {usdate(credit.locked_encounter.date_of_service)} "
                "until the insurer decides.")
    return {st.APPLIED: "Used for your bills.", st.REFUNDED: "Refunded to you.",
            st.REMOVED: "Removed by the practice."}.get(credit.state, credit.get_state_display())


def claim_words(claim: Claim) -> str:
    """What the payer did with a claim, in a patient's words."""
    payer, s = claim.payer.name, Claim.State
    return {
        s.SUBMITTED: f"Sent to {payer}; waiting for its decision.",
        s.PENDING: f"{payer} is reviewing it.",
        s.RESUBMITTED: f"Sent to {payer} again; waiting for its new decision.",
        s.FORWARDED: f"{payer} passed it on to another insurer.",
        s.REVERSED: f"{payer} took back its decision; waiting for a corrected one.",
        s.PAID: f"{payer} decided and paid its part.",
        s.DENIED: f"{payer} decided not to pay (denied).",
    }.get(claim.state, claim.get_state_display())


def application_words(row: CreditApplication) -> str:
    """One movement of the patient's money on a visit (a CreditApplication row)."""
    if row.amount < 0:
        return "Taken back into a credit for you (your share changed)."
    if row.payment_id is not None:
        return f"Your payment of {usdate(row.payment.received_at)} ({how_paid(row.payment).lower()})."
    return f"Credit used: {credit_origin(row.credit)}"


def paid_per_visit(applications) -> list[tuple]:
    """[(visit, net amount)] from application rows with their `encounter`, in the order first met,
    leaving out visits whose money was all taken back."""
    per: OrderedDict = OrderedDict()
    for row in applications:
        enc, total = per.get(row.encounter_id, (row.encounter, ZERO))
        per[row.encounter_id] = (enc, total + row.amount)
    return [(enc, total) for enc, total in per.values() if total != 0]


# --- the PDFs --------------------------------------------------------------------------------------------

def _t(text) -> str:
    folded = "".join(ch for ch in unicodedata.normalize("NFKD", str(text)) if not unicodedata.combining(ch))
    for a, b in (("\u2014", "-"), ("\u2013", "-"), ("\u2019", "'"), ("\u0141", "L"), ("\u0142", "l")):
        folded = folded.replace(a, b)
    return folded.encode("latin-1", "replace").decode("latin-1")


class _Doc:
    """A portal document: the practice's heading, the title, whom it is for and the day, then lines,
    tables and totals."""

    def __init__(self, *, practice, patient, title: str, on: date):
        self.pdf = FPDF(format="Letter", unit="mm")
        self.pdf.set_title(_t(title))
        self.pdf.set_author(_t(practice.name))
        self.pdf.set_margins(15, 15, 15)
        self.pdf.set_auto_page_break(True, margin=15)
        self.pdf.add_page()
        self.width = self.pdf.w - 30
        self.pdf.set_font("Helvetica", "B", 14)
        self.line(practice.name, h=7)
        self.pdf.set_font("Helvetica", "B", 12)
        self.line(title, h=7)
        self.pdf.set_font("Helvetica", "", 10)
        self.line(f"For: {patient.first_name} {patient.last_name} (account {patient.account_number})")
        self.line(f"Date: {usdate(on)}")
        self.pdf.ln(3)

    def line(self, text, *, h: float = 5, bold: bool = False) -> None:
        if bold:
            self.pdf.set_font("Helvetica", "B", 10)
        self.pdf.multi_cell(0, h, _t(text), new_x="LMARGIN", new_y="NEXT")
        if bold:
            self.pdf.set_font("Helvetica", "", 10)

    def heading(self, text: str) -> None:
        self.pdf.ln(2)
        self.pdf.set_font("Helvetica", "B", 11)
        self.line(text, h=6)
        self.pdf.set_font("Helvetica", "", 10)

    def table(self, columns, rows) -> None:
        """`columns`: [(label, weight, "L" or "R")]; `rows`: lists of text."""
        total = sum(w for _, w, _ in columns)
        widths = [self.width * w / total for _, w, _ in columns]
        self.pdf.set_font("Helvetica", "B", 8)
        for (label, _, align), w in zip(columns, widths):
            self.pdf.cell(w, 5, _t(label), border="B", align=align)
        self.pdf.ln()
        self.pdf.set_font("Helvetica", "", 8)
        for row in rows:
            for (_, _, align), w, value in zip(columns, widths, row):
                text = _t(value)
                while text and self.pdf.get_string_width(text) > w - 1:
                    text = text[:-1]
                self.pdf.cell(w, 5, text, align=align)
            self.pdf.ln()
        self.pdf.set_font("Helvetica", "", 10)
        self.pdf.ln(1)

    def total(self, label: str, amount, *, bold: bool = False) -> None:
        self.pdf.set_font("Helvetica", "B" if bold else "", 10)
        self.pdf.cell(self.width * 0.7, 6, _t(label))
        self.pdf.cell(self.width * 0.3, 6, _t(dollars(amount)), align="R", new_x="LMARGIN", new_y="NEXT")
        self.pdf.set_font("Helvetica", "", 10)

    def bytes(self) -> bytes:
        return bytes(self.pdf.output())


def receipt_pdf(patient, payment: Payment, *, applications=None, credits=None) -> bytes:
    """A payment's receipt: the practice, the patient, the day, the amount, how it was paid (the
    card reference's last part only), what it paid per visit, the credit it left on hand, and what
    was refunded of it. `applications`/`credits` as `selectors.payment_money` returns them (read
    when not given)."""
    if payment.patient_id != patient.pk:
        raise ValueError("the payment is not this patient's")
    if applications is None or credits is None:
        applications, credits = selectors.payment_money(payment)
    practice = patient.practice
    doc = _Doc(practice=practice, patient=patient, title="Payment receipt",
               on=local_date(practice, payment.received_at))
    doc.total("Amount paid", payment.amount, bold=True)
    how = how_paid(payment)
    if card_ending(payment):
        how += f", card payment reference ending in {card_ending(payment)}"
    doc.line(f"Paid by: {how}")
    doc.heading("What it paid")
    lines = paid_per_visit(applications)
    if lines:
        doc.table([("Visit on", 1, "L"), ("What it was", 2.5, "L"), ("Amount", 1, "R")],
                  [[usdate(enc.date_of_service), visit_name(enc), dollars(amt)] for enc, amt in lines])
    else:
        doc.line("Nothing has been applied to a visit yet.")
    doc.total("Paid toward your visits", sum((amt for _, amt in lines), ZERO))
    left = sum((c.on_hand + c.refund_hold for c in credits), ZERO)
    doc.total("Credit left on your account from this payment", left)
    if payment.refunded_amount:
        doc.total("Refunded to you", payment.refunded_amount)
    return doc.bytes()


def _money(value) -> Decimal:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, TypeError, ValueError):
        return ZERO


def _day(value):
    try:
        return date.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None


def checkout_receipt_pdf(patient, submission) -> bytes:
    """The receipt of a payment made in the portal with credits first (example O), from the
    submission's `detail`: {"credits": [{"credit": id, "visit": "YYYY-MM-DD", "amount": "30.00"}],
    "charged": "15.00", "visits": [{"date": "YYYY-MM-DD", "amount": "45.00"}]}, and its card
    `payment` when something was charged."""
    if submission.patient_id != patient.pk:
        raise ValueError("the submission is not this patient's")
    detail = submission.detail or {}
    practice = patient.practice
    doc = _Doc(practice=practice, patient=patient, title="Payment receipt",
               on=local_date(practice, submission.finished_at or submission.created_at))
    used = detail.get("credits") or []
    origin = {c.pk: c for c in Credit.objects.filter(patient_id=patient.pk, pk__in=[
        u.get("credit") for u in used if isinstance(u.get("credit"), int)]).select_related("origin_encounter",
                                                                                         "locked_encounter")}
    visits = detail.get("visits") or []
    doc.heading("Visits paid")
    doc.table([("Visit on", 1, "L"), ("Amount", 1, "R")],
              [[usdate(_day(v.get("date"))), dollars(_money(v.get("amount")))] for v in visits])
    doc.heading("Paid with your credits")
    if used:
        doc.table([("For the visit on", 1, "L"), ("Credit", 3, "L"), ("Amount", 1, "R")],
                  [[usdate(_day(u.get("visit"))),
                    credit_origin(origin[u["credit"]]) if u.get("credit") in origin else "A credit",
                    dollars(_money(u.get("amount")))] for u in used])
    else:
        doc.line("No credits were used.")
    credits_total = sum((_money(u.get("amount")) for u in used), ZERO)
    charged = _money(detail.get("charged"))
    doc.total("Credits used", credits_total)
    doc.total("Charged to your card", charged)
    payment = submission.payment
    if payment is not None and card_ending(payment):
        doc.line(f"Card payment reference ending in {card_ending(payment)}")
    doc.total("Total paid", credits_total + charged, bold=True)
    return doc.bytes()


def guest_pay_line(statement) -> str:
    return (f"Pay online as a guest with code {statement.display_code} and the patient's date of birth at "
            f"{settings.SETTLE_SITE_URL.rstrip('/')}/portal/guest/")


def statement_pdf(patient, *, statement=None, as_of: date | None = None) -> bytes:
    """A statement of account: each visit with a balance (charges, the patient's share, paid by
    payments, credits used, written off, the balance, final or an estimate), then the totals due
    now, waiting on insurers and the credits. Figures are the books' as they stand now; `as_of` is
    the day printed (today at the practice by default). With `statement` (an issued Statement of
    this patient) its guest-pay code and what it showed when it was issued are printed too."""
    if statement is not None and statement.patient_id != patient.pk:
        raise ValueError("the statement is not this patient's")
    practice = patient.practice
    on = as_of or practice_today(practice)
    doc = _Doc(practice=practice, patient=patient, title="Statement of account", on=on)
    if statement is not None:
        doc.line(f"Statement {statement.display_code}, issued {usdate(local_date(practice, statement.issued_at))}: "
                 f"{dollars(statement.due_now)} was due then.")
    visits = list(selectors.statement_visits(patient))
    doc.heading("Your visits with a balance")
    if visits:
        doc.table([("Visit on", 1.1, "L"), ("What it was", 2.4, "L"), ("Charges", 1, "R"), ("Your share", 1, "R"),
                   ("Payments", 1, "R"), ("Credits used", 1, "R"), ("Written off", 1, "R"), ("Balance", 1, "R"),
                   ("Status", 1, "L")],
                  [[usdate(v.date_of_service), visit_name(v), dollars(v.charge), dollars(v.pr),
                    dollars(v.paid_direct), dollars(v.credit_applied), dollars(v.written_off_amount), dollars(v.bal),
                    "Estimate" if v.has_open_claim else "Final"] for v in visits])
        for v in visits:
            if v.has_open_claim:
                doc.line(f"Visit on {usdate(v.date_of_service)}: your share is an estimate until "
                         f"{v.waiting_on or 'your insurer'} decides.")
    else:
        doc.line("Nothing is owed on any visit.")
    owes = patient_owes(patient.pk)
    doc.heading("Totals")
    doc.total("Due now", owes.due_now, bold=True)
    doc.total("Waiting on your insurers (an estimate)", owes.pending_payer)
    doc.total("Credits available", owes.available)
    doc.total("Credits held for a visit", owes.locked_held)
    if statement is not None:
        doc.pdf.ln(3)
        doc.line(guest_pay_line(statement), bold=True)
    return doc.bytes()
