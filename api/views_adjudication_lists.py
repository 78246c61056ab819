"""The refund work list (rule 19) and unclaimed property (rule 17) through the API (issue 11 item 10):
the list and its refund through adjudication.policies and adjudication.services.refund_worklist, the
unclaimed-property rows, their letter, turn-over and holder report through
adjudication.services.unclaimed. The rules are the services'; their refusals come back in the API's
error shape."""

from datetime import datetime
from typing import ClassVar

import django_filters as df
from django import forms
from django.db.models import BigIntegerField, DateTimeField, ExpressionWrapper, F, Value
from django.db.models.functions import Cast, Extract, Floor
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from adjudication.models import UnclaimedProperty
from adjudication.policies import policy_names, refund_work_list
from adjudication.services import unclaimed as unclaimed_services
from adjudication.services.refund_worklist import refund_work_list_refund
from api import serializers as s
from api import serializers_adjudication as a
from api.base import SettleViewSet
from api.pagination import IdCursorPagination
from api.permissions import HasApiToken, IsManagerToken
from api.views_adjudication import FileNegotiation, download
from credits.models import Credit
from ledger.errors import NotFound

# --- the refund work list (rule 19) ------------------------------------------------------------------

EPOCH = datetime(1900, 1, 1)  # positions count seconds from here: every credit's position is a whole number
SECOND_SCALE = 10**9  # list_position = seconds since EPOCH * 10^9 + id (ids below 10^9)


def list_position():
    """Oldest first (by the second of creation), then id, as one unique integer for the cursor."""
    seconds = Cast(Floor(Extract(F("created_at") - Value(EPOCH, output_field=DateTimeField()), "epoch")),
                   BigIntegerField())
    return ExpressionWrapper(seconds * Value(SECOND_SCALE, output_field=BigIntegerField()) + F("id"),
                             output_field=BigIntegerField())


class WorkListPagination(IdCursorPagination):
    ordering = "list_position"


@extend_schema_view(list=extend_schema(
    summary="The refund work list",
    description="The credits the practice's refund policies list (rule 19; adjudication.policies.refund_work_list), "
                "oldest first: each with the policy that lists it, its case, and the band its refund needs (who may "
                "start it, whether a second manager approves), chosen by the patient's refunds over the approval "
                "window plus this one."))
class RefundWorkListViewSet(mixins.ListModelMixin, SettleViewSet):
    serializer_class = a.WorkListRowSerializer
    pagination_class = WorkListPagination
    filterset_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Credit.objects.none()
        return refund_work_list(practice_id=self.practice_id).annotate(list_position=list_position())

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(a.WorkListRowSerializer(
            page, many=True, context={"policy_names": policy_names(self.practice_id)}).data)

    @extend_schema(summary="Refund credits of the work list",
                   description="Refunds each chosen credit's available money (adjudication.services.refund_worklist."
                               "refund_work_list_refund): to the original payment when the rules allow, otherwise by "
                               "check (approved, issued once the check number is recorded). Billing tokens start "
                               "refunds only in a billing band (403 otherwise); a four-eyes band or the practice's "
                               "threshold makes a refund wait for another manager (`state` requested). A credit not "
                               "on the list now is a 409; an unknown one (or another practice's) a 404; nothing is "
                               "written then. The cases of credits refunded in full resolve.",
                   request=a.WorkListRefundSerializer, responses={201: a.WorkListRefundResultSerializer})
    @action(detail=False, methods=["post"])
    def refund(self, request):
        data = self.input(a.WorkListRefundSerializer)
        self.scoped_ids(Credit, data["credit_ids"], field="credit_ids", label="credit")
        refunds = refund_work_list_refund(credit_ids=data["credit_ids"], actor=self.actor, reason=data["reason"])
        return Response(a.WorkListRefundResultSerializer({"refunds": refunds}).data, status=status.HTTP_201_CREATED)


# --- unclaimed property (rule 17, example L) ---------------------------------------------------------

class ReportYearField(forms.IntegerField):
    def __init__(self, **kwargs):
        super().__init__(min_value=1900, max_value=2199, **kwargs)


class ReportYearFilter(df.NumberFilter):
    field_class = ReportYearField


