"""Credit-balance adjudication (DOMAIN rules 15-19): the billing company's service as rows.

* `AdjudicationSettings`: a practice's knobs (the scan's minimum credit age, the queue's warning
  window, the default clocks are rules of `ClockRule`).
* `ClockRule`: the legal and policy clocks as data (rule 17), seeded by a data migration, edited by
  managers in the admin (with history).
* `Case`: one per credit balance (a patient credit, a payer credit, an encounter paid beyond its
  charge), a django-fsm row with history; `CaseEvent` is its append-only record (a trigger refuses
  UPDATE and DELETE), `CaseDocument` the files, `PayerContact` the payer contacts, `Proposal` the
  resolutions (four eyes by a CHECK), `PatientNotice` the overpayment notices sent.
* `RefundPolicy` and `RefundApprovalBand` (rule 19), `UnclaimedProperty` (rule 17, the dormancy
  clock and what was done about it).

Money never changes here: a resolution is carried out through the credits services, in the
case's transaction (adjudication/services/)."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin

from ledger.fsm import transition
from ledger.models import AMOUNT_CEILING, history
from ledger.money import money_field


class AdjudicationSettings(models.Model):
    """A practice's adjudication settings (one row per practice, created with defaults on first use)."""

    practice = models.OneToOneField("ledger.Practice", primary_key=True, on_delete=models.PROTECT,
                                    related_name="adjudication_settings")
    min_credit_age_days = models.PositiveIntegerField(
        default=0, help_text="The scan opens a case for an available patient credit once it is this many days old "
                             "(0: the night it appears).")
    warning_window_days = models.PositiveIntegerField(
        default=7, help_text="A case due within this many days is flagged on the work queue.")
    payer_credit_max_open_days = models.PositiveIntegerField(
        default=60, help_text="A payer credit open longer than this is an audit finding.")
    locked_credit_max_days = models.PositiveIntegerField(
        default=90, help_text="A credit locked to a date of service whose claim is open longer than this is stale.")
    notice_sender = models.CharField(max_length=200, blank=True,
                                     help_text="From address of patient notices (blank: the server's default).")
    history = history()

    class Meta:
        verbose_name = "adjudication settings"
        verbose_name_plural = "adjudication settings"
        constraints = [
            models.CheckConstraint(condition=Q(min_credit_age_days__lte=3650, warning_window_days__lte=365,
                                               payer_credit_max_open_days__lte=3650, locked_credit_max_days__lte=3650),
                                   name="adjudication_settings_ranges"),
        ]

    def __str__(self) -> str:
        return f"Adjudication settings of {self.practice}"


