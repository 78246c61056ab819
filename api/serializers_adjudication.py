"""What goes in and out of the adjudication API (issue 11 item 10). Output serializers are read-only
views of the case rows as the selectors annotate them (adjudication/selectors.py: money left, days
left, flagged); input serializers only check shapes and types: the rules are the services'
(adjudication/services/), which the views call with the validated data."""

from decimal import Decimal

from rest_framework import serializers

from adjudication.clocks import is_paused
from adjudication.models import Case, CaseDocument, CaseEvent, ClockRule, PayerContact, Proposal, UnclaimedProperty
from api.fields import Id, MoneyField, Reason, StrictBooleanField, StrictDateField, TextField
from api.serializers import RefundSerializer
from credits.models import Credit
from ledger.models import AMOUNT_CEILING


def Username(source: str, help_text: str = ""):
    """A user shown by username (null when there is none)."""
    return serializers.CharField(source=f"{source}.username", read_only=True, allow_null=True,
                                 help_text=help_text or None)


# --- out --------------------------------------------------------------------------------------------

class ProposalSerializer(serializers.ModelSerializer):
    proposed_by = Username("proposed_by")
    decided_by = Username("decided_by")

    class Meta:
        model = Proposal
        fields = ("id", "case", "kind", "amount", "method", "reference", "claim", "reason", "state", "proposed_by",
                  "proposed_at", "decided_by", "decided_at", "decision_note", "carried_out_at", "refusal", "result")
        read_only_fields = fields


QUEUE_FIELDS = ("id", "kind", "cause", "source", "state", "amount", "money_left", "patient", "payer", "payer_type",
                "credit", "payer_credit", "encounter", "determined_on", "due_on", "notice_due_on", "days_left",
                "flagged", "paused", "follow_up_on", "follow_up_overdue", "assigned_to", "election", "outcome",
                "automatic", "identified_at", "resolved_at", "reopened_count")


class CaseSerializer(serializers.ModelSerializer):
    """A case as the work queue shows it."""

    money_left = MoneyField(read_only=True, help_text="The credit balance as it is now (the case's `amount` is what "
                                                      "it was when the case was opened).")
    days_left = serializers.IntegerField(read_only=True, allow_null=True,
                                         help_text="Days from today (the practice's date) to the due date; negative "
                                                   "when overdue, null when the clock is paused or stopped.")
    flagged = serializers.BooleanField(read_only=True, help_text="Open and due within the practice's warning window "
                                                                 "(or overdue).")
    follow_up_overdue = serializers.BooleanField(read_only=True, help_text="Open and waiting on the payer past the "
                                                                           "follow-up day.")
    paused = serializers.SerializerMethodField(help_text="A good-faith investigation has suspended the clock.")

    class Meta:
        model = Case
        fields = QUEUE_FIELDS
        read_only_fields = fields

    def get_paused(self, case) -> bool:
        return is_paused(case, getattr(case, "local_today", None))


class CaseDetailSerializer(CaseSerializer):
    """A case with its clock, the patient's notice and election, how it ended, and its proposals."""

    clock_rule_name = serializers.CharField(source="clock_rule.name", read_only=True, allow_null=True, default=None)
    resolved_by = Username("resolved_by")
    election_by = Username("election_by")
    proposals = ProposalSerializer(many=True, read_only=True, help_text="Newest first.")

    class Meta:
        model = Case
        fields = (*QUEUE_FIELDS, "clock_rule", "clock_rule_name", "investigation_started_on",
                                 "investigation_ended_on", "clock_stopped", "notice_sent_on", "election_at",
                                 "election_by", "outcome_note", "resolved_by", "proposals")
        read_only_fields = fields


class DocumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = CaseDocument
        fields = ("id", "filename", "content_type", "size", "sha256", "uploaded_at")
        read_only_fields = fields


class CaseEventSerializer(serializers.ModelSerializer):
    actor = Username("actor")
    document = serializers.SerializerMethodField(help_text="The file this event added, or null.")
    contact = serializers.SerializerMethodField(help_text="The payer contact this event recorded (its id), or null.")

    class Meta:
        model = CaseEvent
        fields = ("id", "kind", "text", "from_state", "to_state", "data", "actor", "at", "document", "contact")
        read_only_fields = fields

    def get_document(self, event) -> DocumentSerializer(allow_null=True):
        doc = getattr(event, "document", None)
        return DocumentSerializer(doc).data if doc is not None else None

    def get_contact(self, event) -> int | None:
        contact = getattr(event, "contact", None)
        return contact.pk if contact is not None else None


