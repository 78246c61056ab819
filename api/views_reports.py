"""The reports API (issue 12 item 6): audit runs and findings (read, run one now, acknowledge,
resolve), second reviews of cases, the measures of a period and their weekly trend, the
reconciliation as of a date, the export catalog, export jobs (start, follow, download) and the
Medicare credit balance reports (read, generate). Every route is for the practice's managers: a
manager token (IsManagerToken) whose person is a manager of the practice now
(ledger.access.ensure_staff(..., manager=True), checked before anything is read); billing tokens get
403 and another practice's ids 404. Reads go through reports/selectors.py and the reports layer,
writes through its services, whose refusals come back in the API's error shape."""

from typing import ClassVar

import django_filters as df
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from adjudication.clocks import practice_today
from api import serializers as s
from api import serializers_reports as r
from api.base import SettleViewSet
from api.filters import ids
from api.permissions import HasApiToken, IsManagerToken
from api.schema import SettleAutoSchema
from api.views_adjudication import FileNegotiation
from ledger.access import ensure_staff
from ledger.models import Practice
from reports import measures as report_measures
from reports import selectors
from reports.audits.runner import run_audit
from reports.cms838 import cms838_generate
from reports.exports.base import REGISTRY
from reports.exports.jobs import export_open, export_start
from reports.exports.writers import CONTENT_TYPES, FORMATS
from reports.models import AuditFinding, AuditRun, CaseReview
from reports.reconciliation import reconcile
from reports.services.findings import finding_acknowledge, finding_resolve
from reports.services.reviews import case_review_record


class ManagersSchema(SettleAutoSchema):
    """Every route here may answer 403 (a billing token), reads too."""

    def _error_codes(self) -> list[str]:
        codes = super()._error_codes()
        return sorted(codes + ["403"]) if "403" not in codes else codes

    def _is_list_view(self, serializer=None) -> bool:
        # the measures and the reconciliation answer GET /<route> with one object, not a list of rows
        if getattr(self.view, "one_object", False) and getattr(self.view, "action", None) == "list":
            return False
        return super()._is_list_view(serializer)


class ManagersViewSet(SettleViewSet):
    schema = ManagersSchema()

    def get_permissions(self):
        return [HasApiToken(), IsManagerToken()]

    def check_permissions(self, request):
        super().check_permissions(request)
        # the token's role, and the person behind it a manager of the practice now (as the services check)
        ensure_staff(self.actor, self.practice_id, manager=True)

    def query(self, serializer_class) -> dict:
        q = serializer_class(data=self.request.query_params)
        q.is_valid(raise_exception=True)
        return q.validated_data

    @property
    def practice_ids(self) -> list[int]:
        return [self.practice_id]


# --- audit runs -------------------------------------------------------------------------------------

class AuditRunFilter(df.FilterSet):
    kind = df.ChoiceFilter(choices=AuditRun.Kind.choices)

    class Meta:
        model = AuditRun
        fields = ("kind",)


@extend_schema_view(
    list=extend_schema(summary="List the audit runs (manager token)",
                       description="The practice's audits of the books (daily) and of the adjudication work "
                                   "(weekly), newest first (DOMAIN rule 20)."),
    retrieve=extend_schema(summary="Get an audit run (manager token)",
                           description="With each check's summary (findings, milliseconds, the error of a check "
                                       "that failed) and its findings counted by state, severity and kind.",
                           responses={200: r.AuditRunDetailSerializer}))
class AuditRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ManagersViewSet):
    serializer_class = r.AuditRunSerializer
    filterset_class = AuditRunFilter

    def get_queryset(self):
        return selectors.audit_runs(practice_ids=self.practice_ids)

    def retrieve(self, request, pk=None):
        return Response(r.AuditRunDetailSerializer(self.own(pk)).data)

    @extend_schema(summary="Run an audit now (manager token)",
                   description="Runs every check of `kind` on one snapshot of the books (reports.audits.runner."
                               "run_audit) and answers with the finished run. An audit of the same kind already "
                               "running for the practice is a 409 `duplicate`.",
                   request=r.AuditRunStartSerializer, responses={201: r.AuditRunDetailSerializer})
    def create(self, request):
        data = self.input(r.AuditRunStartSerializer)
        run = run_audit(practice_id=self.practice_id, kind=data["kind"], actor=self.actor, reason=data["reason"])
        return Response(r.AuditRunDetailSerializer(run).data, status=status.HTTP_201_CREATED)


# --- findings ---------------------------------------------------------------------------------------

class AuditFindingFilter(df.FilterSet):
    state = df.ChoiceFilter(choices=AuditFinding.State.choices)
    kind = df.ChoiceFilter(choices=AuditFinding.Kind.choices, help_text="The check that found it.")
    severity = df.ChoiceFilter(choices=AuditFinding.Severity.choices)
    run = ids("Findings of this audit run.", field_name="run_id")

    class Meta:
        model = AuditFinding
        fields = ("state", "kind", "severity", "run")