class ClockRule(models.Model):
    """One clock of rule 17. The most specific active rule in effect on the day the money was
    determined applies: a practice's own rule before a general one, a state's before "any state",
    a payer type's before "any payer" (adjudication/clocks.py)."""

    class Kind(models.TextChoices):
        PAYER_RETURN = "payer_return", "Return an overpayment to a payer"
        PATIENT_REFUND = "patient_refund", "Refund a patient's overpayment"
        UNCLAIMED = "unclaimed_property", "Unclaimed property (dormancy)"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=200)
    practice = models.ForeignKey("ledger.Practice", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+", help_text="Blank: every practice.")
    payer_type = models.CharField(max_length=16, blank=True, help_text="Payer rules: medicare, medicaid, commercial; "
                                                                       "blank: any payer.")
    us_state = models.CharField("US state", max_length=2, blank=True,
                                help_text="Patient-refund rules: the practice's state; unclaimed property: the "
                                          "owner's (patient's) state; blank: any state.")
    effective_from = models.DateField(null=True, blank=True)
    effective_to = models.DateField(null=True, blank=True, help_text="Last day the rule applies (blank: open).")
    active = models.BooleanField(default=True)
    # refund and return clocks
    days = models.PositiveIntegerField(null=True, blank=True, help_text="Days from determination to the due date.")
    notice_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Notice to the patient due this many days after determination; the refund is "
                                         "then due `days` after the notice (California).")
    suspension_max_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="A good-faith investigation suspends the clock for at most this many days "
                                         "from identification; the clock restarts when it ends.")
    election_stops_clock = models.BooleanField(
        default=False, help_text="The patient's election to keep the credit stops the refund clock.")
    billed_claims_only = models.BooleanField(
        default=False, help_text="Only for overpayments on visits billed to an insurer or government program.")
    # unclaimed property
    dormancy_years = models.PositiveIntegerField(null=True, blank=True)
    cutoff_month = models.PositiveSmallIntegerField(null=True, blank=True,
                                                    help_text="Property dormant by this day is presumed abandoned.")
    cutoff_day = models.PositiveSmallIntegerField(null=True, blank=True)
    letter_month = models.PositiveSmallIntegerField(null=True, blank=True,
                                                    help_text="The due-diligence letter is due by this day.")
    letter_day = models.PositiveSmallIntegerField(null=True, blank=True)
    letter_threshold = money_field(null=True, blank=True,
                                   help_text="A letter is needed only above this amount.")
    report_month = models.PositiveSmallIntegerField(null=True, blank=True, help_text="The holder report is due then.")
    report_day = models.PositiveSmallIntegerField(null=True, blank=True)
    min_amount = money_field(null=True, blank=True,
                             help_text="Amounts of this or less are not escheated (Michigan: 25.00).")
    citation = models.CharField(max_length=300, blank=True)
    note = models.TextField(blank=True)
    history = history()

    class Meta:
        ordering = ["kind", "us_state", "payer_type", "effective_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="unclaimed_property", dormancy_years__gte=1, cutoff_month__range=(1, 12),
                            cutoff_day__range=(1, 31), report_month__range=(1, 12), report_day__range=(1, 31))
                | (~Q(kind="unclaimed_property") & Q(days__gte=1, days__lte=3650)),
                name="clock_rule_complete"),
            models.CheckConstraint(condition=Q(effective_to__isnull=True) | Q(effective_from__isnull=True)
                                   | Q(effective_to__gte=F("effective_from")), name="clock_rule_dates_ordered"),
            models.CheckConstraint(condition=Q(suspension_max_days__isnull=True) | Q(suspension_max_days__lte=3650),
                                   name="clock_rule_suspension_range"),
            models.CheckConstraint(condition=Q(letter_threshold__isnull=True) | Q(letter_threshold__gte=0),
                                   name="clock_rule_letter_threshold_nonneg"),
        ]

    def __str__(self) -> str:
        return self.name


class CaseQuerySet(models.QuerySet):
    def open(self):
        return self.exclude(state=Case.State.RESOLVED)


