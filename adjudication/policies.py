"""Refund policies (DOMAIN rule 19): which credits go to the refund work list by themselves, and
which approval each amount band needs.

A practice's `RefundPolicy` rows each describe credits to refund without anyone asking: available
credits whose money on hand lies in [min_amount, max_amount], at least `min_age_days` days old
(practice-local dates: a credit created on day D is listed from D + min_age_days), and, when the
policy requires it, a patient who owes nothing now (PatientResponsibility.due_now = 0) and has
nothing pending with a payer (pending_payer = 0 and no claim in Claim.OPEN on their visits). A
credit is on the list when at least one active policy takes it. Never on it, whatever a policy
says: a credit whose case has the patient's election "keep" (rule 18), a credit with a refund in
flight (refund_hold > 0), and a credit whose case already has a live proposal (the case workflow
is resolving that money). A practice with no active policy has an empty list.

`RefundApprovalBand` rows say who may start a refund of an amount and whether a second person
must approve it: the band of an amount is the one with the smallest `up_to` at or above it, else
the open band (`up_to` blank). The amount is the patient's refunds over the practice's approval
window (asked for, approved or issued, as `credits.services.refunds.refund_window_total` counts
them) plus this one, so splitting a refund into pieces does not move it into a lower band. With
no band configured, the practice's existing threshold rules alone decide; when bands exist but
none covers the amount (no open band), the strictest rule applies: a manager starts it and
another manager approves it. The practice's threshold and window rules always apply on top of
the band (credits' refund_request).

`refund_work_list` is one query (the policies and bands, a handful of rows, are read first and
become SQL conditions); the caller paginates it. Refunding from it is
adjudication.services.refund_worklist.refund_work_list_refund."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import (
    BooleanField,
    CharField,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    When,
)
from django.db.models import Case as Choose
from django.db.models import Value as V
from django.db.models.functions import Coalesce
from django.utils import timezone

from adjudication.clocks import practice_today
from adjudication.models import Case, Proposal, RefundApprovalBand, RefundPolicy
from credits.models import Credit, PatientResponsibility, Refund
from ledger.errors import NotFound
from ledger.inputs import parse_id
from ledger.models import Claim, Practice
from ledger.money import ZERO, nonnegative_money

BILLING, MANAGER = "billing", "manager"
MONEY = DecimalField(max_digits=20, decimal_places=2)
WINDOW_STATES = (Refund.State.REQUESTED, Refund.State.APPROVED, Refund.State.ISSUED)


@dataclass(frozen=True)
class ApprovalRule:
    """What a refund of an amount needs under the practice's bands."""

    band: RefundApprovalBand | None  # None: no band configured, or none covers the amount
    role: str  # who may start it: "billing" (billing staff or managers) or "manager"
    four_eyes: bool  # a manager other than the requester must approve it
    configured: bool  # the practice has bands at all

    def describe(self) -> str:
        if not self.configured:
            return "no approval bands: the practice's refund threshold decides"
        where = f"band {self.band}" if self.band else "no band covers it (the strictest rule)"
        who = "billing staff or a manager" if self.role == BILLING else "a manager"
        return f"{where}: {who} may start it" + ("; another manager approves it" if self.four_eyes else "")


def _practice(practice_id) -> Practice:
    pk = parse_id(practice_id, field="practice")
    practice = Practice.objects.filter(pk=pk).first()
    if practice is None:
        raise NotFound(f"unknown practice {pk}", field="practice")
    return practice


def bands_of(practice_id: int) -> list[RefundApprovalBand]:
    """The practice's bands, smallest `up_to` first, the open band last."""
    return list(RefundApprovalBand.objects.filter(practice_id=practice_id).order_by(F("up_to").asc(nulls_last=True)))


def _pick(bands: list[RefundApprovalBand], amount: Decimal) -> RefundApprovalBand | None:
    for band in bands:  # ordered: the first that covers the amount has the smallest up_to >= amount
        if band.up_to is None or band.up_to >= amount:
            return band
    return None


def band_for(*, practice_id: int, amount) -> RefundApprovalBand | None:
    """The band of a refund amount: the smallest `up_to` at or above it, else the open band; None
    when the practice has no band that covers it (or none at all)."""
    amount = nonnegative_money(amount)
    return _pick(bands_of(parse_id(practice_id, field="practice")), amount)


def approval_rule(*, practice_id: int, amount, bands: list[RefundApprovalBand] | None = None) -> ApprovalRule:
    """Who may start a refund of `amount` (the patient's window total with it) and whether four
    eyes are needed (see the module docstring)."""
    amount = nonnegative_money(amount)
    bands = bands_of(practice_id) if bands is None else bands
    if not bands:
        return ApprovalRule(band=None, role=BILLING, four_eyes=False, configured=False)
    band = _pick(bands, amount)
    if band is None:
        return ApprovalRule(band=None, role=MANAGER, four_eyes=True, configured=True)
    return ApprovalRule(band=band, role=band.role, four_eyes=band.four_eyes, configured=True)


