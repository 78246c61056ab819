"""What goes in and out of the API. Output serializers are read-only views of the models; input
serializers only validate shapes and types: the rules are the services' (ledger/services.py,
credits/services.py), which the views call with the validated data.

Money is a decimal string with two places ("50.00") both ways. Input also takes integers, and
JSON numbers are read exactly (as decimals, never floats), but strings are recommended."""

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import (
    EmailOrBlankField,
    FormBooleanField,
    Id,
    LocalTimeField,
    MoneyField,
    Reason,
    StrictBooleanField,
    StrictDateField,
    StrictIntegerField,
    TextField,
)
from api.models import ApiToken
from api.tokens import token_power
from credits.models import Credit, CreditApplication, CreditImport, ManualCreditRequest, NightlyRun, Refund
from credits.services import ClaimOutcome
from ledger.models import AMOUNT_CEILING, MEDICARE_PARTS, Claim, Encounter, Patient, Payer, Payment, Practice
from remittances.models import RemittanceClaim, RemittanceFile


class PracticeSerializer(serializers.ModelSerializer):
    nightly_run_at = LocalTimeField(read_only=True)
    class Meta:
        model = Practice
        fields = ["id", "name", "us_state", "time_zone", "auto_apply", "nightly_run_at", "refund_approval_threshold",
                  "card_refund_window_days", "writeoff_max_amount", "writeoff_min_age_days", "approval_window_days",
                  "manual_credit_approval_limit", "max_operation_amount"]
        read_only_fields = fields


class PracticeUpdateSerializer(serializers.Serializer):
    # shapes only: the values are checked by ledger.services.practice_settings_clean (e.g. a real US state
    # and IANA time zone), whose refusal is a 400 naming the field
    name = TextField(required=False, max_length=200)
    us_state = TextField(required=False, max_length=64, help_text="A US state or territory code, e.g. TX.")
    time_zone = TextField(required=False, max_length=64, help_text="An IANA time zone, e.g. America/Chicago.")
    nightly_run_at = LocalTimeField(required=False, help_text="The nightly run's local time, HH:MM.")
    auto_apply = StrictBooleanField(required=False, help_text="Apply usable credits every night (rule 6).")
    refund_approval_threshold = MoneyField(required=False, min_value=Decimal(0),
                                           help_text="Refunds above this need a manager's approval.")
    card_refund_window_days = StrictIntegerField(required=False, min_value=0, max_value=3650)
    writeoff_max_amount = MoneyField(required=False, min_value=Decimal(0))
    writeoff_min_age_days = StrictIntegerField(required=False, min_value=0, max_value=3650)
    approval_window_days = StrictIntegerField(
        required=False, min_value=0, max_value=3650,
        help_text="A patient's refunds, and manual and imported credits, over this many days add up against the "
                  "approval thresholds.")
    manual_credit_approval_limit = MoneyField(
        required=False, min_value=Decimal(0),
        help_text="Manual credits of a patient above this over the window, and imports above it, wait for a manager.")
    max_operation_amount = MoneyField(required=False, min_value=Decimal("0.01"), max_value=AMOUNT_CEILING,
                                      help_text=f"The most one money operation may move (at most {AMOUNT_CEILING}).")
    reason = Reason(required=True)


class TokenSerializer(serializers.ModelSerializer):
    practice = PracticeSerializer(read_only=True)
    effective_role = serializers.SerializerMethodField(
        help_text="What the token may do now: its role, lowered to its person's current role in the practice "
                  "(an integration token is always billing).")
    acts_for = serializers.SerializerMethodField(
        help_text="The username services act as (history names it): the person who made the token, or an "
                  "integration token's own user.")
    integration = serializers.SerializerMethodField(
        help_text="True for a token with no person behind it: it does billing work and never approves.")

    class Meta:
        model = ApiToken
        fields = ["name", "role", "effective_role", "acts_for", "integration", "prefix", "practice", "created_at",
                  "last_used_at"]
        read_only_fields = fields

    def get_effective_role(self, token) -> str:
        return getattr(token, "effective_role", None) or token_power(token)[1]

    def get_acts_for(self, token) -> str:
        return token.acting_user.get_username()

    def get_integration(self, token) -> bool:
        return token.is_integration


