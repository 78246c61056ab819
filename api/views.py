"""The books through the API: the token itself, practice settings, payers, patients, encounters
(dates of service) and claims. Every write calls the service the admin uses."""

from django.db.models import (
    DecimalField,
    OuterRef,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from api import filters
from api import serializers as s
from api.base import SettleAPIView, SettleViewSet
from api.fields import MAX_ID
from api.permissions import HasApiToken, IsManagerToken
from config.schedules import sync_practice
from credits import services as credit_services
from credits.models import Credit
from credits.selectors import patient_list_with_totals, plan_applications
from ledger import services
from ledger.models import Claim, Encounter, Patient, Payer, Practice
from ledger.money import ZERO

MONEY = DecimalField(max_digits=14, decimal_places=2)


def encounters_of(practice_id: int):
    """Encounters annotated with what the API shows: balance (`bal`), open claim, locked credits."""
    locked = (Credit.objects.filter(locked_encounter=OuterRef("pk"), state=Credit.State.LOCKED)
              .values("locked_encounter").annotate(s=Sum("on_hand")).values("s"))
    return Encounter.objects.filter(practice_id=practice_id).with_balance().annotate(
        locked_credit=Coalesce(Subquery(locked, output_field=MONEY), Value(ZERO), output_field=MONEY),
    )


def encounter_out(practice_id: int, pk: int) -> dict:
    return s.EncounterSerializer(encounters_of(practice_id).get(pk=pk)).data


def patient_out(practice_id: int, pk: int) -> dict:
    return s.PatientSerializer(patient_list_with_totals([practice_id]).get(pk=pk)).data


# --- the token and its practice ----------------------------------------------------------------------

class TokenView(SettleAPIView):
    serializer_class = s.TokenSerializer

    @extend_schema(summary="The calling token", description="Which practice and role the token has. A good "
                                                            "first call to check a token.")
    def get(self, request):
        return Response(s.TokenSerializer(request.auth).data)


class PracticeView(SettleAPIView):
    serializer_class = s.PracticeSerializer

    def get_permissions(self):
        return [HasApiToken(), IsManagerToken()] if self.request.method == "PATCH" else [HasApiToken()]

    @extend_schema(summary="The token's practice and its settings")
    def get(self, request):
        return Response(s.PracticeSerializer(Practice.objects.get(pk=self.practice_id)).data)

    @extend_schema(summary="Change practice settings (manager token)", request=s.PracticeUpdateSerializer,
                   responses={200: s.PracticeSerializer},
                   description="Auto-apply on/off (rule 6), the refund approval threshold (rule 8), the card refund "
                               "window, the write-off policy, the duties' limits, the name, the US state, the time "
                               "zone and the nightly run's local time (its schedule follows). The same service and "
                               "checks as the admin's practice page (`practice_update`). Needs a token with the "
                               "manager role.")
    def patch(self, request):
        data = self.input(s.PracticeUpdateSerializer)
        reason = data.pop("reason")
        practice = services.practice_update(practice_id=self.practice_id, changes=data, actor=self.actor,
                                            reason=reason, on_schedule_change=sync_practice)
        return Response(s.PracticeSerializer(practice).data)


# --- payers --------------------------------------------------------------------------------------------

@extend_schema_view(list=extend_schema(summary="List payers"), retrieve=extend_schema(summary="Get a payer"))
class PayerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = s.PayerSerializer
    filterset_class = filters.PayerFilter

    def get_queryset(self):
        return Payer.objects.filter(practice_id=self.practice_id)

    @extend_schema(summary="Create a payer", request=s.PayerCreateSerializer, responses={201: s.PayerSerializer})
    def create(self, request):
        data = self.input(s.PayerCreateSerializer)
        payer = services.payer_create(practice_id=self.practice_id, actor=self.actor, **data)
        return Response(s.PayerSerializer(payer).data, status=status.HTTP_201_CREATED)


# --- patients ------------------------------------------------------------------------------------------

@extend_schema_view(list=extend_schema(summary="List patients"),
                    retrieve=extend_schema(summary="Get a patient with balance and credit totals"))
class PatientViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = s.PatientSerializer
    filterset_class = filters.PatientFilter
    action_query_params = {"preselect": {"encounter_ids"}}

    def get_queryset(self):
        return patient_list_with_totals([self.practice_id])

    @extend_schema(summary="Create a patient", request=s.PatientCreateSerializer, responses={201: s.PatientSerializer})
    def create(self, request):
        data = self.input(s.PatientCreateSerializer)
        patient = services.patient_create(practice_id=self.practice_id, actor=self.actor, **data)
        return Response(patient_out(self.practice_id, patient.pk), status=status.HTTP_201_CREATED)

    @extend_schema(summary="Exclude a patient from (or include in) the nightly application",
                   request=s.PatientAutoApplySerializer, responses={200: s.PatientSerializer})
    @action(detail=True, methods=["post"], url_path="auto-apply")
    def auto_apply(self, request, pk=None):
        patient = self.own(pk)
        data = self.input(s.PatientAutoApplySerializer)
        services.patient_set_auto_apply(patient_id=patient.pk, actor=self.actor, **data)
        return Response(patient_out(self.practice_id, patient.pk))

    @extend_schema(summary="Apply the patient's usable credits now",
                   description="What the nightly run does for one patient (rule 6), run by hand: also when the "
                               "practice has auto-apply off or the patient is excluded.",
                   request=s.PatientApplyCreditsSerializer, responses={200: s.ApplyCreditsResultSerializer})
    @action(detail=True, methods=["post"], url_path="apply-credits")
    def apply_credits(self, request, pk=None):
        patient = self.own(pk)
        data = self.input(s.PatientApplyCreditsSerializer)
        result = credit_services.credits_apply(patient_id=patient.pk, actor=self.actor,
                                                           reason=data["reason"], respect_settings=False)
        return Response(s.ApplyCreditsResultSerializer(
            {"applied_total": result.total, "released": result.released, "lines": result.lines}).data)

    @extend_schema(
        summary="Credits preselected to pay dates of service (rule 7)",
        description="The credits that cover what the chosen dates of service owe, in the nightly run's order "
                    "(credits locked to a date first, then available ones). Preselected only when they cover "
                    "everything; pass the result to POST /payments/checkout (or set use_preselected_credits).",
        parameters=[OpenApiParameter("encounter_ids", {"type": "array", "items": {"type": "integer", "minimum": 1}},
                                     OpenApiParameter.QUERY, required=True, style="form", explode=False,
                                     description="Comma-separated encounter ids of this patient, e.g. 12,13.")],
        responses={200: s.PreselectSerializer})
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def preselect(self, request, pk=None):
        patient = self.own(pk)
        raw = request.query_params.get("encounter_ids", "")
        try:
            ids = [int(part) for part in raw.split(",") if part.strip()]
        except ValueError:
            ids = None
        if not ids or any(i < 1 or i > MAX_ID for i in ids):
            raise serializers.ValidationError(
                {"encounter_ids": [serializers.ErrorDetail("a comma-separated list of encounter ids is required",
                                                           code="invalid")]})
        self.scoped_ids(Encounter, ids, field="encounter_ids", label="encounters of this patient", patient=patient)
        chosen = credit_services.credits_preselect(patient_id=patient.pk, encounter_ids=ids)
        _, owed, covered = plan_applications(patient_id=patient.pk, encounter_ids=ids)
        return Response(s.PreselectSerializer({
            "encounter_ids": ids, "owed": owed, "covered": covered, "enough": covered >= owed,
            "credits": [{"credit": cid, "amount": amount} for cid, amount in sorted(chosen.items())]}).data)


# --- encounters ----------------------------------------------------------------------------------------

@extend_schema_view(list=extend_schema(summary="List encounters (dates of service)"),
                    retrieve=extend_schema(summary="Get an encounter with its PR and balance"))
class EncounterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = s.EncounterSerializer
    filterset_class = filters.EncounterFilter

    def get_queryset(self):
        return encounters_of(self.practice_id)

    @extend_schema(summary="Record a visit (date of service)", request=s.EncounterCreateSerializer,
                   responses={201: s.EncounterSerializer})
    def create(self, request):
        data = self.input(s.EncounterCreateSerializer)
        patient = self.scoped(Patient, data.pop("patient"), field="patient")
        enc = services.encounter_create(patient_id=patient.pk, actor=self.actor, **data)
        return Response(encounter_out(self.practice_id, enc.pk), status=status.HTTP_201_CREATED)


# --- claims --------------------------------------------------------------------------------------------

class ClaimResultResponseSerializer(serializers.Serializer):
    claim = s.ClaimSerializer()
    encounter = s.EncounterSerializer()
    credits_created = s.CreditSerializer(many=True, help_text="Overpayment credits the new PR created.")
    released_credits = serializers.IntegerField(help_text="Locked credits that became available (DoS balanced).")


class ClaimResubmitResponseSerializer(serializers.Serializer):
    claim = s.ClaimSerializer()
    credits_created = s.CreditSerializer(many=True, help_text="Patient money applied to the DoS, now credits "
                                                              "locked to it until the new decision.")


@extend_schema_view(list=extend_schema(summary="List claims"), retrieve=extend_schema(summary="Get a claim"))
class ClaimViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = s.ClaimSerializer
    filterset_class = filters.ClaimFilter

    def get_queryset(self):
        return Claim.objects.filter(practice_id=self.practice_id).select_related("encounter")

    @extend_schema(summary="Submit a claim for an encounter", request=s.ClaimCreateSerializer,
                   responses={201: s.ClaimSerializer})
    def create(self, request):
        data = self.input(s.ClaimCreateSerializer)
        enc = self.scoped(Encounter, data.pop("encounter"), field="encounter")
        payer = self.scoped(Payer, data.pop("payer"), field="payer")
        claim = services.claim_submit(encounter_id=enc.pk, payer_id=payer.pk, actor=self.actor, **data)
        return Response(s.ClaimSerializer(self.own(claim.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Record the payer's decision on a claim",
                   description="Finalize (paid/denied), forward, pend or reverse the claim, book the payer's payment "
                               "and adjustments, and set the DoS's remittance PR (rules 3 and 9). Patient money "
                               "applied beyond a lower PR becomes an overpayment credit. An 835 upload does the same "
                               "for every claim in the file.",
                   request=s.ClaimResultSerializer, responses={200: ClaimResultResponseSerializer})
    @action(detail=True, methods=["post"])
    def result(self, request, pk=None):
        claim = self.own(pk)
        data = self.input(s.ClaimResultSerializer)
        result = credit_services.claim_record_result(claim_id=claim.pk, actor=self.actor, **data)
        return Response(ClaimResultResponseSerializer({
            "claim": self.own(claim.pk), "encounter": encounters_of(self.practice_id).get(pk=result.encounter.pk),
            "credits_created": result.credits_created, "released_credits": result.released}).data)

    @extend_schema(summary="Resubmit a claim",
                   description="Rule 3 (resubmission): patient money applied to the DoS becomes credits locked to it; "
                               "the DoS waits for the new decision.",
                   request=s.ReasonSerializer, responses={200: ClaimResubmitResponseSerializer})
    @action(detail=True, methods=["post"])
    def resubmit(self, request, pk=None):
        claim = self.own(pk)
        data = self.input(s.ReasonSerializer)
        created = credit_services.claim_resubmit(claim_id=claim.pk, actor=self.actor, reason=data["reason"])
        return Response(ClaimResubmitResponseSerializer({"claim": self.own(claim.pk), "credits_created": created}).data)