@extend_schema_view(
    list=extend_schema(summary="List the audit findings (manager token)",
                       description="What the audits found, newest first: the object in words, what was expected "
                                   "and found, the money concerned, how long it has lasted."),
    retrieve=extend_schema(summary="Get an audit finding (manager token)"))
class AuditFindingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ManagersViewSet):
    serializer_class = r.AuditFindingSerializer
    filterset_class = AuditFindingFilter

    def get_queryset(self):
        return selectors.findings(practice_ids=self.practice_ids)

    @extend_schema(summary="Acknowledge a finding (manager token)",
                   description="Known and being worked on; a later run that finds the same fault keeps the "
                               "acknowledgement. Only an open finding (409 otherwise).",
                   request=s.ReasonSerializer, responses={200: r.AuditFindingSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        f = self.own(pk)
        data = self.input(s.ReasonSerializer)
        finding_acknowledge(finding=f.pk, actor=self.actor, reason=data["reason"])
        return Response(r.AuditFindingSerializer(self.own(f.pk)).data)

    @extend_schema(summary="Resolve a finding (manager token)",
                   description="The fault is fixed or explained. An open or acknowledged finding (409 once "
                               "resolved).", request=s.ReasonSerializer, responses={200: r.AuditFindingSerializer})
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        f = self.own(pk)
        data = self.input(s.ReasonSerializer)
        finding_resolve(finding=f.pk, actor=self.actor, reason=data["reason"])
        return Response(r.AuditFindingSerializer(self.own(f.pk)).data)


# --- case reviews -----------------------------------------------------------------------------------

class CaseReviewFilter(df.FilterSet):
    state = df.ChoiceFilter(choices=CaseReview.State.choices)

    class Meta:
        model = CaseReview
        fields = ("state",)


@extend_schema_view(
    list=extend_schema(summary="List the second reviews of resolved cases (manager token)",
                       description="Resolved cases the weekly audit sampled (DOMAIN rule 20), newest first."),
    retrieve=extend_schema(summary="Get a case review (manager token)"))
class CaseReviewViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ManagersViewSet):
    serializer_class = r.CaseReviewSerializer
    filterset_class = CaseReviewFilter

    def get_queryset(self):
        return selectors.case_reviews(practice_ids=self.practice_ids)

    @extend_schema(summary="Record a second review (manager token)",
                   description="Passed or failed, with a note (reports.services.reviews.case_review_record). Never "
                               "by who resolved the case or decided its resolution (403). A failed review counts as "
                               "an error (rule 21); with `reopen` the case goes back to investigating. Recorded once "
                               "(409 after).", request=r.ReviewRecordSerializer, responses={200: r.CaseReviewSerializer})
    @action(detail=True, methods=["post"])
    def record(self, request, pk=None):
        review = self.own(pk)
        data = self.input(r.ReviewRecordSerializer)
        case_review_record(review=review.pk, actor=self.actor, **data)
        return Response(r.CaseReviewSerializer(self.own(review.pk)).data)


# --- measures, reconciliation -----------------------------------------------------------------------

class MeasuresViewSet(ManagersViewSet):
    one_object = True  # GET answers one object (api/schema: not a list)
    pagination_class = None
    filter_backends: ClassVar[list] = []
    action_query_params: ClassVar[dict] = {"list": set(r.MeasuresQuerySerializer().fields),
                                           "trend": set(r.TrendQuerySerializer().fields)}

    @extend_schema(summary="The measures of a period (manager token)",
                   description="DOMAIN rule 21 for the local dates date_from to date_to (at most ten years): "
                               "turnaround, approval and error rates, resolutions without staff action, the aging "
                               "of open cases and the credit balances against gross A/R as of `as_of`, refunds "
                               "issued, nightly runs, unmatched 835 claims (reports.measures.measures). Rates are "
                               "decimal strings with 4 places (0.0375 is 3.75%), null when there is nothing to "
                               "measure.",
                   parameters=[r.MeasuresQuerySerializer], responses={200: r.MeasuresSerializer})
    def list(self, request):
        q = self.query(r.MeasuresQuerySerializer)
        out = report_measures.measures(practice_id=self.practice_id, date_from=q["date_from"], date_to=q["date_to"],
                                       as_of=q.get("as_of"))
        return Response(r.MeasuresSerializer(out).data)

    @extend_schema(summary="The weekly trend of the measures (manager token)",
                   description="`weeks` points, each week ending on `end`'s weekday (reports.measures.trend): "
                               "turnaround, approval and error rates, resolutions, credit balances and their share "
                               "of gross A/R at the end of the week.",
                   parameters=[r.TrendQuerySerializer], responses={200: r.TrendPointSerializer(many=True)})
    @action(detail=False, methods=["get"])
    def trend(self, request):
        q = self.query(r.TrendQuerySerializer)
        points = report_measures.trend(practice_id=self.practice_id, end=q["end"], weeks=q["weeks"])
        return Response(r.TrendPointSerializer(points, many=True).data)


class ReconciliationViewSet(ManagersViewSet):
    one_object = True  # GET answers one object (api/schema: not a list)
    pagination_class = None
    filter_backends: ClassVar[list] = []
    action_query_params: ClassVar[dict] = {"list": {"as_of"}}

    @extend_schema(summary="Reconcile the books as of a date (manager token)",
                   description="Credits, the journal and visit balances as they stood at the end of `as_of` (the "
                               "practice's date; default today), compared row by row, every difference listed with "
                               "both values (reports.reconciliation.reconcile). No difference: the books agree.",
                   parameters=[r.ReconciliationQuerySerializer], responses={200: r.ReconciliationSerializer})
    def list(self, request):
        q = self.query(r.ReconciliationQuerySerializer)
        as_of = q.get("as_of") or practice_today(Practice.objects.get(pk=self.practice_id))
        return Response(r.ReconciliationSerializer(reconcile(practice_id=self.practice_id, as_of=as_of).as_dict())
                        .data)


# --- exports ----------------------------------------------------------------------------------------

class ReportCatalogViewSet(ManagersViewSet):
    pagination_class = None
    filter_backends: ClassVar[list] = []

    @extend_schema(summary="The reports that can be exported (manager token)",
                   description="Each report's name, title, what it takes and its formats, for POST /exports.",
                   responses={200: r.ReportDefSerializer(many=True)})
    def list(self, request):
        rows = [{"name": d.name, "title": d.title, "description": d.description, "takes": list(d.takes),
                 "formats": list(FORMATS)} for d in sorted(REGISTRY.values(), key=lambda d: d.name)]
        return Response(r.ReportDefSerializer(rows, many=True).data)


@extend_schema_view(
    list=extend_schema(summary="List the exports (manager token)",
                       description="Newest first, with their progress (rows_done of rows_total), and once done "
                                   "the file's size, SHA-256 and where to download it."),
    retrieve=extend_schema(summary="Get an export (manager token)",
                           description="Poll it until `state` is done (or failed, with the error)."))
class ExportJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ManagersViewSet):
    serializer_class = r.ExportJobSerializer
    filterset_class = None

    def get_queryset(self):
        return selectors.export_jobs(practice_ids=self.practice_ids)

    @extend_schema(summary="Start an export (manager token)",
                   description="Queues `report` in `format` with its `params` (reports.exports.jobs.export_start); "
                               "a task writes the file. 202 with the job: follow it with GET /exports/{id}. A "
                               "parameter the report does not take, a missing period or a date that is not "
                               "YYYY-MM-DD is a 400 naming it.",
                   request=r.ExportStartSerializer, responses={202: r.ExportJobSerializer})
    def create(self, request):
        data = self.input(r.ExportStartSerializer)
        job = export_start(practice_id=self.practice_id, report=data["report"], format=data["format"],
                           params=data["params"], actor=self.actor)
        return Response(r.ExportJobSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Download an export's file (manager token)",
                   description="The file of a finished export, as an attachment under its name. An export not done "
                               "(queued, running, failed, expired) is a 409 naming `job`.",
                   responses={(200, ct.split(";")[0]): OpenApiTypes.BINARY for ct in CONTENT_TYPES.values()})
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None,
            content_negotiation_class=FileNegotiation)
    def file(self, request, pk=None):
        job = self.own(pk)
        fh, filename, content_type = export_open(job=job.pk, actor=self.actor)
        return FileResponse(fh, as_attachment=True, filename=filename, content_type=content_type)