class PayerSerializer(serializers.ModelSerializer):
    medicare_part = serializers.CharField(read_only=True, help_text="Medicare payers: A or B; others: empty.")

    class Meta:
        model = Payer
        fields = ["id", "name", "payer_type", "payer_identifier", "medicare_part"]
        read_only_fields = fields


class PayerCreateSerializer(serializers.Serializer):
    name = TextField(max_length=200)
    payer_type = serializers.ChoiceField(choices=Payer.Type.choices)
    payer_identifier = TextField(max_length=80, required=False, default="", allow_blank=True,
                                 help_text="The payer's id in 835 files (TRN03 / N1*PR).")
    medicare_part = serializers.ChoiceField(choices=MEDICARE_PARTS, allow_blank=True, required=False, default="")
    reason = Reason(default="New payer")


# --- patients -----------------------------------------------------------------------------------------

class PatientSerializer(serializers.ModelSerializer):
    email = serializers.CharField(read_only=True, help_text="An email address, or empty.")
    due_now = MoneyField(read_only=True,
                         help_text="What the patient owes now: the balances of their dates of service with no claim "
                                   "waiting on a payer (what a payment or the nightly run can pay).")
    pending_payer = MoneyField(read_only=True,
                               help_text="Balances of dates of service whose claim still waits on a payer: the "
                                         "estimated PR, not due until the payer decides (credits locked to those "
                                         "dates are in locked_credit).")
    available_credit = MoneyField(source="available_total", read_only=True,
                                  help_text="Credits usable for any of the patient's balances.")
    locked_credit = MoneyField(source="locked_total", read_only=True,
                               help_text="Credits held for one date of service each.")

    class Meta:
        model = Patient
        fields = ["id", "account_number", "first_name", "last_name", "date_of_birth", "email", "member_id",
                  "address_line1", "address_line2", "city", "us_state", "postal_code",
                  "exclude_from_auto_apply", "created_at", "due_now", "pending_payer", "available_credit",
                  "locked_credit"]
        read_only_fields = fields


class PatientCreateSerializer(serializers.Serializer):
    account_number = TextField(max_length=32, help_text="Unique within the practice (the EHR's account number).")
    first_name = TextField(max_length=100)
    last_name = TextField(max_length=100)
    date_of_birth = StrictDateField(kind="birth", required=False, allow_null=True, default=None)
    email = EmailOrBlankField(required=False, default="")
    member_id = TextField(max_length=64, required=False, default="", allow_blank=True,
                          help_text="Insurance member id (835 NM1*QC).")
    exclude_from_auto_apply = StrictBooleanField(required=False, default=False)
    address_line1 = TextField(max_length=200, required=False, default="", allow_blank=True, help_text="Last address.")
    address_line2 = TextField(max_length=200, required=False, default="", allow_blank=True)
    city = TextField(max_length=100, required=False, default="", allow_blank=True)
    us_state = TextField(max_length=2, required=False, default="", allow_blank=True, help_text="Two-letter code.")
    postal_code = TextField(max_length=10, required=False, default="", allow_blank=True, help_text="12345 or 12345-6789.")
    reason = Reason(default="New patient")


class PatientAutoApplySerializer(serializers.Serializer):
    excluded = StrictBooleanField(help_text="True: the nightly run leaves this patient's credits alone.")
    reason = Reason(required=True)


class PatientApplyCreditsSerializer(serializers.Serializer):
    reason = Reason(default="Applied by hand")


class PlanLineSerializer(serializers.Serializer):
    credit = serializers.IntegerField(source="credit_id")
    encounter = serializers.IntegerField(source="encounter_id")
    amount = MoneyField()
    locked = serializers.BooleanField(help_text="True when the credit was locked to this date of service.")


class ApplyCreditsResultSerializer(serializers.Serializer):
    applied_total = MoneyField()
    released_credits = serializers.IntegerField(source="released")
    lines = PlanLineSerializer(many=True)


class CreditAmountSerializer(serializers.Serializer):
    credit = Id()
    amount = MoneyField(min_value=Decimal("0.01"))


class PreselectSerializer(serializers.Serializer):
    encounter_ids = serializers.ListField(child=serializers.IntegerField())
    owed = MoneyField(help_text="What the chosen, payable dates of service owe.")
    covered = MoneyField(help_text="How much of it the patient's usable credits can pay.")
    enough = serializers.BooleanField(help_text="True when the credits cover everything owed; only then are "
                                                "credits preselected (rule 7).")
    credits = CreditAmountSerializer(many=True, help_text="The preselected credits and amounts (empty if not enough).")


