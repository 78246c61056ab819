"""Patient money through the API: payments (and checkout with credits), credits, refunds. Every
write calls the service the admin uses."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from credits import services as credit_services
from credits.models import Credit, Refund
from ledger import services
from ledger.api import filters
from ledger.api import serializers as s
from ledger.api.base import SettleViewSet
from ledger.api.permissions import HasApiToken, IsManagerToken
from ledger.models import Encounter, Patient, Payment


def payment_result(result) -> dict:
    return s.PaymentResultSerializer({"payment": result.payment, "applications": result.applications,
                                      "credits": result.credits}).data


@extend_schema_view(list=extend_schema(summary="List patient payments"),
                    retrieve=extend_schema(summary="Get a patient payment"))
class PaymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = s.PaymentSerializer
    filterset_class = filters.PaymentFilter
    card_payments = True

    def get_queryset(self):
        return Payment.objects.filter(practice_id=self.practice_id)

    @extend_schema(
        summary="Record a patient payment",
        description="Card reader and portal payments are charged through the card processor (`card_token`), or "
                    "carry the terminal's `processor_reference`. Toward a date of service whose claim still waits "
                    "on the payer, the payment is held as a credit locked to it (rule 3); toward a payable one it "
                    "pays the balance and the rest becomes an available credit; without a date of service it pays "
                    "open balances oldest first.",
        request=s.PaymentCreateSerializer, responses={201: s.PaymentResultSerializer})
    def create(self, request):
        data = self.input(s.PaymentCreateSerializer)
        patient = self.scoped(Patient, data.pop("patient"), field="patient")
        enc = self.scoped(Encounter, data.pop("encounter"), field="encounter", patient=patient)
        result = services.payment_record(patient_id=patient.pk, encounter_id=enc.pk if enc else None,
                                         actor=self.actor, **data)
        return Response(payment_result(result), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Take a payment, applying credits first (rule 7)",
        description="Applies the chosen credits (or the preselected ones, `use_preselected_credits`) to the chosen "
                    "dates of service and charges only the rest. A locked credit pays only its own date of "
                    "service. When credits pay everything no payment is created (`payment` is null).",
        request=s.CheckoutSerializer, responses={201: s.CheckoutResultSerializer})
    @action(detail=False, methods=["post"])
    def checkout(self, request):
        data = self.input(s.CheckoutSerializer)
        patient = self.scoped(Patient, data["patient"], field="patient")
        ids = self.scoped_ids(Encounter, data["encounter_ids"], field="encounter_ids",
                              label="encounters of this patient", patient=patient)
        if data["use_preselected_credits"]:
            chosen = services.credits_preselect(patient_id=patient.pk, encounter_ids=ids)
        else:
            chosen = {c["credit"]: c["amount"] for c in data["credits"]}
            self.scoped_ids(Credit, chosen, field="credits", label="credits of this patient", patient=patient)
        result = services.payment_checkout(
            patient_id=patient.pk, encounter_ids=ids, credit_amounts=chosen, channel=data["channel"] or "",
            actor=self.actor, reason=data["reason"], card_token=data["card_token"] or None,
            processor_reference=data["processor_reference"], check_number=data["check_number"])
        return Response(s.CheckoutResultSerializer({
            "owed": result.owed, "charged": result.charged, "payment": result.payment,
            "applications": result.applications}).data, status=status.HTTP_201_CREATED)


@extend_schema_view(list=extend_schema(summary="List credits",
                                       description="Filter by state (available, locked, applied, refunded, removed), "
                                                   "source, patient and date of service (`locked_encounter`)."),
                    retrieve=extend_schema(summary="Get a credit"))
class CreditViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = s.CreditSerializer
    filterset_class = filters.CreditFilter
    card_payments = True

    def get_queryset(self):
        return Credit.objects.filter(practice_id=self.practice_id)

    @extend_schema(summary="Add a manual credit",
                   description="Staff add a credit with a required note (e.g. imported from an older system). It has "
                               "no payment trail: it can be refunded by check or ACH only (example F).",
                   request=s.CreditManualSerializer, responses={201: s.CreditSerializer})
    @action(detail=False, methods=["post"])
    def manual(self, request):
        data = self.input(s.CreditManualSerializer)
        patient = self.scoped(Patient, data.pop("patient"), field="patient")
        enc = self.scoped(Encounter, data.pop("encounter"), field="encounter", patient=patient)
        credit = credit_services.credit_add_manual(patient_id=patient.pk, encounter_id=enc.pk if enc else None,
                                                   actor=self.actor, **data)
        return Response(s.CreditSerializer(credit).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Buy credits ahead",
                   description="A payment that becomes a purchased credit: flexible (available), or locked to the "
                               "chosen date of service.",
                   request=s.CreditPurchaseSerializer, responses={201: s.PaymentResultSerializer})
    @action(detail=False, methods=["post"])
    def purchase(self, request):
        data = self.input(s.CreditPurchaseSerializer)
        patient = self.scoped(Patient, data.pop("patient"), field="patient")
        enc = self.scoped(Encounter, data.pop("encounter"), field="encounter", patient=patient)
        result = services.credit_purchase(patient_id=patient.pk, encounter_id=enc.pk if enc else None,
                                          actor=self.actor, **data)
        return Response(payment_result(result), status=status.HTTP_201_CREATED)

    @extend_schema(summary="Move a credit to another date of service or to the flexible pool (rule 10)",
                   request=s.CreditMoveSerializer, responses={200: s.CreditSerializer})
    @action(detail=True, methods=["post"])
    def move(self, request, pk=None):
        credit = self.own(pk)
        data = self.input(s.CreditMoveSerializer)
        target = self.scoped(Encounter, data["to_encounter"], field="to_encounter",
                             label="date of service of this patient", patient_id=credit.patient_id)
        credit = credit_services.credit_move(credit_id=credit.pk, to_encounter_id=target.pk if target else None,
                                             actor=self.actor, reason=data["reason"])
        return Response(s.CreditSerializer(credit).data)

    @extend_schema(summary="Unlock locked credits in bulk (rule 5)",
                   description="Unlock the given credits, or every locked credit of the given patients (e.g. when a "
                               "payer will never answer). A reason is required and kept in the history.",
                   request=s.CreditUnlockSerializer, responses={200: s.UnlockResultSerializer})
    @action(detail=False, methods=["post"])
    def unlock(self, request):
        data = self.input(s.CreditUnlockSerializer)
        self.scoped_ids(Credit, data["credit_ids"], field="credit_ids", label="credits")
        self.scoped_ids(Patient, data["patient_ids"], field="patient_ids", label="patients")
        count = credit_services.credits_unlock(credit_ids=data["credit_ids"] or None,
                                               patient_ids=data["patient_ids"] or None, actor=self.actor,
                                               reason=data["reason"])
        return Response(s.UnlockResultSerializer({"unlocked": count}).data)

    @extend_schema(summary="Request a refund of an available credit (rule 8)",
                   description="Back to the original card/portal payment when the credit came from one (within the "
                               "processor's window), otherwise by check or ACH. Above the practice's threshold a "
                               "manager other than the requester must approve (POST /refunds/{id}/approve); below "
                               "it the refund is approved at once and can be issued.",
                   request=s.RefundRequestSerializer, responses={201: s.RefundSerializer})
    @action(detail=True, methods=["post"])
    def refunds(self, request, pk=None):
        credit = self.own(pk)
        data = self.input(s.RefundRequestSerializer)
        refund = credit_services.refund_request(credit_id=credit.pk, actor=self.actor, **data)
        return Response(s.RefundSerializer(refund).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Remove (part of) a credit with a reason",
                   description="E.g. after a refund made outside settle, or turned over as unclaimed property.",
                   request=s.CreditRemoveSerializer, responses={200: s.CreditSerializer})
    @action(detail=True, methods=["post"])
    def remove(self, request, pk=None):
        credit = self.own(pk)
        data = self.input(s.CreditRemoveSerializer)
        credit = credit_services.credit_remove(credit_id=credit.pk, actor=self.actor, **data)
        return Response(s.CreditSerializer(credit).data)


@extend_schema_view(list=extend_schema(summary="List refunds"), retrieve=extend_schema(summary="Get a refund"))
class RefundViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = s.RefundSerializer
    filterset_class = filters.RefundFilter

    def get_queryset(self):
        return Refund.objects.filter(practice_id=self.practice_id)

    def get_permissions(self):
        if getattr(self, "action", None) == "approve":
            return [HasApiToken(), IsManagerToken()]
        return [HasApiToken()]

    @extend_schema(summary="Approve a refund (manager token)",
                   description="Refunds above the practice's threshold need a manager other than the requester.",
                   request=s.RefundApproveSerializer, responses={200: s.RefundSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        refund = self.own(pk)
        data = self.input(s.RefundApproveSerializer)
        refund = credit_services.refund_approve(refund_id=refund.pk, actor=self.actor, note=data["note"])
        return Response(s.RefundSerializer(refund).data)

    @extend_schema(summary="Reject a refund",
                   description="The money goes back on hand. A refund that needed approval is rejected by a manager "
                               "other than the requester.",
                   request=s.RefundRejectSerializer, responses={200: s.RefundSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        refund = self.own(pk)
        data = self.input(s.RefundRejectSerializer)
        refund = credit_services.refund_reject(refund_id=refund.pk, actor=self.actor, note=data["note"])
        return Response(s.RefundSerializer(refund).data)

    @extend_schema(summary="Issue an approved refund",
                   description="Back through the card processor (idempotent on the refund, so a retry never refunds "
                               "twice), or record the check number / ACH trace in `reference`. The credit and the "
                               "payment are lowered in the same transaction (rule 12).",
                   request=s.RefundIssueSerializer, responses={200: s.RefundSerializer})
    @action(detail=True, methods=["post"])
    def issue(self, request, pk=None):
        refund = self.own(pk)
        data = self.input(s.RefundIssueSerializer)
        refund = credit_services.refund_issue(refund_id=refund.pk, actor=self.actor, reference=data["reference"])
        return Response(s.RefundSerializer(refund).data)