class UnclaimedFilter(df.FilterSet):
    state = df.ChoiceFilter(choices=UnclaimedProperty.State.choices)
    owner_state = df.CharFilter(help_text="Exact two-letter code of the owner's state, e.g. TX.")
    report_year = ReportYearFilter(help_text="The year of the holder report it belongs to.")

    class Meta:
        model = UnclaimedProperty
        fields = ("state", "owner_state", "report_year")


@extend_schema_view(list=extend_schema(summary="List the unclaimed property",
                                       description="Patient credits past their owner state's dormancy (rule 17), "
                                                   "newest first, with their letter and report dates."),
                    retrieve=extend_schema(summary="Get an unclaimed-property row"))
class UnclaimedPropertyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = a.UnclaimedPropertySerializer
    filterset_class = UnclaimedFilter
    action_query_params: ClassVar[dict] = {"holder_report": {"year", "us_state"}}

    def get_queryset(self):
        return UnclaimedProperty.objects.filter(practice_id=self.practice_id)

    def get_permissions(self):
        if getattr(self, "action", None) == "turn_over":
            return [HasApiToken(), IsManagerToken()]
        return [HasApiToken()]

    def done(self, pk):
        return Response(a.UnclaimedPropertySerializer(self.own(pk)).data)

    @extend_schema(summary="Send the due-diligence letter",
                   description="The PDF is stored with the row (GET .../{id}/letter) and the case's record says so. "
                               "Sent once, while listed; not before the credit is presumed abandoned (409).",
                   request=s.ReasonSerializer, responses={200: a.UnclaimedPropertySerializer})
    @action(detail=True, methods=["post"], url_path="send-letter")
    def send_letter(self, request, pk=None):
        row = self.own(pk)
        data = self.input(s.ReasonSerializer)
        unclaimed_services.unclaimed_send_letter(item=row.pk, actor=self.actor, reason=data["reason"])
        return self.done(row.pk)

    @extend_schema(summary="Turn the credit over to the state (manager token)",
                   description="A manager's decision (billing staff propose `unclaimed_property` on the case "
                               "instead). The credit is removed with the reason \"unclaimed property, <State>\" and "
                               "the case resolved. Refused (409) before the credit is presumed abandoned, when a "
                               "needed letter was not sent, while the case has a live proposal, or when the money "
                               "changed since it was listed.",
                   request=s.ReasonSerializer, responses={200: a.UnclaimedPropertySerializer})
    @action(detail=True, methods=["post"], url_path="turn-over")
    def turn_over(self, request, pk=None):
        row = self.own(pk)
        data = self.input(s.ReasonSerializer)
        unclaimed_services.unclaimed_turn_over(item=row.pk, actor=self.actor, reason=data["reason"])
        return self.done(row.pk)

    @extend_schema(summary="Download the due-diligence letter (PDF)",
                   responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None,
            content_negotiation_class=FileNegotiation)
    def letter(self, request, pk=None):
        row = self.own(pk)
        if not row.letter:
            raise NotFound(f"unclaimed property {row.pk} has no due-diligence letter yet", field="id")
        return download(row.letter, filename=f"due-diligence-{row.pk}-{row.letter_sent_on or ''}.pdf",
                        content_type="application/pdf")

    @extend_schema(summary="The holder report (CSV)",
                   description="One line per credit reported for the year (turned over, or still listed for that "
                               "year's report), per owner state when `us_state` is given (unclaimed_services."
                               "holder_report_csv).",
                   parameters=[OpenApiParameter("year", OpenApiTypes.INT, required=True,
                                                description="The report year (1900 to 2199)."),
                               OpenApiParameter("us_state", OpenApiTypes.STR,
                                                description="Two-letter owner state; none: every state.")],
                   responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=False, methods=["get"], url_path="holder-report", filterset_class=None, pagination_class=None,
            content_negotiation_class=FileNegotiation)
    def holder_report(self, request):
        q = a.HolderReportQuerySerializer(data=request.query_params)
        q.is_valid(raise_exception=True)
        year, us_state = q.validated_data["year"], q.validated_data.get("us_state") or None
        text = unclaimed_services.holder_report_csv(practice_id=self.practice_id, year=year, us_state=us_state,
                                                    actor=self.actor)
        response = HttpResponse(text, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="holder-report-{year}{"-" + us_state.upper() if us_state else ""}.csv"'
        return response