class PayerContactSerializer(serializers.ModelSerializer):
    created_by = Username("created_by")

    class Meta:
        model = PayerContact
        fields = ("id", "case", "event", "contacted_on", "channel", "person", "reference", "outcome", "follow_up_on",
                  "created_by", "created_at")
        read_only_fields = fields


class ClockRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = ClockRule
        fields = ("id", "kind", "name", "practice", "payer_type", "us_state", "effective_from", "effective_to",
                  "active", "days", "notice_days", "suspension_max_days", "election_stops_clock",
                  "billed_claims_only", "dormancy_years", "cutoff_month", "cutoff_day", "letter_month", "letter_day",
                  "letter_threshold", "report_month", "report_day", "min_amount", "citation", "note")
        read_only_fields = fields


class QueueTotalsSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    amount = MoneyField(help_text="What the cases' credit balances were when they were opened.")
    money_left = MoneyField(help_text="What is left of them now.")
    flagged = serializers.IntegerField()
    overdue = serializers.IntegerField(help_text="Open cases past their due date.")
    follow_up_overdue = serializers.IntegerField()


class WorkListRowSerializer(serializers.ModelSerializer):
    """A credit on the refund work list (adjudication.policies.refund_work_list) and the band its refund needs."""

    policy = serializers.IntegerField(source="policy_id", read_only=True, help_text="The first active refund policy "
                                                                                     "(by id) that lists the credit.")
    policy_name = serializers.SerializerMethodField()
    case = serializers.IntegerField(source="case_id", read_only=True, allow_null=True,
                                    help_text="Its adjudication case, if the scan opened one.")
    window_total = MoneyField(read_only=True, help_text="The patient's refunds over the approval window already "
                                                        "counted (asked for, approved or issued).")
    up_to_total = MoneyField(read_only=True, help_text="window_total + on_hand: the amount the band is chosen by.")
    band = serializers.IntegerField(source="band_id", read_only=True, allow_null=True,
                                    help_text="The approval band of up_to_total; null when the practice has no band "
                                              "or none covers it.")
    band_role = serializers.ChoiceField(choices=[("billing", "Billing staff or a manager"), ("manager", "A manager")],
                                        read_only=True, help_text="Who may start the refund.")
    band_four_eyes = serializers.BooleanField(read_only=True, help_text="The band needs a manager other than the "
                                                                        "requester to approve.")
    needs_approval = serializers.BooleanField(read_only=True, help_text="The refund will wait for a manager other "
                                                                        "than the requester (the band's four eyes, or "
                                                                        "above the practice's refund threshold).")

    class Meta:
        model = Credit
        fields = ("id", "patient", "source", "on_hand", "amount", "payment", "created_at", "policy", "policy_name",
                  "case", "window_total", "up_to_total", "band", "band_role", "band_four_eyes", "needs_approval")
        read_only_fields = fields

    def get_policy_name(self, row) -> str:
        return self.context.get("policy_names", {}).get(row.policy_id, "")


class WorkListRefundResultSerializer(serializers.Serializer):
    refunds = RefundSerializer(many=True, help_text="In the order they were requested (by patient, then credit). "
                                                    "`state` requested: waits for a manager's approval.")


class UnclaimedPropertySerializer(serializers.ModelSerializer):
    has_letter = serializers.SerializerMethodField(help_text="The due-diligence letter can be downloaded "
                                                             "(GET .../{id}/letter).")

    class Meta:
        model = UnclaimedProperty
        fields = ("id", "case", "credit", "rule", "owner_state", "amount", "last_activity_on", "presumed_on",
                  "letter_due_on", "report_due_on", "letter_sent_on", "turned_over_on", "report_year", "state",
                  "has_letter")
        read_only_fields = fields

    def get_has_letter(self, row) -> bool:
        return bool(row.letter)


class ScanResultSerializer(serializers.Serializer):
    opened = serializers.IntegerField(help_text="Cases opened.")
    closed = serializers.IntegerField(help_text="Cases whose money was gone, resolved with the reason.")
    clocks_updated = serializers.IntegerField()
    unclaimed_listed = serializers.IntegerField(help_text="Credits put on the unclaimed-property list.")
    seconds = serializers.FloatField()


# --- in ---------------------------------------------------------------------------------------------

