"""What the admin's patient page shows (DOMAIN rule 14, issue 5): the heading card's totals and the
sections (dates of service with their claims, credits, payments, refunds, write-offs) and the
patient's history (who, when, why), merged from the history rows of the patient and of
everything that belongs to them, and the patient's portal events (portal.PortalEvent: invitations,
sign-ins, codes, guest pay; who is the staff member, the patient, or a guest). The "Portal access"
panel shows portal.services.portal_status and the latest statements with their guest-pay codes.

Reads only; a fixed number of queries whatever the number of rows (each section is one query,
capped at SECTION_LIMIT rows, with a link to the full list)."""

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Case, Prefetch, Value, When
from django.urls import reverse
from django.utils import timezone

from credits.models import Credit, Refund, WriteOff
from credits.selectors import Owes, patient_owes
from ledger.models import Claim, Encounter, Patient, Payment
from portal.models import PortalEvent, Statement
from portal.services import portal_status

SECTION_LIMIT = 500
HISTORY_LIMIT = 200
STATEMENT_LIMIT = 5
GUEST_KINDS = frozenset({PortalEvent.Kind.GUEST_OPENED, PortalEvent.Kind.GUEST_FAILED, PortalEvent.Kind.GUEST_LOCKED,
                         PortalEvent.Kind.GUEST_PAID})

# per model: the fields whose changes the history shows
TRACKED = {
    Patient: ("first_name", "last_name", "date_of_birth", "email", "member_id", "exclude_from_auto_apply"),
    Encounter: ("estimated_pr", "remittance_pr", "applied_amount", "written_off_amount"),
    Claim: ("state", "paid_amount", "adjustment_amount", "patient_responsibility"),
    Payment: ("refunded_amount",),
    Credit: ("state", "on_hand", "refund_hold", "applied_amount", "refunded_amount", "removed_amount",
             "locked_encounter_id"),
    Refund: ("state", "decided_by_id", "reference"),
    WriteOff: ("state",),
}


@dataclass
class HistoryRow:
    when: datetime
    who: object
    what: str
    url: str
    change: str
    why: str
    kind: str  # "+" created, "~" changed, "-" deleted


@dataclass
class PatientPage:
    patient: Patient
    owes: Owes  # the heading card: due now, pending the payer, the credits (credits.selectors.patient_owes)
    encounters: list
    credits: list
    payments: list
    refunds: list
    writeoffs: list
    history: list = field(default_factory=list)
    capped: dict = field(default_factory=dict)
    portal_status: str = ""
    statements: list = field(default_factory=list)  # the latest STATEMENT_LIMIT, newest first


def _dos_label(encounters_by_id, encounter_id) -> str:
    enc = encounters_by_id.get(encounter_id)
    return f"DoS {enc.date_of_service:%m/%d/%Y}" if enc else f"DoS #{encounter_id}"


def _value(model, name, value, encounters_by_id, users):
    if value is None or value == "":
        return "—"
    if name == "locked_encounter_id":
        return _dos_label(encounters_by_id, value)
    if name.endswith("_by_id"):
        return str(users.get(value, value))
    if value is True or value is False:
        return "yes" if value else "no"
    return str(value)


def _label(model, record, encounters_by_id) -> tuple[str, str]:
    """(what, admin url) of a history record's object."""
    pk = record.id
    if model is Patient:
        return "Patient", reverse("admin:ledger_patient_change", args=[pk])
    if model is Encounter:
        return f"DoS {record.date_of_service:%m/%d/%Y}", reverse("admin:ledger_encounter_change", args=[pk])
    if model is Claim:
        return f"Claim {record.claim_number}", reverse("admin:ledger_claim_change", args=[pk])
    if model is Payment:
        return f"Payment #{pk}", reverse("admin:ledger_payment_change", args=[pk])
    if model is Credit:
        return f"Credit #{pk}", reverse("admin:credits_credit_change", args=[pk])
    if model is Refund:
        return f"Refund #{pk}", reverse("admin:credits_refund_change", args=[pk])
    return f"Write-off #{pk}", reverse("admin:credits_writeoff_change", args=[pk])


def _created_summary(model, r, encounters_by_id) -> str:
    if model is Credit:
        held = f", locked to {_dos_label(encounters_by_id, r.locked_encounter_id)}" if r.locked_encounter_id else ""
        return f"created: {r.amount} {r.get_source_display().lower()}{held}"
    if model is Payment:
        return f"received: {r.amount} by {r.get_channel_display().lower()}"
    if model is Encounter:
        return f"visit recorded: charge {r.charge}, estimated PR {r.estimated_pr}"
    if model is Claim:
        return f"submitted: {r.billed_amount}"
    if model is Refund:
        return f"requested: {r.amount} by {r.get_method_display().lower()}"
    if model is WriteOff:
        return f"written off: {r.amount} ({r.get_reason_code_display().lower()})"
    return "created"