# --- encounters and claims --------------------------------------------------------------------------

class EncounterSerializer(serializers.ModelSerializer):
    pr = MoneyField(read_only=True,
                    help_text="Patient responsibility: the remittance PR once known, else the estimate.")
    balance = MoneyField(read_only=True, help_text="PR - applied - written off.")
    has_open_claim = serializers.BooleanField(read_only=True,
                                              help_text="A claim still waits on a payer (the PR is not final).")
    locked_credit = MoneyField(read_only=True, help_text="Credits locked to this date of service.")

    class Meta:
        model = Encounter
        fields = ["id", "patient", "date_of_service", "description", "charge", "estimated_pr", "remittance_pr", "pr",
                  "applied_amount", "written_off_amount", "balance", "has_open_claim", "locked_credit", "created_at"]
        read_only_fields = fields


class EncounterCreateSerializer(serializers.Serializer):
    patient = Id()
    date_of_service = StrictDateField(kind="service")
    charge = MoneyField(min_value=Decimal(0))
    estimated_pr = MoneyField(min_value=Decimal(0), required=False, default=Decimal("0.00"),
                              help_text="Estimated patient responsibility (until a remittance sets the real one).")
    description = TextField(max_length=200, required=False, default="", allow_blank=True)
    reason = Reason(default="Visit recorded")


class ClaimSerializer(serializers.ModelSerializer):
    patient = serializers.IntegerField(source="encounter.patient_id", read_only=True)
    finalized = serializers.BooleanField(source="is_finalized", read_only=True,
                                         help_text="Paid or denied: the payer's decision is final.")

    class Meta:
        model = Claim
        fields = ["id", "encounter", "patient", "payer", "claim_number", "payer_claim_number", "state", "finalized",
                  "billed_amount", "paid_amount", "adjustment_amount", "patient_responsibility", "remittance_count",
                  "submitted_at", "finalized_at"]
        read_only_fields = fields


class ClaimCreateSerializer(serializers.Serializer):
    encounter = Id()
    payer = Id()
    claim_number = TextField(max_length=64, help_text="The practice's claim number (835 CLP01).")
    billed_amount = MoneyField(required=False, allow_null=True, default=None, min_value=Decimal(0),
                               help_text="Defaults to the encounter's charge.")
    reason = Reason(default="Claim submitted")


class ClaimResultSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=[(o, o) for o in ClaimOutcome.ALL])
    paid_amount = MoneyField(required=False, default=Decimal("0.00"),
                             help_text="What the payer paid in this decision (negative for a take-back).")
    adjustment_amount = MoneyField(required=False, default=Decimal("0.00"),
                                   help_text="Contractual/other adjustments in this decision.")
    patient_responsibility = MoneyField(required=False, allow_null=True, default=None, min_value=Decimal(0),
                                        help_text="The date of service's new PR; null leaves it unchanged.")
    payer_claim_number = TextField(max_length=64, required=False, default="", allow_blank=True)
    reason = Reason(required=True)


class ReasonSerializer(serializers.Serializer):
    reason = Reason(required=True)


# --- payments, applications, credits ---------------------------------------------------------------

class PaymentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Payment
        fields = ["id", "patient", "encounter", "amount", "channel", "processor_reference", "check_number",
                  "refunded_amount", "note", "received_at"]
        read_only_fields = fields


class ApplicationSerializer(serializers.ModelSerializer):
    class Meta:
        model = CreditApplication
        fields = ["id", "encounter", "amount", "credit", "payment", "reason", "created_at"]
        read_only_fields = fields


class CreditSerializer(serializers.ModelSerializer):
    class Meta:
        model = Credit
        fields = ["id", "patient", "source", "state", "amount", "on_hand", "refund_hold", "applied_amount",
                  "refunded_amount", "removed_amount", "locked_encounter", "origin_encounter", "payment", "note",
                  "created_at"]
        read_only_fields = fields