def Day(**kwargs):
    return StrictDateField(**kwargs)


class NoteSerializer(serializers.Serializer):
    text = TextField(max_length=20_000, help_text="The note, kept on the case's record.")


class ContactCreateSerializer(serializers.Serializer):
    contacted_on = Day(help_text="The day of the contact (YYYY-MM-DD; not in the future).")
    channel = serializers.ChoiceField(choices=PayerContact.Channel.choices)
    outcome = TextField(max_length=20_000, help_text="What came of it.")
    person = TextField(max_length=200, required=False, default="", allow_blank=True)
    reference = TextField(max_length=100, required=False, default="", allow_blank=True,
                          help_text="The payer's call or ticket reference.")
    follow_up_on = Day(required=False, allow_null=True, default=None,
                       help_text="Follow up on this day (on or after the contact).")
    wait_on_payer = StrictBooleanField(required=False, default=False,
                                       help_text="The case also waits on the payer until the follow-up day.")
    reason = TextField(max_length=2000, required=False, default="", allow_blank=True)


class ProposeSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Proposal.Kind.choices)
    amount = MoneyField(required=False, allow_null=True, default=None, min_value=Decimal("0.01"),
                        max_value=AMOUNT_CEILING, help_text="Default: all the money left on the case.")
    method = TextField(max_length=20, required=False, default="", allow_blank=True,
                       help_text="Patient refunds: original_payment, check or ach.")
    reference = TextField(max_length=100, required=False, default="", allow_blank=True,
                          help_text="Check number or ACH trace, when known.")
    claim = Id(required=False, allow_null=True, default=None, help_text="The claim to resubmit (resubmit_claim).")
    reason = Reason(required=True)


class ApproveSerializer(serializers.Serializer):
    reason = Reason(required=True)
    reference = TextField(max_length=100, required=False, default="", allow_blank=True,
                          help_text="Check number or ACH trace, to carry it out at once.")


class CarryOutSerializer(ApproveSerializer):
    pass


class InvestigateSerializer(serializers.Serializer):
    reason = Reason(required=True)
    good_faith = StrictBooleanField(required=False, default=False,
                                    help_text="A timely good-faith investigation: suspends a clock whose rule allows it "
                                              "(Medicare, Medicaid).")
    on = Day(required=False, allow_null=True, default=None, help_text="The day it started (default: today).")


class EndInvestigationSerializer(serializers.Serializer):
    reason = Reason(required=True)
    on = Day(required=False, allow_null=True, default=None, help_text="The day it ended (default: today).")


class WaitOnPayerSerializer(serializers.Serializer):
    reason = Reason(required=True)
    follow_up_on = Day(help_text="Follow up on this day.")


class AssignSerializer(serializers.Serializer):
    reason = Reason(required=True)
    assignee = Id(allow_null=True, help_text="A staff member's user id; null unassigns.")


class NoticeSerializer(serializers.Serializer):
    reason = Reason(default="Overpayment notice")
    on = Day(required=False, allow_null=True, default=None, help_text="The day it is sent (default: today).")


class ScanSerializer(serializers.Serializer):
    reason = Reason(default="Scan now (API)")


class ReviewSourceSerializer(serializers.Serializer):
    reason = Reason(required=True)
    findings = TextField(max_length=20_000, help_text="Where the credit came from and why, as found; kept with the "
                                                      "source rows the service reads (credit, payment, visit, claim).")


class DocumentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True,
                                 help_text="PDF, PNG, JPEG, TIFF, or UTF-8 text, CSV or X12 (checked by content; the "
                                           "name must not claim another type); at most "
                                           "SETTLE_CASE_DOCUMENT_MAX_BYTES (10 MiB).")
    reason = Reason(required=True)


class WorkListRefundSerializer(serializers.Serializer):
    credit_ids = serializers.ListField(child=Id(), min_length=1, max_length=500,
                                       help_text="Credits of the work list to refund (their available money).")
    reason = Reason(required=True)


class HolderReportQuerySerializer(serializers.Serializer):
    year = serializers.IntegerField(min_value=1900, max_value=2199, help_text="The report year.")
    us_state = serializers.CharField(required=False, allow_blank=True, max_length=2,
                                     help_text="The owner state (two letters); none: every state.")


class ElectionSerializer(serializers.Serializer):
    reason = Reason(required=True)
    election = serializers.ChoiceField(choices=[("refund", "Refund"), ("keep", "Keep as credit")])