def local_midnight(practice: Practice, day: date) -> datetime:
    """The instant day `day` begins in the practice's time zone."""
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(practice.time_zone))


def _band_annotations(bands: list[RefundApprovalBand]) -> dict:
    """SQL CASEs giving each row the band of its `up_to_total`, the role it needs and
    whether four eyes are needed (the bands are a handful of rows, read once)."""
    if not bands:
        return {"band_id": V(None, output_field=IntegerField()), "band_role": V(BILLING, output_field=CharField()),
                "band_four_eyes": V(False, output_field=BooleanField())}
    covered = [(Q(up_to_total__lte=b.up_to) if b.up_to is not None else Q(pk__isnull=False), b) for b in bands]
    return {
        "band_id": Choose(*[When(q, then=V(b.pk)) for q, b in covered], default=V(None),
                          output_field=IntegerField()),
        "band_role": Choose(*[When(q, then=V(b.role)) for q, b in covered], default=V(MANAGER),
                            output_field=CharField()),
        "band_four_eyes": Choose(*[When(q, then=V(b.four_eyes)) for q, b in covered], default=V(True),
                                 output_field=BooleanField()),
    }


def refund_work_list(*, practice_id: int, today: date | None = None) -> QuerySet:
    """The credits the practice's refund policies put on the refund work list, oldest first, as
    one query of Credit rows annotated with:

    * `policy_id`: the first active policy (by id) that takes the credit;
    * `case_id`: its adjudication case, if the scan opened one;
    * `window_total`: the patient's refunds over the approval window already counted, and
      `up_to_total` = window_total + on_hand, the amount the band is chosen by;
    * `band_id`, `band_role` ("billing" or "manager": who may start the refund) and
      `band_four_eyes`; `needs_approval`: whether the refund will wait for a manager other than
      the requester (the band's four eyes, or above the practice's refund threshold).

    `today` is the practice's local date unless given."""
    practice = _practice(practice_id)
    today = today or practice_today(practice)
    policies = list(RefundPolicy.objects.filter(practice_id=practice.pk, active=True).order_by("pk"))
    bands = bands_of(practice.pk)
    since = timezone.now() - timedelta(days=practice.approval_window_days)
    window = (Refund.objects.filter(patient_id=OuterRef("patient_id"), requested_at__gte=since, state__in=WINDOW_STATES)
              .order_by().values("patient_id").annotate(s=Sum("amount")).values("s"))
    # per-patient and per-case conditions as EXISTS, correlated to the row (index lookups), and only
    # where a policy asks for them
    owes_now = Exists(PatientResponsibility.objects.filter(patient_id=OuterRef("patient_id")).exclude(due_now=0))
    pending = (Exists(PatientResponsibility.objects.filter(patient_id=OuterRef("patient_id")).exclude(pending_payer=0))
               | Exists(Claim.objects.filter(encounter__patient_id=OuterRef("patient_id"), state__in=Claim.OPEN)))
    qs = (Credit.objects.filter(practice_id=practice.pk, state=Credit.State.AVAILABLE, on_hand__gt=0, refund_hold=0)
          .exclude(Exists(Case.objects.filter(credit_id=OuterRef("pk"), election="keep")))
          .exclude(Exists(Proposal.objects.filter(case__credit_id=OuterRef("pk"), state__in=Proposal.LIVE))))
    if not policies:
        return qs.none()
    whens = []
    for p in policies:
        q = Q(on_hand__gte=p.min_amount, created_at__lt=local_midnight(practice, today - timedelta(days=p.min_age_days)
                                                                       + timedelta(days=1)))
        if p.max_amount is not None:
            q &= Q(on_hand__lte=p.max_amount)
        if p.require_no_open_balance:
            q &= ~owes_now
        if p.require_no_pending_claim:
            q &= ~pending
        whens.append(When(q, then=V(p.pk)))
    qs = (qs.annotate(policy_id=Choose(*whens, default=V(None), output_field=IntegerField()))
          .filter(policy_id__isnull=False)
          .annotate(case_id=Subquery(Case.objects.filter(credit_id=OuterRef("pk")).values("pk")[:1]),
                    window_total=Coalesce(Subquery(window, output_field=MONEY), V(ZERO), output_field=MONEY))
          .annotate(up_to_total=F("window_total") + F("on_hand")))
    qs = qs.annotate(**_band_annotations(bands))
    return (qs.annotate(needs_approval=ExpressionWrapper(
        Q(band_four_eyes=True) | Q(up_to_total__gt=practice.refund_approval_threshold), output_field=BooleanField()))
            .select_related("patient", "payment").order_by("created_at", "pk"))


def policy_names(practice_id: int) -> dict[int, str]:
    """{policy id: name} of a practice's policies (to show `policy_id` of the work list)."""
    return dict(RefundPolicy.objects.filter(practice_id=practice_id).values_list("pk", "name"))