class Case(FSMModelMixin, models.Model):
    """One credit balance being adjudicated (rule 15)."""

    class State(models.TextChoices):
        IDENTIFIED = "identified", "Identified"
        INVESTIGATING = "investigating", "Investigating"
        WAITING_PAYER = "waiting_payer", "Waiting on the payer"
        PROPOSED = "proposed", "Resolution proposed"
        APPROVED = "approved", "Resolution approved"
        RESOLVED = "resolved", "Resolved"

    OPEN = (State.IDENTIFIED, State.INVESTIGATING, State.WAITING_PAYER, State.PROPOSED, State.APPROVED)

    class Kind(models.TextChoices):
        PATIENT_CREDIT = "patient_credit", "Patient credit"
        PAYER_CREDIT = "payer_credit", "Payer credit"
        ENCOUNTER = "encounter_overpaid", "Visit paid beyond its charge"

    class Cause(models.TextChoices):
        PATIENT_OVERPAYMENT = "patient_overpayment", "Patient overpaid"
        DUPLICATE = "duplicate_payment", "Payer paid twice"
        ABOVE_CHARGE = "above_allowed", "Payer paid above the charge"
        WRONG_PRIMARY = "wrong_primary", "Paid as primary when another payer was primary"
        TAKEBACK = "takeback_pending", "Payer take-back pending"
        PAID_BEYOND_CHARGE = "paid_beyond_charge", "Payments beyond the visit's charge"
        OTHER = "other", "Other"

    class Outcome(models.TextChoices):
        # by an approved resolution (rule 16)
        REFUND_PATIENT = "refund_patient", "Refunded to the patient"
        REFUND_PAYER = "refund_payer", "Refunded to the payer by check"
        RECOUPED = "recouped", "Recouped by the payer"
        APPLIED = "applied", "Applied to open balances"
        KEPT = "kept", "Kept as credit by the patient's election"
        RESUBMITTED = "resubmitted", "Claim resubmitted"
        WRITTEN_OFF = "written_off", "Written off"
        UNCLAIMED = "unclaimed_property", "Turned over as unclaimed property"
        # by itself: the money left without the case
        MONEY_GONE = "money_gone", "The money left the account by itself"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+", db_index=False)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    cause = models.CharField(max_length=24, choices=Cause.choices)
    source = models.CharField(max_length=24, blank=True, help_text="Where the money came from (the credit's source).")
    credit = models.ForeignKey("credits.Credit", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="cases", db_index=False)
    payer_credit = models.ForeignKey("credits.PayerCredit", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="cases", db_index=False)
    encounter = models.ForeignKey("ledger.Encounter", null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+", db_index=False)
    patient = models.ForeignKey("ledger.Patient", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="+", db_index=False)
    payer = models.ForeignKey("ledger.Payer", null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+", db_index=False)
    payer_type = models.CharField(max_length=16, blank=True)
    amount = money_field(help_text="The credit balance when the case was opened.")
    state = FSMField(choices=State.choices, default=State.IDENTIFIED, protected=True)
    outcome = models.CharField(max_length=24, choices=Outcome.choices, blank=True)
    outcome_note = models.TextField(blank=True, help_text="Why the case was resolved, in words.")
    automatic = models.BooleanField(default=False, help_text="Resolved without staff action.")
    identified_at = models.DateTimeField(default=timezone.now)
    determined_on = models.DateField(help_text="The day the overpayment was determined (the clock starts here), in the "
                                               "practice's time zone.")
    # the clock (rule 17; adjudication/clocks.py computes these, the services store them)
    clock_rule = models.ForeignKey(ClockRule, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                   db_index=False)
    due_on = models.DateField(null=True, blank=True, help_text="Blank while the clock is paused or stopped.")
    notice_due_on = models.DateField(null=True, blank=True)
    investigation_started_on = models.DateField(null=True, blank=True)
    investigation_ended_on = models.DateField(null=True, blank=True)
    clock_stopped = models.BooleanField(default=False, help_text="Stopped by the patient's election (where the law "
                                                                 "allows).")
    notice_sent_on = models.DateField(null=True, blank=True)
    election = models.CharField(max_length=8, blank=True, choices=[("refund", "Refund"), ("keep", "Keep as credit")])
    election_at = models.DateTimeField(null=True, blank=True)
    election_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+", db_index=False)
    assigned_to = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+", db_index=False)
    follow_up_on = models.DateField(null=True, blank=True, help_text="Waiting on the payer until this day.")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+", db_index=False)
    reopened_count = models.PositiveIntegerField(default=0, help_text="Each reopening counts as an error (rule 21).")
    history = history(no_db_index=["practice", "credit", "payer_credit", "encounter", "patient", "payer",
                                   "clock_rule", "election_by", "assigned_to", "resolved_by"])

    objects = CaseQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0, amount__lte=AMOUNT_CEILING), name="case_amount_range"),
            # what the case is about, by kind
            models.CheckConstraint(
                condition=Q(kind="patient_credit", credit__isnull=False, payer_credit__isnull=True,
                            patient__isnull=False)
                | Q(kind="payer_credit", payer_credit__isnull=False, credit__isnull=True, payer__isnull=False)
                | Q(kind="encounter_overpaid", encounter__isnull=False, credit__isnull=True,
                    payer_credit__isnull=True, patient__isnull=False),
                name="case_subject_by_kind"),
            # never two cases for the same money
            models.UniqueConstraint(fields=["credit"], condition=Q(credit__isnull=False), name="case_one_per_credit"),
            models.UniqueConstraint(fields=["payer_credit"], condition=Q(payer_credit__isnull=False),
                                    name="case_one_per_payer_credit"),
            models.UniqueConstraint(fields=["encounter"], condition=Q(kind="encounter_overpaid")
                                    & ~Q(state="resolved"), name="case_one_open_per_encounter"),
            models.CheckConstraint(
                condition=Q(state="resolved", resolved_at__isnull=False) & ~Q(outcome="")
                | (~Q(state="resolved") & Q(resolved_at__isnull=True, outcome="")),
                name="case_resolved_has_outcome"),
            models.CheckConstraint(condition=Q(investigation_ended_on__isnull=True)
                                   | Q(investigation_started_on__isnull=False,
                                       investigation_ended_on__gte=F("investigation_started_on")),
                                   name="case_investigation_dates_ordered"),
        ]
        indexes = [
            # the work queue: open cases of a practice by due date
            models.Index(fields=["practice", "due_on", "id"], condition=~Q(state="resolved"), name="case_queue_idx"),
            models.Index(fields=["practice", "state"], name="case_practice_state_idx"),
            models.Index(fields=["practice", "resolved_at"], condition=Q(state="resolved"),
                         name="case_resolved_idx"),
            # the patient portal: a patient's notices waiting on an answer (portal.selectors.open_notices)
            models.Index(fields=["patient"], condition=Q(notice_sent_on__isnull=False) & ~Q(state="resolved"),
                         name="case_patient_notice_idx"),
        ]

    def __str__(self) -> str:
        return f"Case {self.pk}: {self.amount} {self.get_cause_display().lower()}"

    # transitions change the instance only; services lock, save, record the event
    @transition(field=state, source=[State.IDENTIFIED, State.WAITING_PAYER], target=State.INVESTIGATING)
    def investigate(self):
        pass

    @transition(field=state, source=[State.IDENTIFIED, State.INVESTIGATING], target=State.WAITING_PAYER)
    def wait_on_payer(self, *, follow_up_on):
        self.follow_up_on = follow_up_on

    @transition(field=state, source=[State.IDENTIFIED, State.INVESTIGATING, State.WAITING_PAYER], target=State.PROPOSED)
    def propose(self):
        self.follow_up_on = None

    @transition(field=state, source=State.PROPOSED, target=State.INVESTIGATING)
    def reject(self):
        pass

    @transition(field=state, source=State.PROPOSED, target=State.APPROVED)
    def approve(self):
        pass

    @transition(field=state, source=State.APPROVED, target=State.PROPOSED)
    def refuse_carry_out(self):
        """The money changed before the approved resolution was carried out (example N)."""

    @transition(field=state, source=OPEN, target=State.RESOLVED)
    def resolve(self, *, outcome, note, by=None, automatic=False):
        self.outcome, self.outcome_note, self.resolved_by, self.automatic = outcome, note, by, automatic
        self.resolved_at = timezone.now()
        self.follow_up_on = None

    @transition(field=state, source=State.RESOLVED, target=State.INVESTIGATING)
    def reopen(self):
        self.outcome, self.outcome_note, self.resolved_at, self.resolved_by, self.automatic = "", "", None, None, False
        self.reopened_count += 1


