"""Patient money through the API: payments (and checkout with credits), credits, refunds. Every
write calls the service the admin uses."""

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from api import filters
from api import serializers as s
from api.base import SettleViewSet
from api.parsers import DecimalJSONParser
from api.permissions import HasApiToken, IsManagerToken
from credits import services as credit_services
from credits.models import Credit, CreditImport, ManualCreditRequest, Refund
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
        result = credit_services.payment_record(patient_id=patient.pk, encounter_id=enc.pk if enc else None,
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
            chosen = credit_services.credits_preselect(patient_id=patient.pk, encounter_ids=ids)
        else:
            chosen = {c["credit"]: c["amount"] for c in data["credits"]}
            self.scoped_ids(Credit, chosen, field="credits", label="credits of this patient", patient=patient)
        result = credit_services.payment_checkout(
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
                               "no payment trail: it can be refunded by check or ACH only (example F). Within the "
                               "practice's `manual_credit_approval_limit` (the patient's manual and imported credits "
                               "over `approval_window_days`, this one included) the credit is created at once: 201 "
                               "with the credit. Above it: 202 with the waiting manual credit; no credit exists until "
                               "a manager other than the requester approves it (POST /manual-credits/{id}/approve).",
                   request=s.CreditManualSerializer,
                   responses={201: s.CreditSerializer, 202: s.ManualCreditSerializer})
    @action(detail=False, methods=["post"])
    def manual(self, request):
        data = self.input(s.CreditManualSerializer)
        patient = self.scoped(Patient, data.pop("patient"), field="patient")
        enc = self.scoped(Encounter, data.pop("encounter"), field="encounter", patient=patient)
        credit = credit_services.manual_credit_add(patient_id=patient.pk, encounter_id=enc.pk if enc else None,
                                                   actor=self.actor, **data)
        if isinstance(credit, ManualCreditRequest):
            return Response(s.ManualCreditSerializer(credit).data, status=status.HTTP_202_ACCEPTED)
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
        result = credit_services.credit_purchase(patient_id=patient.pk, encounter_id=enc.pk if enc else None,
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
                               "processor's window), otherwise by check or ACH. When the patient's refunds over the "
                               "practice's `approval_window_days` (asked for, approved or issued), this one "
                               "included, are above the practice's threshold, a manager other than the requester "
                               "must approve (POST /refunds/{id}/approve): `state` is `requested`. Below it the "
                               "refund is approved and issued at once, as in the admin: back through the card "
                               "processor, or by check or ACH when `reference` is given (`state` `issued`); a check "
                               "or ACH refund without a reference stays `approved` until POST /refunds/{id}/issue. "
                               "If the processor refuses, it stays `approved` and `issue_error` says why.",
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
        refund = credit_services.refund_approve(refund_id=refund.pk, actor=self.actor, reason=data["reason"])
        return Response(s.RefundSerializer(refund).data)

    @extend_schema(summary="Reject a refund",
                   description="The money goes back on hand. A refund that needed approval is rejected by a manager "
                               "other than the requester.",
                   request=s.RefundRejectSerializer, responses={200: s.RefundSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        refund = self.own(pk)
        data = self.input(s.RefundRejectSerializer)
        refund = credit_services.refund_reject(refund_id=refund.pk, actor=self.actor, reason=data["reason"])
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


# --- separation of duties (issue 9): manual credits and credit imports waiting for a manager --------------

class ManualCreditFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=ManualCreditRequest.State.choices,
                                        help_text="`pending`: the managers' queue.")
    patient = filters.ids("Only this patient's.", field_name="patient_id")


class CreditImportFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=CreditImport.State.choices, help_text="`pending`: waiting for approval.")


class DecisionActionsMixin:
    """POST {id}/approve and {id}/reject with a manager token. The services decide who may
    (`ensure_approver`: a manager of the practice, a person, not whoever asked)."""

    def get_permissions(self):
        if getattr(self, "action", None) in ("approve", "reject"):
            return [HasApiToken(), IsManagerToken()]
        return [HasApiToken()]


@extend_schema_view(list=extend_schema(summary="List manual credits (requests)",
                                       description="Every manual credit asked for; `state=pending` is the managers' "
                                                   "queue."),
                    retrieve=extend_schema(summary="Get a manual credit (request)"))
class ManualCreditViewSet(DecisionActionsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = s.ManualCreditSerializer
    filterset_class = ManualCreditFilter

    def get_queryset(self):
        return ManualCreditRequest.objects.filter(practice_id=self.practice_id)

    @extend_schema(summary="Approve a waiting manual credit (manager token)",
                   description="The credit is created now. The approver is a manager other than the requester.",
                   request=s.DecisionSerializer, responses={200: s.ManualCreditSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        req = self.own(pk)
        data = self.input(s.DecisionSerializer)
        req = credit_services.manual_credit_approve(request_id=req.pk, actor=self.actor, reason=data["reason"])
        return Response(s.ManualCreditSerializer(req).data)

    @extend_schema(summary="Reject a waiting manual credit (manager token)",
                   description="No credit is created. A manager other than the requester rejects.",
                   request=s.RejectionSerializer, responses={200: s.ManualCreditSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        req = self.own(pk)
        data = self.input(s.RejectionSerializer)
        req = credit_services.manual_credit_reject(request_id=req.pk, actor=self.actor, reason=data["reason"])
        return Response(s.ManualCreditSerializer(req).data)


@extend_schema_view(list=extend_schema(summary="List credit imports (CSV)"),
                    retrieve=extend_schema(summary="Get a credit import"))
class CreditImportViewSet(DecisionActionsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = s.CreditImportSerializer
    filterset_class = CreditImportFilter
    parser_classes = [MultiPartParser, DecimalJSONParser]  # the upload is multipart; decisions are JSON

    def get_queryset(self):
        return CreditImport.objects.filter(practice_id=self.practice_id)

    @extend_schema(
        summary="Import credits from a CSV file",
        description="multipart/form-data with the file in `file`: columns account_number, amount, note and optionally "
                    "date_of_service (YYYY-MM-DD, the credit is locked to that visit). Every line is checked first: a "
                    "file with any problem imports nothing and the 400's message lists every bad line (the first "
                    "200, with the total). At most SETTLE_CSV_IMPORT_MAX_ROWS lines. The same file twice is a 409. "
                    "Within the practice's `manual_credit_approval_limit` the credits are created at once (`state` "
                    "`imported`); above it (the file's total, or a patient's part of it with their manual and "
                    "imported credits of the approval window) the import waits as a whole (`pending`) for a manager "
                    "other than the importer.",
        request={"multipart/form-data": s.CreditImportUploadSerializer}, responses={201: s.CreditImportSerializer})
    def create(self, request):
        data = self.input(s.CreditImportUploadSerializer)
        upload = data["file"]
        result = credit_services.credit_import_create(practice_id=self.practice_id, data=upload,
                                                    filename=upload.name or "upload.csv", actor=self.actor,
                                                    reason=data["reason"])
        return Response(s.CreditImportSerializer(result.batch).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Approve a waiting credit import (manager token)",
                   description="Its credits are created now. The approver is a manager other than the importer.",
                   request=s.DecisionSerializer, responses={200: s.CreditImportSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        batch = self.own(pk)
        data = self.input(s.DecisionSerializer)
        batch = credit_services.credit_import_approve(import_id=batch.pk, actor=self.actor, reason=data["reason"])
        return Response(s.CreditImportSerializer(batch).data)

    @extend_schema(summary="Reject a waiting credit import (manager token)",
                   description="No credit is created from it. A manager other than the importer rejects.",
                   request=s.RejectionSerializer, responses={200: s.CreditImportSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        batch = self.own(pk)
        data = self.input(s.RejectionSerializer)
        batch = credit_services.credit_import_reject(import_id=batch.pk, actor=self.actor, reason=data["reason"])
        return Response(s.CreditImportSerializer(batch).data)
