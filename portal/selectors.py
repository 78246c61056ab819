"""What the portal's pages read (issue 13): always through the signed-in patient, each page a
fixed number of queries whatever the number of visits or credits."""

from django.db.models import Case as SqlCase
from django.db.models import DecimalField, OuterRef, Prefetch, Q, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce

from adjudication.models import Case
from adjudication.services.notices import NOTICE_KINDS
from credits.models import Credit, CreditApplication, WriteOff
from ledger.models import Claim, Encounter, Patient, Payment
from ledger.money import ZERO
from portal.access import own_or_404
from portal.models import Statement

MONEY = DecimalField(max_digits=20, decimal_places=2)


def open_notices(patient: Patient):
    """The patient's overpayment notices still waiting on an answer, or answered "refund" and still
    open (the patient may change to "keep" while no resolution is live): open cases about this
    patient's money whose notice was sent. Newest first, with the credit and the visit."""
    return (Case.objects.filter(patient_id=patient.pk, kind__in=NOTICE_KINDS, state__in=Case.OPEN,
                                notice_sent_on__isnull=False)
            .select_related("credit", "encounter").order_by("-notice_sent_on", "-pk"))


# --- the patient's pages (portal/views_pages.py) and documents (portal/documents.py) ------------------
# Balances are the books' own definitions (ledger/models.py EncounterQuerySet: `bal`, `has_open_claim`);
# nothing here defines "balance" again. Every reader below is one query (or one per prefetched
# relation), whatever the number of visits, credits or payments.

PAGE_SIZE = 50


def _open_claim_payer():
    """The name of the payer a visit's open claim waits on (the newest open claim)."""
    return Subquery(Claim.objects.filter(encounter_id=OuterRef("pk"), state__in=Claim.OPEN)
                    .order_by("-submitted_at", "-pk").values("payer__name")[:1])


def _applied(source: str):
    """Net patient money applied to the visit (`OuterRef("pk")`) from `source` ("payment" or
    "credit"): reversals (negative rows) included."""
    rows = (CreditApplication.objects.filter(encounter_id=OuterRef("pk"), **{f"{source}__isnull": False})
            .values("encounter").annotate(s=Sum("amount")).values("s"))
    return Coalesce(Subquery(rows, output_field=MONEY), Value(ZERO), output_field=MONEY)


def owing_visits(patient: Patient):
    """The patient's visits with a balance, oldest first: `bal`, `has_open_claim` and
    `waiting_on` (the payer's name while a claim waits on it)."""
    return (Encounter.objects.filter(patient_id=patient.pk).owing()
            .annotate(waiting_on=_open_claim_payer()))


def statement_visits(patient: Patient):
    """The visits a statement lists (those with a balance, oldest first), with what was paid
    toward each straight from payments (`paid_direct`) and from credits (`credit_applied`)."""
    return owing_visits(patient).annotate(paid_direct=_applied("payment"), credit_applied=_applied("credit"))


def visit_detail(patient: Patient, pk):
    """One of the patient's visits with its claims (payer joined), the money applied to it (the
    credit or payment joined), its write-offs and the credits held for it; another patient's id
    is a 404. Five queries."""
    enc = own_or_404(Encounter.objects.with_balance().annotate(waiting_on=_open_claim_payer()), patient, pk)
    claims = list(Claim.objects.filter(encounter_id=enc.pk).select_related("payer").order_by("submitted_at", "pk"))
    applications = list(CreditApplication.objects.filter(encounter_id=enc.pk, patient_id=patient.pk)
                        .select_related("credit__origin_encounter", "credit__locked_encounter", "payment")
                        .order_by("created_at", "pk"))
    write_offs = list(WriteOff.objects.filter(encounter_id=enc.pk, patient_id=patient.pk).order_by("created_at", "pk"))
    held = list(Credit.objects.filter(locked_encounter_id=enc.pk, patient_id=patient.pk, state=Credit.State.LOCKED)
                .order_by("created_at", "pk"))
    return enc, claims, applications, write_offs, held


CREDIT_ORDER = SqlCase(When(state=Credit.State.AVAILABLE, then=Value(0)),
                       When(state=Credit.State.LOCKED, then=Value(1)), default=Value(2))


def patient_credits(patient: Patient):
    """The patient's credits: on hand first (available, then held for a visit), then those used
    up, newest first within each; the visits they are held for or came from joined."""
    return (Credit.objects.filter(patient_id=patient.pk)
            .select_related("locked_encounter", "origin_encounter", "payment")
            .annotate(rank=CREDIT_ORDER).order_by("rank", "-created_at", "-pk"))


def patient_payments(patient: Patient):
    """The patient's payments, newest first, with what each paid (its applications, and those of
    the credits it left, with their visit) and those credits (prefetched: three more queries per page)."""
    return (Payment.objects.filter(patient_id=patient.pk).order_by("-received_at", "-pk")
            .prefetch_related(Prefetch("applications", queryset=CreditApplication.objects
                                       .select_related("encounter").order_by("created_at", "pk")),
                              Prefetch("credits", queryset=Credit.objects.order_by("created_at", "pk")),
                              Prefetch("credits__applications", queryset=CreditApplication.objects
                                       .select_related("encounter").order_by("created_at", "pk"))))


def payment_money(payment: Payment):
    """What a payment did, for its receipt: the application rows of the payment and of the credits
    it left (a payment held for a visit, or taken back when a share changed, lives on as a credit
    that carries its payment), with their visit, and those credits. Two queries."""
    applications = list(CreditApplication.objects
                        .filter(Q(payment_id=payment.pk) | Q(credit__payment_id=payment.pk),
                                patient_id=payment.patient_id)
                        .select_related("encounter").order_by("created_at", "pk"))
    credits = list(Credit.objects.filter(payment_id=payment.pk, patient_id=payment.patient_id)
                   .order_by("created_at", "pk"))
    return applications, credits


def payment_detail(patient: Patient, pk):
    """One of the patient's payments for its receipt (another patient's id is a 404), with
    `payment_money`. Three queries."""
    payment = own_or_404(Payment.objects.all(), patient, pk)
    return (payment, *payment_money(payment))


def patient_statements(patient: Patient):
    """The statements issued to the patient, newest first."""
    return Statement.objects.filter(patient_id=patient.pk).order_by("-issued_at", "-pk")