class CaseEvent(models.Model):
    """The case's record, append-only (a trigger refuses UPDATE and DELETE: migration 0002)."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Case opened"
        NOTE = "note", "Note"
        BALANCE_CONFIRMED = "balance_confirmed", "Balance confirmed"
        SOURCE_REVIEWED = "source_reviewed", "Source reviewed"
        DOCUMENT = "document", "Document added"
        STATE = "state", "State changed"
        CONTACT = "contact", "Payer contacted"
        ASSIGNED = "assigned", "Assigned"
        CLOCK = "clock", "Clock changed"
        NOTICE = "notice", "Notice sent to the patient"
        ELECTION = "election", "Patient's election"
        PROPOSAL = "proposal", "Resolution proposed"
        DECISION = "decision", "Proposal decided"
        REFUSED = "refused", "Carrying out refused"
        CARRIED_OUT = "carried_out", "Resolution carried out"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    text = models.TextField(help_text="What happened and why, in words.")
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16, blank=True)
    data = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["case", "at"], name="case_event_timeline_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.text[:60]}"


class CaseDocument(models.Model):
    """A file kept with a case (size- and type-checked by the service; append-only)."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="documents")
    event = models.OneToOneField(CaseEvent, on_delete=models.PROTECT, related_name="document")
    file = models.FileField(upload_to="cases/%Y/%m/")
    filename = models.CharField(max_length=255, help_text="The name it was uploaded with.")
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                    db_index=False)
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # the same file once per case (the service says so first, as a Duplicate)
            models.UniqueConstraint(fields=["case", "sha256"], name="case_document_once_per_case"),
            models.CheckConstraint(condition=Q(size__gte=1) & Q(sha256__regex=r"^[0-9a-f]{64}$"),
                                   name="case_document_size_and_digest"),
        ]

    def __str__(self) -> str:
        return self.filename