class _CardInput(serializers.Serializer):
    card_token = TextField(max_length=200, required=False, default="", allow_blank=True,
                           help_text="The card processor's token (card_reader/portal). Card numbers never reach "
                                     "settle. Sandbox: `tok_visa` approves, `tok_decline` declines.")
    processor_reference = TextField(max_length=100, required=False, default="", allow_blank=True,
                                    help_text="Instead of a token: the reference of a charge already taken on the "
                                              "card reader terminal.")

    def _check_card(self, attrs, channel):
        if channel in Payment.SYSTEM_CHANNELS and not (attrs.get("card_token") or attrs.get("processor_reference")):
            raise serializers.ValidationError(
                {"card_token": serializers.ErrorDetail(
                    f"card_token or processor_reference is required for channel {channel}", code="required")})


class PaymentCreateSerializer(_CardInput):
    patient = Id()
    amount = MoneyField(min_value=Decimal("0.01"))
    channel = serializers.ChoiceField(choices=Payment.Channel.choices)
    encounter = Id(required=False, allow_null=True, default=None,
                   help_text="The date of service paid toward. While its claim waits on the payer the payment is "
                             "held as a credit locked to it; without one it pays open balances oldest first.")
    check_number = TextField(max_length=40, required=False, default="", allow_blank=True,
                             help_text="Required for channel check.")
    note = TextField(max_length=2000, required=False, default="", allow_blank=True)
    reason = Reason(default="Patient payment")

    def validate(self, attrs):
        self._check_card(attrs, attrs["channel"])
        return attrs


class PaymentResultSerializer(serializers.Serializer):
    payment = PaymentSerializer()
    applications = ApplicationSerializer(many=True, help_text="What the payment paid right away.")
    credits = CreditSerializer(many=True, help_text="What became a credit (held for a pending DoS, or the rest).")


class CheckoutSerializer(_CardInput):
    patient = Id()
    encounter_ids = serializers.ListField(child=Id(), min_length=1, max_length=100,
                                          help_text="The dates of service to pay now (their PR must be known).")
    credits = CreditAmountSerializer(many=True, required=False, default=list,
                                     help_text="Credits to use and how much of each; only the rest is charged.")
    use_preselected_credits = StrictBooleanField(
        required=False, default=False,
        help_text="Use the credits settle preselects (GET /patients/{id}/preselect) instead of `credits`.")
    channel = serializers.ChoiceField(choices=Payment.Channel.choices, required=False, allow_null=True, default=None,
                                      help_text="How the rest is paid; required when credits do not cover it all.")
    check_number = TextField(max_length=40, required=False, default="", allow_blank=True,
                             help_text="Required for channel check.")
    reason = Reason(default="Payment at checkout")

    def validate(self, attrs):
        if attrs["use_preselected_credits"] and attrs["credits"]:
            raise serializers.ValidationError(
                {"credits": serializers.ErrorDetail("give either credits or use_preselected_credits, not both",
                                                    code="invalid")})
        ids = [c["credit"] for c in attrs["credits"]]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError(
                {"credits": serializers.ErrorDetail("a credit appears twice", code="invalid")})
        if attrs["channel"]:
            self._check_card(attrs, attrs["channel"])
        return attrs


class CheckoutResultSerializer(serializers.Serializer):
    owed = MoneyField()
    charged = MoneyField(help_text="What was charged after the credits.")
    payment = PaymentSerializer(allow_null=True, help_text="The payment for the rest; null when credits paid it all.")
    applications = ApplicationSerializer(many=True)


class CreditManualSerializer(serializers.Serializer):
    patient = Id()
    amount = MoneyField(min_value=Decimal("0.01"))
    reason = TextField(max_length=2000, help_text="Required: where the credit comes from and why (e.g. carried over "
                                                  "from the old system); kept as the credit's note.")
    encounter = Id(required=False, allow_null=True, default=None,
                   help_text="Lock the credit to this date of service; otherwise it is available.")


class ManualCreditSerializer(serializers.ModelSerializer):
    """A manual credit as asked for (issue 9): approved at once within the practice's limit, or waiting."""
    class Meta:
        model = ManualCreditRequest
        fields = ["id", "patient", "encounter", "amount", "note", "state", "needs_approval", "requested_at",
                  "decided_at", "decision_note", "credit"]
        read_only_fields = fields


class DecisionSerializer(serializers.Serializer):
    reason = TextField(max_length=2000, required=False, default="", allow_blank=True)


class RejectionSerializer(serializers.Serializer):
    reason = TextField(max_length=2000, help_text="Required: why it is rejected.")


class CreditImportSerializer(serializers.ModelSerializer):
    total = MoneyField(max_digits=20, read_only=True)

    class Meta:
        model = CreditImport
        fields = ["id", "filename", "sha256", "rows", "total", "state", "needs_approval", "reason", "created_at",
                  "decided_at", "decision_note"]
        read_only_fields = fields


class CreditImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The CSV file: account_number, amount, note[, date_of_service].")
    reason = TextField(max_length=2000, required=False, default="Credits imported from CSV",
                       help_text="Kept in the credits' history.")


class CreditPurchaseSerializer(_CardInput):
    patient = Id()
    amount = MoneyField(min_value=Decimal("0.01"))
    channel = serializers.ChoiceField(choices=Payment.Channel.choices)
    encounter = Id(required=False, allow_null=True, default=None,
                   help_text="Buy credits for this date of service (locked to it); otherwise flexible (available).")
    check_number = TextField(max_length=40, required=False, default="", allow_blank=True,
                             help_text="Required for channel check.")
    reason = Reason(default="Credits purchased")

    def validate(self, attrs):
        self._check_card(attrs, attrs["channel"])
        return attrs


class CreditMoveSerializer(serializers.Serializer):
    to_encounter = Id(allow_null=True, help_text="The date of service to lock the credit to; null: the flexible pool.")
    reason = Reason(required=True)


class CreditUnlockSerializer(serializers.Serializer):
    credit_ids = serializers.ListField(child=Id(), required=False, default=list, max_length=1000)
    patient_ids = serializers.ListField(child=Id(), required=False, default=list, max_length=1000,
                                        help_text="Unlock every locked credit of these patients.")
    reason = Reason(required=True, help_text="Required (e.g. the payer will never answer); kept in the history.")

    def validate(self, attrs):
        if not attrs["credit_ids"] and not attrs["patient_ids"]:
            raise serializers.ValidationError(
                {"credit_ids": serializers.ErrorDetail("give credit_ids or patient_ids", code="required")})
        if attrs["credit_ids"] and attrs["patient_ids"]:
            raise serializers.ValidationError(
                {"credit_ids": serializers.ErrorDetail("give credit_ids or patient_ids, not both", code="invalid")})
        return attrs


class UnlockResultSerializer(serializers.Serializer):
    unlocked = serializers.IntegerField(help_text="How many credits were unlocked.")


class CreditRemoveSerializer(serializers.Serializer):
    amount = MoneyField(required=False, allow_null=True, default=None, min_value=Decimal("0.01"),
                        help_text="Default: everything on hand.")
    reason = Reason(required=True)


class RefundRequestSerializer(serializers.Serializer):
    amount = MoneyField(min_value=Decimal("0.01"))
    reason = Reason(required=True)
    method = serializers.ChoiceField(choices=Refund.Method.choices, required=False, allow_null=True, default=None,
                                     help_text="Default: back to the original card/portal payment when the rules "
                                               "allow it, else by check.")
    reference = TextField(max_length=100, required=False, default="", allow_blank=True,
                          help_text="For a check or ACH refund paid out now: its check number or trace. When no "
                                    "approval is needed the refund is then issued at once.")


# --- refunds --------------------------------------------------------------------------------------

class RefundSerializer(serializers.ModelSerializer):
    issue_error = serializers.SerializerMethodField(
        help_text="Set when a refund approved at once could not be issued at once (the processor refused): it "
                  "stays approved; issue it later or reject it. Null otherwise.")

    class Meta:
        model = Refund
        fields = ["id", "patient", "credit", "payment", "amount", "method", "reference", "reason", "state",
                  "needs_approval", "requested_at", "decided_at", "decision_note", "issued_at", "issue_error"]
        read_only_fields = fields

    def get_issue_error(self, obj) -> str | None:
        return getattr(obj, "issue_error", None) or None


class RefundApproveSerializer(serializers.Serializer):
    reason = TextField(max_length=2000, required=False, default="", allow_blank=True)


class RefundRejectSerializer(serializers.Serializer):
    reason = TextField(max_length=2000, help_text="Required: why the refund is rejected.")


class RefundIssueSerializer(serializers.Serializer):
    reference = TextField(max_length=100, required=False, default="", allow_blank=True,
                          help_text="Check number or ACH trace (not needed for refunds to the original payment).")


# --- remittances --------------------------------------------------------------------------------------

