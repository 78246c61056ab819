"""Reads about adjudication cases: the work queue (rule 17: sorted by due date, flagged inside the
practice's warning window), its totals, one case with what it covers, and its timeline. Selectors
never write; they return QuerySets with their joins applied, so a page or an API list costs the
same number of queries for 3 cases or 300.

What a case is about is recomputed in SQL as `money_left` (the same arithmetic as
adjudication.services.core.money_left): a patient credit's money on hand plus what a refund in
flight holds, a payer credit's outstanding amount, or what a visit was paid beyond its charge.
Dates are the practice's: `today` is each practice's local date unless the caller passes one."""

from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import (
    BooleanField,
    Count,
    DateField,
    DecimalField,
    ExpressionWrapper,
    F,
    Func,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models import Case as Choose
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from adjudication.models import AdjudicationSettings, Case, CaseEvent, PayerContact, Proposal
from ledger.access import practice_ids_for
from ledger.errors import InvalidInput, NotFound
from ledger.inputs import parse_id
from ledger.models import Claim, Practice
from ledger.money import ZERO

MONEY = DecimalField(max_digits=20, decimal_places=2)
DEFAULT_WARNING_DAYS = 7  # AdjudicationSettings.warning_window_days when a practice has no settings row
OPEN_STATES = "open"  # case_queue(state="open"): every state but resolved


def practice_dates(practice_ids, today: date | None = None) -> dict[int, date]:
    """Each practice's local date now (Practice.time_zone), or `today` for all of them."""
    if today is not None:
        return {pid: today for pid in practice_ids}
    now = timezone.now()
    return {pk: now.astimezone(ZoneInfo(tz)).date()
            for pk, tz in Practice.objects.filter(pk__in=practice_ids).values_list("pk", "time_zone")}


def _per_practice(values: dict[int, object], output_field):
    """A SQL CASE giving each practice's value (the practice ids are few: the caller's practices)."""
    if not values:
        return Value(None, output_field=output_field)
    return Choose(*[When(practice_id=pk, then=Value(v, output_field=output_field)) for pk, v in values.items()],
                 default=Value(None, output_field=output_field), output_field=output_field)


def money_left_expression():
    """A case's money left, in SQL (see the module docstring)."""
    claims_paid = Coalesce(Subquery(
        Claim.objects.filter(encounter_id=OuterRef("encounter_id")).order_by().values("encounter_id")
        .annotate(s=Sum("paid_amount")).values("s")[:1], output_field=MONEY), Value(ZERO), output_field=MONEY)
    beyond = Choose(
        When(encounter__charge__gt=0,
             then=Greatest(claims_paid + F("encounter__applied_amount") - F("encounter__charge"), Value(ZERO),
                           output_field=MONEY)),
        default=Value(ZERO), output_field=MONEY)
    return Choose(
        When(kind=Case.Kind.PATIENT_CREDIT, then=F("credit__on_hand") + F("credit__refund_hold")),
        When(kind=Case.Kind.PAYER_CREDIT, then=F("payer_credit__amount") - F("payer_credit__resolved_amount")),
        When(kind=Case.Kind.ENCOUNTER, then=beyond),
        default=Value(ZERO), output_field=MONEY)


class DaysBetween(Func):
    """PostgreSQL's date - date: whole days, an integer (None when either is NULL)."""

    arg_joiner = " - "
    template = "(%(expressions)s)"
    output_field = IntegerField()


def annotate_queue(qs, practice_ids, today: date | None = None):
    """The queue's columns on any Case queryset: money_left, local_today, days_left, warning_days,
    flagged (open, with a due date inside the warning window or past), follow_up_overdue (open,
    waiting on the payer past the follow-up day)."""
    todays = practice_dates(practice_ids, today)
    warning = Coalesce(Subquery(AdjudicationSettings.objects.filter(practice_id=OuterRef("practice_id"))
                                .values("warning_window_days")[:1]),
                       Value(DEFAULT_WARNING_DAYS), output_field=IntegerField())
    is_open = ~Q(state=Case.State.RESOLVED)
    return qs.annotate(
        money_left=money_left_expression(),
        local_today=_per_practice(todays, DateField()),
        warning_days=warning,
    ).annotate(
        days_left=DaysBetween(F("due_on"), F("local_today")),
    ).annotate(
        flagged=ExpressionWrapper(is_open & Q(due_on__isnull=False, days_left__lte=F("warning_days")),
                                  output_field=BooleanField()),
        follow_up_overdue=ExpressionWrapper(is_open & Q(follow_up_on__isnull=False, follow_up_on__lt=F("local_today")),
                                            output_field=BooleanField()),
    )


def _choice(value, choices, field: str):
    if value not in choices:
        raise InvalidInput(f"unknown {field} '{value}' (one of: {', '.join(choices)})", field=field)
    return value


def _choices(value, choices, field: str) -> list[str]:
    values = [value] if isinstance(value, str) else list(value)
    return [_choice(v, choices, field) for v in values]


def case_queue(*, practice_ids, state=None, cause=None, kind=None, payer_type=None, due_within_days=None,
               assigned_to=None, flagged=None, today: date | None = None):
    """The work queue of the given practices: Case rows annotated as `annotate_queue`, filtered,
    sorted by due date (no due date last), then id.

    state: a state, a list of states, or "open" (every state but resolved); cause, kind,
    payer_type: a value or a list; due_within_days: due on or before today + N (overdue included,
    no due date excluded); assigned_to: a user id, or 0 for unassigned; flagged: True/False."""
    practice_ids = list(practice_ids)
    qs = Case.objects.filter(practice_id__in=practice_ids)
    if state is not None:
        if state == OPEN_STATES:
            qs = qs.exclude(state=Case.State.RESOLVED)
        else:
            qs = qs.filter(state__in=_choices(state, Case.State.values, "state"))
    if cause is not None:
        qs = qs.filter(cause__in=_choices(cause, Case.Cause.values, "cause"))
    if kind is not None:
        qs = qs.filter(kind__in=_choices(kind, Case.Kind.values, "kind"))
    if payer_type is not None:
        qs = qs.filter(payer_type__in=[payer_type] if isinstance(payer_type, str) else list(payer_type))
    if assigned_to is not None:
        if str(assigned_to).strip() == "0":
            qs = qs.filter(assigned_to__isnull=True)
        else:
            qs = qs.filter(assigned_to_id=parse_id(assigned_to, field="assigned_to"))
    qs = annotate_queue(qs, practice_ids, today)
    if due_within_days is not None:
        if isinstance(due_within_days, bool) or not isinstance(due_within_days, int) or not 0 <= due_within_days <= 3650:
            raise InvalidInput("due_within_days must be a whole number of days from 0 to 3650", field="due_within_days")
        qs = qs.filter(days_left__lte=due_within_days)
    if flagged is not None:
        qs = qs.filter(flagged=bool(flagged))
    return (qs.select_related("practice", "patient", "payer", "credit", "payer_credit", "encounter", "clock_rule",
                              "assigned_to")
            .order_by(F("due_on").asc(nulls_last=True), "id"))


def queue_totals(qs) -> dict:
    """What a (filtered) queue adds up to: count, the amounts the cases opened with, the money left
    now, and how many are flagged and overdue, in one query."""
    sums = qs.order_by().aggregate(
        n=Count("id"), opened_with=Sum("amount"), left=Sum("money_left"),
        n_flagged=Count("id", filter=Q(flagged=True)),
        n_overdue=Count("id", filter=Q(days_left__lt=0) & ~Q(state=Case.State.RESOLVED)),
        n_follow_up_overdue=Count("id", filter=Q(follow_up_overdue=True)),
    )
    return {"count": sums["n"], "amount": sums["opened_with"] or Decimal("0.00"),
            "money_left": sums["left"] or Decimal("0.00"), "flagged": sums["n_flagged"],
            "overdue": sums["n_overdue"], "follow_up_overdue": sums["n_follow_up_overdue"]}


def case_detail(case_id, actor, *, today: date | None = None) -> Case:
    """One case for a staff user of its practice, annotated like the queue, with what it covers,
    its proposals (newest first) and its unclaimed-property row. Unknown, or another practice's:
    NotFound (the same answer, so ids of other practices are not revealed)."""
    pk = parse_id(case_id, field="case")
    practice_ids = practice_ids_for(actor) if actor is not None and getattr(actor, "pk", None) else []
    row = Case.objects.filter(pk=pk, practice_id__in=practice_ids).values_list("practice_id", flat=True).first()
    if row is None:
        raise NotFound(f"unknown case {pk}", field="case")
    return (annotate_queue(Case.objects.filter(pk=pk), [row], today)
            .select_related("practice", "patient", "payer", "credit", "payer_credit", "encounter", "clock_rule",
                            "assigned_to", "resolved_by", "election_by", "unclaimed")
            .prefetch_related(Prefetch("proposals", queryset=Proposal.objects.select_related(
                "proposed_by", "decided_by", "claim").order_by("-proposed_at", "-id")))
            .get())


def case_timeline(case):
    """The case's events, oldest first, each with its actor and (when it has one) its document,
    payer contact or notice joined in: one query however long the record."""
    case_pk = case.pk if isinstance(case, Case) else parse_id(case, field="case")
    return (CaseEvent.objects.filter(case_id=case_pk)
            .select_related("actor", "document", "document__uploaded_by", "contact", "contact__created_by",
                            "notice", "notice__sent_by")
            .order_by("at", "id"))


def case_contacts(case):
    """The case's payer contacts, in the order they happened."""
    case_pk = case.pk if isinstance(case, Case) else parse_id(case, field="case")
    return PayerContact.objects.filter(case_id=case_pk).select_related("created_by", "event").order_by(
        "contacted_on", "id")