class PayerContact(models.Model):
    """A contact with the payer about a case (append-only)."""

    class Channel(models.TextChoices):
        PHONE = "phone", "Phone"
        PORTAL = "portal", "Payer portal"
        FAX = "fax", "Fax"
        LETTER = "letter", "Letter"
        EMAIL = "email", "E-mail"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="contacts")
    event = models.OneToOneField(CaseEvent, on_delete=models.PROTECT, related_name="contact")
    contacted_on = models.DateField()
    channel = models.CharField(max_length=8, choices=Channel.choices)
    person = models.CharField(max_length=200, blank=True, help_text="Whom staff spoke or wrote to.")
    reference = models.CharField(max_length=100, blank=True, help_text="The payer's call or ticket reference.")
    outcome = models.TextField()
    follow_up_on = models.DateField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                   db_index=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["contacted_on", "id"]
        constraints = [models.CheckConstraint(condition=Q(follow_up_on__isnull=True)
                                              | Q(follow_up_on__gte=F("contacted_on")),
                                              name="payer_contact_follow_up_after")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.contacted_on}"


class Proposal(FSMModelMixin, models.Model):
    """A proposed resolution (rule 16): proposed by billing staff, decided by a manager other than
    the proposer (a CHECK), carried out through the money services."""

    class Kind(models.TextChoices):
        REFUND_PATIENT = "refund_patient", "Refund the patient"
        REFUND_PAYER = "refund_payer", "Refund the payer by check"
        AWAIT_RECOUPMENT = "await_recoupment", "Wait for the payer's recoupment"
        APPLY_BALANCES = "apply_balances", "Apply to the patient's other open balances"
        KEEP_CREDIT = "keep_credit", "Keep as credit (the patient's election)"
        RESUBMIT_CLAIM = "resubmit_claim", "Resubmit the claim"
        WRITE_OFF = "write_off", "Write off a small balance"
        UNCLAIMED = "unclaimed_property", "Turn over as unclaimed property"

    class State(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        CARRIED_OUT = "carried_out", "Carried out"
        REFUSED = "refused", "Refused when carried out"

    LIVE = (State.PROPOSED, State.APPROVED)

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="proposals")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount = money_field()
    method = models.CharField(max_length=20, blank=True, help_text="Patient refunds: original_payment, check, ach.")
    reference = models.CharField(max_length=100, blank=True, help_text="Check number or ACH trace.")
    claim = models.ForeignKey("ledger.Claim", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                              db_index=False, help_text="The claim to resubmit.")
    reason = models.TextField()
    state = FSMField(choices=State.choices, default=State.PROPOSED, protected=True)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                    db_index=False)
    proposed_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+", db_index=False)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    carried_out_at = models.DateTimeField(null=True, blank=True)
    refusal = models.TextField(blank=True, help_text="Why carrying it out was refused.")
    result = models.JSONField(default=dict, blank=True, help_text="What carrying it out wrote (refund id, ...).")
    history = history(no_db_index=["case", "claim", "proposed_by", "decided_by"])

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0, amount__lte=AMOUNT_CEILING),
                                   name="proposal_amount_range"),
            # four eyes, always: whoever proposed never decides
            models.CheckConstraint(condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("proposed_by")),
                                   name="proposal_four_eyes"),
            models.CheckConstraint(condition=Q(state="proposed", decided_by__isnull=True)
                                   | (~Q(state="proposed") & Q(decided_by__isnull=False, decided_at__isnull=False)),
                                   name="proposal_decided_has_who_and_when"),
            # one live proposal per case
            models.UniqueConstraint(fields=["case"], condition=Q(state__in=["proposed", "approved"]),
                                    name="proposal_one_live_per_case"),
        ]
        indexes = [models.Index(fields=["case", "proposed_at"], name="proposal_case_idx")]

    def __str__(self) -> str:
        return f"Proposal {self.pk}: {self.get_kind_display()} {self.amount}"

    @transition(field=state, source=State.PROPOSED, target=State.APPROVED)
    def approve(self, *, by, note):
        self.decided_by, self.decided_at, self.decision_note = by, timezone.now(), note

    @transition(field=state, source=State.PROPOSED, target=State.REJECTED)
    def reject(self, *, by, note):
        self.decided_by, self.decided_at, self.decision_note = by, timezone.now(), note

    @transition(field=state, source=State.APPROVED, target=State.CARRIED_OUT)
    def carry_out(self, *, result):
        self.carried_out_at, self.result = timezone.now(), result

    @transition(field=state, source=[State.PROPOSED, State.APPROVED], target=State.REFUSED)
    def refuse(self, *, why):
        self.refusal = why