class RemittanceIssueSerializer(serializers.Serializer):
    message = serializers.CharField()
    code = serializers.CharField(required=False, allow_null=True)
    segment = serializers.IntegerField(required=False, allow_null=True, help_text="1-based segment number.")
    segment_id = serializers.CharField(required=False, allow_null=True)
    position = serializers.IntegerField(required=False, allow_null=True, help_text="Byte offset in the file.")
    element = serializers.IntegerField(required=False, allow_null=True)


class RemittanceFileSerializer(serializers.ModelSerializer):
    warnings = RemittanceIssueSerializer(many=True, read_only=True)
    errors = RemittanceIssueSerializer(many=True, read_only=True,
                                       help_text="Why a refused file could not be read (segment and position).")
    claims_by_state = serializers.SerializerMethodField(
        help_text="How many of the file's claims are in each state (posted, unmatched, ...).")

    class Meta:
        model = RemittanceFile
        fields = ["id", "filename", "sha256", "size", "status", "duplicate_of", "transaction_count", "claim_count",
                  "paid_total", "plb_total", "skipped_transactions", "duplicate_transactions", "warnings", "errors",
                  "claims_by_state", "received_at", "posted_at"]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "integer"}})
    def get_claims_by_state(self, obj) -> dict:
        counts = getattr(obj, "claims_by_state", None)
        if counts is None:
            counts = {}
            for state in RemittanceClaim.objects.filter(file_id=obj.pk).values_list("state", flat=True):
                counts[state] = counts.get(state, 0) + 1
        return counts


class RemittanceUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The 835 file, as received from the payer.")
    post = FormBooleanField(required=False, default=True,
                                    help_text="Post the claims now (default); false: only store and read it, the "
                                              "nightly run posts it.")


class CasAdjustmentSerializer(serializers.Serializer):
    group = serializers.CharField()
    reason = serializers.CharField()
    amount = MoneyField()


class RemittanceClaimSerializer(serializers.ModelSerializer):
    adjustments = CasAdjustmentSerializer(many=True, read_only=True)

    class Meta:
        model = RemittanceClaim
        fields = ["id", "file", "claim_number", "status_code", "charge", "paid", "patient_responsibility",
                  "pr_adjustments", "other_adjustments", "payer_claim_number", "patient_name", "member_id",
                  "service_date", "adjustments", "state", "note", "claim", "segment", "position", "posted_at"]
        read_only_fields = fields


class RemittanceMatchSerializer(serializers.Serializer):
    claim = Id(help_text="The practice's claim this remittance claim is for.")
    reason = Reason(required=True)
    confirm_mismatch = StrictBooleanField(
        required=False, default=False,
        help_text="True: post it even though the claim's payer, patient name or date of service differs from the "
                  "remittance claim's (the differences and this confirmation are recorded).")


class RemittanceDismissSerializer(serializers.Serializer):
    reason = Reason(required=True, help_text="Why the claim is not ours (kept with the user and the time).")


# --- nightly runs -----------------------------------------------------------------------------------

class NightlyRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = NightlyRun
        fields = ["id", "status", "dry_run", "started_at", "finished_at", "patients_seen", "application_count",
                  "applied_total", "released_credits", "error"]
        read_only_fields = fields


class NightlyRunCreateSerializer(serializers.Serializer):
    reason = Reason(default="Nightly application (run through the API)")
    post_remittances = StrictBooleanField(required=False, default=True,
                                                help_text="Post received 835 files first (step 1 of the run).")


class NightlyRunResultSerializer(NightlyRunSerializer):
    remittances_posted = serializers.SerializerMethodField(help_text="835 files posted by this run.")

    class Meta(NightlyRunSerializer.Meta):
        fields = NightlyRunSerializer.Meta.fields + ["remittances_posted"]
        read_only_fields = fields

    def get_remittances_posted(self, obj) -> int:
        return self.context.get("remittances_posted", 0)


class PreviewLineSerializer(serializers.Serializer):
    patient = serializers.IntegerField()
    encounter = serializers.IntegerField()
    credit = serializers.IntegerField()
    amount = MoneyField()
    locked = serializers.BooleanField()


class NightlyPreviewSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="`succeeded`, or `skipped` when a run is in progress.")
    patients_seen = serializers.IntegerField()
    application_count = serializers.IntegerField()
    applied_total = MoneyField()
    released_credits = serializers.IntegerField()
    lines = PreviewLineSerializer(many=True, help_text="What a run would apply now (at most 5000 lines).")
    lines_truncated = serializers.BooleanField()

