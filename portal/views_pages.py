"""The signed-in patient's pages and documents (issue 13; docs/portal.md): home (what is owed per
visit, the totals, the overpayment notices), a visit, credits, payments with their receipts, and
statements as PDF. Read-only: every page is a GET, everything is looked up through
`request.patient` (another patient's id is a 404), and each page runs a fixed number of queries
whatever the number of visits, credits or payments (lists are paginated)."""

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.urls import NoReverseMatch, path, reverse
from django.views.decorators.http import require_GET

from adjudication.clocks import local_date, practice_today
from credits.models import Credit
from credits.selectors import patient_owes
from ledger.money import ZERO
from portal import documents, selectors
from portal.access import own_or_404, patient_required
from portal.models import Statement
from portal.views_common import render_portal


def url_or_none(name: str, *args) -> str | None:
    """The URL of a portal page another module provides, or None while it does not exist yet
    (the link is then left out)."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def paginate(request, queryset):
    """One page of `queryset` (selectors.PAGE_SIZE rows): two queries, the count and the page."""
    return Paginator(queryset, selectors.PAGE_SIZE).get_page(request.GET.get("page"))


def pdf_response(content: bytes, filename: str) -> HttpResponse:
    resp = HttpResponse(content, content_type="application/pdf")
    resp["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp


def _visit_row(enc) -> dict:
    return {"visit": enc, "name": documents.visit_name(enc), "status": documents.visit_status(enc),
            "final": not enc.has_open_claim, "url": reverse("portal:visit", args=[enc.pk])}


@require_GET
@patient_required
def home(request):
    patient = request.patient
    page = paginate(request, selectors.owing_visits(patient))
    notices = [{"case": case, "url": url_or_none("portal:notice", case.pk)}
               for case in selectors.open_notices(patient)]
    owes = patient_owes(patient.pk)
    return render_portal(request, "pages/home.html", {
        "page": page, "rows": [_visit_row(e) for e in page], "owes": owes, "notices": notices,
        "pay_url": url_or_none("portal:pay") if owes.due_now > 0 else None, "buy_url": url_or_none("portal:buy"),
    })


@require_GET
@patient_required
def visit(request, pk):
    patient = request.patient
    enc, claims, applications, write_offs, held = selectors.visit_detail(patient, pk)
    money = [{"row": a, "words": documents.application_words(a), "shown": abs(a.amount),
              "kind": "reversal" if a.amount < 0 else ("payment" if a.payment_id else "credit"),
              "on": local_date(patient.practice, a.created_at)} for a in applications]
    return render_portal(request, "pages/visit.html", {
        "visit": _visit_row(enc), "enc": enc,
        "claims": [{"claim": c, "words": documents.claim_words(c)} for c in claims],
        "money": money, "applied_total": sum((a.amount for a in applications), ZERO),
        "write_offs": [{"row": w, "on": local_date(patient.practice, w.created_at), "active": w.state == "active"}
                       for w in write_offs],
        "held": held, "held_total": sum((c.on_hand for c in held), ZERO),
        "pay_url": url_or_none("portal:pay") if enc.bal > 0 and not enc.has_open_claim else None,
    })


@require_GET
@patient_required
def credits_page(request):
    patient = request.patient
    page = paginate(request, selectors.patient_credits(patient))
    groups = {"available": [], "held": [], "past": []}
    for c in page:
        row = {"credit": c, "origin": documents.credit_origin(c), "status": documents.credit_status(c),
               "on": local_date(patient.practice, c.created_at),
               "used": c.applied_amount, "refund_url": None}
        if c.state == Credit.State.AVAILABLE:
            # refund_options(credit) allows every available credit with money on hand: back to the
            # card when it came through the system, by check otherwise (the refund page says which)
            if c.on_hand > 0:
                row["refund_url"] = url_or_none("portal:refund", c.pk)
            groups["available"].append(row)
        elif c.state == Credit.State.LOCKED:
            groups["held"].append(row)
        else:
            groups["past"].append(row)
    return render_portal(request, "pages/credits.html", {
        "page": page, "groups": groups, "owes": patient_owes(patient.pk), "refunds_url": url_or_none("portal:refunds"),
    })


@require_GET
@patient_required
def payments(request):
    patient = request.patient
    page = paginate(request, selectors.patient_payments(patient))
    rows = []
    for p in page:
        credits = list(p.credits.all())
        applications = [*p.applications.all(), *(a for c in credits for a in c.applications.all())]
        rows.append({"payment": p, "on": local_date(patient.practice, p.received_at), "how": documents.how_paid(p),
                     "paid": documents.paid_per_visit(applications),
                     "kept": sum((c.on_hand + c.refund_hold for c in credits), ZERO),
                     "receipt_url": reverse("portal:receipt_pdf", args=[p.pk])})
    return render_portal(request, "pages/payments.html", {"page": page, "rows": rows})


@require_GET
@patient_required
def receipt_pdf(request, pk):
    patient = request.patient
    payment, applications, credits = selectors.payment_detail(patient, pk)
    content = documents.receipt_pdf(patient, payment, applications=applications, credits=credits)
    on = local_date(patient.practice, payment.received_at)
    return pdf_response(content, f"receipt-{on:%Y-%m-%d}-{payment.pk}.pdf")


@require_GET
@patient_required
def statement_pdf(request):
    patient = request.patient
    on = practice_today(patient.practice)
    return pdf_response(documents.statement_pdf(patient, as_of=on), f"statement-{on:%Y-%m-%d}.pdf")


@require_GET
@patient_required
def statements(request):
    patient = request.patient
    page = paginate(request, selectors.patient_statements(patient))
    rows = [{"statement": s, "on": local_date(patient.practice, s.issued_at),
             "url": reverse("portal:issued_statement_pdf", args=[s.pk])} for s in page]
    return render_portal(request, "pages/statements.html", {"page": page, "rows": rows})


@require_GET
@patient_required
def issued_statement_pdf(request, pk):
    patient = request.patient
    statement = own_or_404(Statement.objects.all(), patient, pk)
    on = local_date(patient.practice, statement.issued_at)
    content = documents.statement_pdf(patient, statement=statement)
    return pdf_response(content, f"statement-{on:%Y-%m-%d}-{statement.display_code}.pdf")


urlpatterns = [
    path("", home, name="home"),
    path("visits/<int:pk>/", visit, name="visit"),
    path("credits/", credits_page, name="credits"),
    path("payments/", payments, name="payments"),
    path("payments/<int:pk>/receipt.pdf", receipt_pdf, name="receipt_pdf"),
    path("statement.pdf", statement_pdf, name="statement_pdf"),
    path("statements/", statements, name="statements"),
    path("statements/<int:pk>.pdf", issued_statement_pdf, name="issued_statement_pdf"),
]