class PatientNotice(models.Model):
    """An overpayment notice sent to a patient (rule 18): the letter (PDF) and the e-mail."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="notices")
    event = models.OneToOneField(CaseEvent, on_delete=models.PROTECT, related_name="notice")
    sent_on = models.DateField()
    emailed_to = models.EmailField(blank=True)
    letter = models.FileField(upload_to="notices/%Y/%m/")
    sent_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    sent_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Notice of case {self.case_id} ({self.sent_on})"


class RefundPolicy(models.Model):
    """Which credits go to the refund work list by themselves (rule 19)."""

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    min_amount = money_field(default="0.01")
    max_amount = money_field(null=True, blank=True, help_text="Blank: no upper limit.")
    min_age_days = models.PositiveIntegerField(default=0)
    require_no_open_balance = models.BooleanField(default=True, help_text="Only patients who owe nothing now.")
    require_no_pending_claim = models.BooleanField(default=True, help_text="Only patients with no claim waiting.")
    history = history()

    class Meta:
        verbose_name_plural = "refund policies"
        constraints = [
            models.CheckConstraint(condition=Q(min_amount__gt=0), name="refund_policy_min_positive"),
            models.CheckConstraint(condition=Q(max_amount__isnull=True) | Q(max_amount__gte=F("min_amount")),
                                   name="refund_policy_range_ordered"),
            models.CheckConstraint(condition=Q(min_age_days__lte=3650), name="refund_policy_age_range"),
        ]

    def __str__(self) -> str:
        return self.name


class RefundApprovalBand(models.Model):
    """The approval a refund of an amount band needs (rule 19): who may approve it, and whether a
    second person must (four eyes)."""

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+")
    up_to = money_field(null=True, blank=True, help_text="Refunds up to this amount (blank: everything above the "
                                                         "other bands).")
    role = models.CharField(max_length=16, choices=[("billing", "Billing staff"), ("manager", "Manager")])
    four_eyes = models.BooleanField(default=False, help_text="Someone other than the requester approves.")
    history = history()

    class Meta:
        ordering = ["practice", F("up_to").asc(nulls_last=True)]
        constraints = [
            models.CheckConstraint(condition=Q(up_to__isnull=True) | Q(up_to__gt=0), name="refund_band_positive"),
            models.UniqueConstraint(fields=["practice", "up_to"], name="refund_band_unique",
                                    nulls_distinct=False),
        ]

    def __str__(self) -> str:
        return f"up to {self.up_to}" if self.up_to is not None else "above"


class UnclaimedProperty(FSMModelMixin, models.Model):
    """A patient credit past its owner state's dormancy (rule 17, example L)."""

    class State(models.TextChoices):
        LISTED = "listed", "Presumed abandoned"
        LETTER_SENT = "letter_sent", "Due-diligence letter sent"
        TURNED_OVER = "turned_over", "Turned over to the state"
        RELEASED = "released", "Released (the owner came back or the money left)"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+", db_index=False)
    case = models.OneToOneField(Case, on_delete=models.PROTECT, related_name="unclaimed")
    credit = models.OneToOneField("credits.Credit", on_delete=models.PROTECT, related_name="unclaimed")
    rule = models.ForeignKey(ClockRule, on_delete=models.PROTECT, related_name="+", db_index=False)
    owner_state = models.CharField(max_length=2)
    amount = money_field()
    last_activity_on = models.DateField()
    presumed_on = models.DateField()
    letter_due_on = models.DateField(null=True, blank=True, help_text="Blank: no letter needed (under the threshold).")
    report_due_on = models.DateField()
    letter_sent_on = models.DateField(null=True, blank=True)
    letter = models.FileField(upload_to="unclaimed/%Y/", blank=True)
    turned_over_on = models.DateField(null=True, blank=True)
    report_year = models.PositiveIntegerField()
    state = FSMField(choices=State.choices, default=State.LISTED, protected=True)
    history = history(no_db_index=["practice", "rule"])

    class Meta:
        verbose_name_plural = "unclaimed property"
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="unclaimed_amount_positive"),
            models.CheckConstraint(condition=~Q(state="turned_over") | Q(turned_over_on__isnull=False),
                                   name="unclaimed_turned_over_has_date"),
        ]
        indexes = [models.Index(fields=["practice", "report_due_on"], name="unclaimed_report_idx")]

    def __str__(self) -> str:
        return f"Unclaimed {self.amount} ({self.owner_state}, report {self.report_due_on})"

    @transition(field=state, source=State.LISTED, target=State.LETTER_SENT)
    def letter_sent(self, *, on):
        self.letter_sent_on = on

    @transition(field=state, source=[State.LISTED, State.LETTER_SENT], target=State.TURNED_OVER)
    def turn_over(self, *, on):
        self.turned_over_on = on

    @transition(field=state, source=[State.LISTED, State.LETTER_SENT], target=State.RELEASED)
    def release(self):
        pass

    @transition(field=state, source=State.RELEASED, target=State.LISTED)
    def relist(self, *, rule, owner_state, amount, last_activity_on, presumed_on, letter_due_on, report_due_on,
               report_year):
        """Dormant again after a release (the credit has one row): new dates, no letter yet."""
        self.rule, self.owner_state, self.amount, self.last_activity_on = rule, owner_state, amount, last_activity_on
        self.presumed_on, self.letter_due_on, self.report_due_on = presumed_on, letter_due_on, report_due_on
        self.report_year, self.letter_sent_on = report_year, None
        self.letter = ""