def patient_history(patient: Patient, encounters_by_id: dict, *, limit: int = HISTORY_LIMIT) -> list[HistoryRow]:
    """The latest `limit` changes to the patient and everything of theirs, newest first, with
    what changed (against the previous version of the same row) and the reason given."""
    sources = {
        Patient: Patient.history.filter(id=patient.pk),
        Encounter: Encounter.history.filter(id__in=Encounter.objects.filter(patient=patient).values("pk")),
        Claim: Claim.history.filter(id__in=Claim.objects.filter(encounter__patient=patient).values("pk")),
        Payment: Payment.history.filter(id__in=Payment.objects.filter(patient=patient).values("pk")),
        Credit: Credit.history.filter(id__in=Credit.objects.filter(patient=patient).values("pk")),
        Refund: Refund.history.filter(id__in=Refund.objects.filter(patient=patient).values("pk")),
        WriteOff: WriteOff.history.filter(id__in=WriteOff.objects.filter(patient=patient).values("pk")),
    }
    fetched = []
    for model, qs in sources.items():
        # one more than shown per row, so the oldest shown change can still be diffed
        for r in qs.select_related("history_user").order_by("-history_date", "-history_id")[: limit * 2]:
            fetched.append((model, r))
    by_object: dict = {}
    for model, r in fetched:
        by_object.setdefault((model, r.id), []).append(r)
    user_ids = {getattr(r, "decided_by_id", None) for m, r in fetched if m is Refund} - {None}
    users = {u.pk: u for u in get_user_model().objects.filter(pk__in=user_ids)} if user_ids else {}
    rows = []
    for (model, _), records in by_object.items():
        records.sort(key=lambda r: (r.history_date, r.history_id))
        previous = None
        for r in records:
            what, url = _label(model, r, encounters_by_id)
            if r.history_type == "+" or previous is None and r.history_type != "-":
                change = _created_summary(model, r, encounters_by_id) if r.history_type == "+" else "changed"
            elif r.history_type == "-":
                change = "deleted"
            else:
                parts = []
                for name in TRACKED[model]:
                    old, new = getattr(previous, name), getattr(r, name)
                    if old != new:
                        label = str(model._meta.get_field(name.removesuffix("_id")).verbose_name)
                        parts.append(f"{label} {_value(model, name, old, encounters_by_id, users)} → "
                                     f"{_value(model, name, new, encounters_by_id, users)}")
                change = "; ".join(parts) or "saved"
            rows.append(HistoryRow(when=r.history_date, who=r.history_user, what=what, url=url, change=change,
                                   why=r.history_change_reason or "", kind=r.history_type))
            previous = r
    rows.extend(portal_history(patient, limit=limit))
    rows.sort(key=lambda h: h.when, reverse=True)
    return rows[:limit]


def _portal_who(patient: Patient, ev: PortalEvent) -> str:
    if ev.actor_id is None:
        return "guest" if ev.kind in GUEST_KINDS else "visitor (not signed in)"
    if ev.actor_id == patient.user_id:
        return f"the patient ({ev.actor.username}, portal)"
    return str(ev.actor)


def portal_history(patient: Patient, *, limit: int = HISTORY_LIMIT) -> list[HistoryRow]:
    """The patient's latest portal events as history rows (one query)."""
    events = PortalEvent.objects.filter(patient=patient).select_related("actor").order_by("-at", "-pk")[:limit]
    return [HistoryRow(when=ev.at, who=_portal_who(patient, ev), what="Portal", url="",
                       change=ev.get_kind_display() + (f" from {ev.ip_address}" if ev.ip_address else ""),
                       why=ev.detail, kind="+") for ev in events]


def patient_page(patient: Patient) -> PatientPage:
    encounters = list(
        Encounter.objects.filter(patient=patient).with_balance().order_by("-date_of_service", "-pk")
        .prefetch_related(Prefetch("claims", queryset=Claim.objects.select_related("payer").order_by("pk")))
        [:SECTION_LIMIT])
    by_id = {e.pk: e for e in encounters}
    for e in encounters:
        e.payable = not e.has_open_claim  # its balance is due now; else pending the payer
    credits = list(
        Credit.objects.filter(patient=patient).select_related("locked_encounter", "origin_encounter", "payment",
                                                               "created_by")
        # on hand first (what staff act on), then the newest
        .annotate(spent=Case(When(state__in=Credit.ON_HAND, then=Value(0)), default=Value(1)))
        .order_by("spent", "-created_at", "-pk")[:SECTION_LIMIT])
    payments = list(Payment.objects.filter(patient=patient).select_related("encounter", "created_by")
                    .order_by("-received_at", "-pk")[:SECTION_LIMIT])
    refunds = list(Refund.objects.filter(patient=patient).select_related("credit", "requested_by", "decided_by",
                                                                         "issued_by")
                   .order_by("-requested_at", "-pk")[:SECTION_LIMIT])
    writeoffs = list(WriteOff.objects.filter(patient=patient).select_related("encounter", "created_by", "undone_by")
                     .order_by("-created_at", "-pk")[:SECTION_LIMIT])
    page = PatientPage(
        patient=patient, owes=patient_owes(patient.pk), encounters=encounters, credits=credits,
        payments=payments, refunds=refunds, writeoffs=writeoffs,
        capped={name: len(rows) >= SECTION_LIMIT for name, rows in
                (("encounters", encounters), ("credits", credits), ("payments", payments), ("refunds", refunds),
                 ("writeoffs", writeoffs))},
    )
    page.history = patient_history(patient, by_id)
    page.portal_status = portal_status(patient)
    page.statements = list(Statement.objects.filter(patient=patient).select_related("issued_by")
                           .order_by("-issued_at", "-pk")[:STATEMENT_LIMIT])
    now = timezone.now()
    for st in page.statements:
        st.locked_now = bool(st.guest_locked_until and st.guest_locked_until > now)  # guest pay locked (example P)
    return page