# --- the Medicare credit balance report -------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List the Medicare credit balance reports (manager token)",
                       description="The CMS-838 reports generated, newest first, with their totals."),
    retrieve=extend_schema(summary="Get a Medicare credit balance report with its lines (manager token)",
                           responses={200: r.Cms838ReportDetailSerializer}))
class Cms838ReportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ManagersViewSet):
    serializer_class = r.Cms838ReportSerializer
    filterset_class = None

    def get_queryset(self):
        return selectors.cms838_reports(practice_ids=self.practice_ids).select_related("generated_by")

    def retrieve(self, request, pk=None):
        return Response(r.Cms838ReportDetailSerializer(self.own(pk)).data)

    @extend_schema(summary="Generate a Medicare credit balance report (manager token)",
                   description="Every credit balance due to a Medicare payer of `part` identified on or before "
                               "period_end and never reported goes on one line of a new report (reports.cms838."
                               "cms838_generate); a balance once reported is not reported again (DOMAIN rule 22). "
                               "The practice's report settings must name the part's provider number and the "
                               "contact (400 naming the setting); nothing left to report is a 409 "
                               "`nothing_to_report`. Download it with POST /exports {report: cms838, params: "
                               "{report: id}}.",
                   request=r.Cms838GenerateSerializer, responses={201: r.Cms838ReportDetailSerializer})
    def create(self, request):
        data = self.input(r.Cms838GenerateSerializer)
        report = cms838_generate(practice_id=self.practice_id, actor=self.actor, **data)
        return Response(r.Cms838ReportDetailSerializer(report).data, status=status.HTTP_201_CREATED)
