"""Credit-balance adjudication through the API (issue 11 item 10): the case work queue and its
totals, one case, its record (events, payer contacts), every step of its workflow, the scan, and
the clock rules. Reads go through adjudication/selectors.py, every write through the case service
the admin uses (adjudication/services/, adjudication/scan.py): the rules (roles, four eyes, the
transitions a state allows, money left) are theirs, and their refusals come back in the API's
error shape (403, 404, 409, 400)."""

from datetime import date
from typing import ClassVar

import django_filters as df
from django import forms
from django.db.models import BigIntegerField, ExpressionWrapper, F, Prefetch, Q, Value
from django.db.models.functions import Coalesce
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotAcceptable, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from adjudication import documents
from adjudication.models import Case, CaseDocument, ClockRule, Proposal
from adjudication.scan import scan_now
from adjudication.selectors import DaysBetween, case_contacts, case_queue, case_timeline, queue_totals
from adjudication.services import cases as case_services
from adjudication.services import notices as notice_services
from adjudication.services import proposals as proposal_services
from api import serializers as s
from api import serializers_adjudication as a
from api.base import SettleViewSet
from api.filters import StrictBooleanFilter
from api.pagination import IdCursorPagination
from api.parsers import MULTIPART_ENVELOPE_BYTES, RequestTooLarge, content_length
from api.permissions import HasApiToken, IsManagerToken
from ledger.errors import NotFound, SettleError
from ledger.models import Claim, Payer

OPEN = "open"
NO_DUE_DATE = 3_652_060  # days from 0001-01-01 to 9999-12-31, plus one: cases with no due date sort last
POSITION_SCALE = 10**12  # queue_position = days to the due date * 10^12 + id: the queue's order as one bigint


def queue_position():
    """Due date (none last), then id, as one unique integer, so the queue pages with a cursor that never
    repeats or skips a case (api/pagination.py: a cursor's position is a whole number)."""
    days = Coalesce(DaysBetween(F("due_on"), Value(date(1, 1, 1))), Value(NO_DUE_DATE))
    return ExpressionWrapper(days * Value(POSITION_SCALE, output_field=BigIntegerField()) + F("id"),
                             output_field=BigIntegerField())


class QueuePagination(IdCursorPagination):
    ordering = "queue_position"


class TimelinePagination(IdCursorPagination):
    ordering = "id"  # a case's record reads oldest first


class FileNegotiation(DefaultContentNegotiation):
    """For the routes that answer with a file: any Accept header is served (the file's own type, or an
    error in the JSON shape), never a 406."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


def download(fieldfile, *, filename: str, content_type: str) -> FileResponse:
    """A stored file as an attachment, with its stored content type."""
    return FileResponse(fieldfile.open("rb"), as_attachment=True, filename=filename, content_type=content_type)


class DocumentUploadParser(MultiPartParser):
    """multipart/form-data for case documents, refused with 413 from its Content-Length alone when it cannot fit
    (adjudication/documents.py: SETTLE_CASE_DOCUMENT_MAX_BYTES)."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = documents.max_bytes()
        if request is not None and content_length(request) > limit + MULTIPART_ENVELOPE_BYTES:
            raise RequestTooLarge(limit, "the file", field="file")
        return super().parse(stream, media_type, parser_context)


def as_file_field(exc: SettleError) -> SettleError:
    """The document service names the upload `upload`; the API's input is `file`. Too large is a 413."""
    if exc.code == "too_large":
        return RequestTooLarge(documents.max_bytes(), "the file", field="file")
    if exc.field == "upload":
        return type(exc)(exc.message, field="file", code=exc.code)
    return exc


class DaysField(forms.IntegerField):
    def __init__(self, **kwargs):
        super().__init__(min_value=0, max_value=3650, **kwargs)


class DaysFilter(df.NumberFilter):
    field_class = DaysField


class UserIdField(forms.IntegerField):
    def __init__(self, **kwargs):
        super().__init__(min_value=0, max_value=2**63 - 1, **kwargs)


class UserIdFilter(df.NumberFilter):
    field_class = UserIdField


class CaseFilter(df.FilterSet):
    """The queue's filters. They are read here and handed to `case_queue` (adjudication/selectors.py),
    which the back-office queue uses too."""

    state = df.MultipleChoiceFilter(choices=[(OPEN, "Open (every state but resolved)"), *Case.State.choices],
                                    help_text="One or more states (repeat the parameter); `open`: all but resolved.")
    cause = df.MultipleChoiceFilter(choices=Case.Cause.choices)
    kind = df.MultipleChoiceFilter(choices=Case.Kind.choices, help_text="patient_credit, payer_credit or "
                                                                        "encounter_overpaid.")
    payer_type = df.ChoiceFilter(choices=Payer.Type.choices)
    due_within_days = DaysFilter(help_text="Due within this many days of today (the practice's date), overdue ones "
                                           "included; cases with no due date are left out.")
    assigned_to = UserIdFilter(help_text="Cases assigned to this user id; 0: unassigned cases.")
    flagged = StrictBooleanFilter(help_text="Open cases due within the practice's warning window, or overdue.")

    class Meta:
        model = Case
        fields = ("state", "cause", "kind", "payer_type", "due_within_days", "assigned_to", "flagged")


CASE_ACTIONS = ("propose", "approve", "reject", "carry_out", "investigate", "end_investigation", "wait_on_payer",
                "assign", "reopen", "notice", "election")


@extend_schema_view(
    list=extend_schema(
        summary="The case work queue",
        description="Credit-balance cases (rule 15), sorted by due date (no due date last), then id. Each shows the "
                    "money left now, the days left on its clock (the practice's date), whether it is flagged "
                    "(due within the practice's warning window, or overdue) and whether a payer follow-up is "
                    "overdue."),
    retrieve=extend_schema(summary="Get a case",
                           description="The case with its clock, the patient's notice and election, how it ended, "
                                       "and its proposals (newest first)."))
class CaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = a.CaseSerializer
    filterset_class = CaseFilter
    pagination_class = QueuePagination
    action_query_params: ClassVar[dict] = {"totals": set(CaseFilter.base_filters)}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the view: no request, no tenant
            return Case.objects.none()
        return case_queue(practice_ids=[self.practice_id]).annotate(queue_position=queue_position())

    def get_permissions(self):
        if getattr(self, "action", None) in ("approve", "reject", "reopen"):
            return [HasApiToken(), IsManagerToken()]
        return [HasApiToken()]

    def queue(self):
        """The queue with the request's filters, through the selector."""
        f = CaseFilter(self.request.query_params, queryset=Case.objects.none(), request=self.request)
        if not f.is_valid():
            raise ValidationError(f.errors)
        args = {k: v for k, v in f.form.cleaned_data.items() if v not in (None, "", [])}
        states = args.pop("state", None)
        if states:
            args["state"] = OPEN if states == [OPEN] else \
                sorted(set(Case.OPEN if OPEN in states else ()) | (set(states) - {OPEN}))
        if "due_within_days" in args:
            args["due_within_days"] = int(args["due_within_days"])
        if "assigned_to" in args:
            args["assigned_to"] = int(args["assigned_to"])
        return case_queue(practice_ids=[self.practice_id], **args).annotate(queue_position=queue_position())

    def list(self, request):
        page = self.paginate_queryset(self.queue())
        return self.get_paginated_response(a.CaseSerializer(page, many=True).data)

    def case(self, pk) -> Case:
        """One of the practice's cases, or 404 (another practice's too)."""
        return self.own(pk)

    def detail_out(self, pk) -> dict:
        qs = self.get_queryset().select_related("resolved_by", "election_by").prefetch_related(
            Prefetch("proposals", queryset=Proposal.objects.select_related("proposed_by", "decided_by")
                     .order_by("-proposed_at", "-id")))
        return a.CaseDetailSerializer(qs.get(pk=pk)).data

    def retrieve(self, request, pk=None):
        return Response(self.detail_out(self.case(pk).pk))

    @extend_schema(summary="What the (filtered) queue adds up to",
                   description="The same filters as the queue: how many cases, what they were when opened, what is "
                               "left now, how many are flagged, overdue, and past a payer follow-up.",
                   filters=True, responses={200: a.QueueTotalsSerializer})
    @action(detail=False, methods=["get"])
    def totals(self, request):
        return Response(a.QueueTotalsSerializer(queue_totals(self.queue())).data)

    # --- the record ---------------------------------------------------------------------------------

    @extend_schema(summary="The case's record (events), oldest first",
                   description="Append-only: state changes, notes, balance confirmations, source reviews, "
                               "documents, payer contacts, notices, elections, proposals and decisions, each with "
                               "who and when.", responses={200: a.CaseEventSerializer(many=True)})
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=TimelinePagination)
    def events(self, request, pk=None):
        c = self.case(pk)
        page = self.paginate_queryset(case_timeline(c))
        return self.get_paginated_response(a.CaseEventSerializer(page, many=True).data)

    @extend_schema(summary="Add a note to the case's record", request=a.NoteSerializer,
                   responses={201: a.CaseEventSerializer})
    @events.mapping.post
    def add_note(self, request, pk=None):
        c = self.case(pk)
        data = self.input(a.NoteSerializer)
        event = case_services.case_note(case=c.pk, actor=self.actor, text=data["text"])
        return Response(a.CaseEventSerializer(case_timeline(c).get(pk=event.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="The payer contacts of a case", responses={200: a.PayerContactSerializer(many=True)})
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=TimelinePagination)
    def contacts(self, request, pk=None):
        c = self.case(pk)
        page = self.paginate_queryset(case_contacts(c))
        return self.get_paginated_response(a.PayerContactSerializer(page, many=True).data)

    @extend_schema(summary="Record a payer contact",
                   description="The day (not in the future), channel, whom, the payer's reference, what came of it "
                               "and a follow-up day. With `wait_on_payer` (or a follow-up while the case is "
                               "identified or investigating) the case waits on the payer until the follow-up day.",
                   request=a.ContactCreateSerializer, responses={201: a.PayerContactSerializer})
    @contacts.mapping.post
    def add_contact(self, request, pk=None):
        c = self.case(pk)
        data = self.input(a.ContactCreateSerializer)
        contact = case_services.case_record_contact(case=c.pk, actor=self.actor, **data)
        return Response(a.PayerContactSerializer(case_contacts(c).get(pk=contact.pk)).data,
                        status=status.HTTP_201_CREATED)

    # --- the workflow (rule 15, 16, 18) ------------------------------------------------------------------

    def done(self, pk):
        return Response(self.detail_out(pk))

    @extend_schema(summary="Put the case under investigation",
                   description="From identified or waiting on the payer. `good_faith`: a timely good-faith "
                               "investigation, which suspends a Medicare or Medicaid clock (at most the rule's "
                               "suspension days from identification); refused when the case's rule has none.",
                   request=a.InvestigateSerializer, responses={200: a.CaseDetailSerializer})
    @action(detail=True, methods=["post"])
    def investigate(self, request, pk=None):
        c = self.case(pk)
        data = self.input(a.InvestigateSerializer)
        case_services.case_investigate(case=c.pk, actor=self.actor, **data)
        return self.done(c.pk)

    @extend_schema(summary="End a good-faith investigation",
                   description="The suspended clock starts again from the day it ended.",
                   request=a.EndInvestigationSerializer, responses={200: a.CaseDetailSerializer})
    @action(detail=True, methods=["post"], url_path="end-investigation")
    def end_investigation(self, request, pk=None):
        c = self.case(pk)
        data = self.input(a.EndInvestigationSerializer)
        case_services.case_end_investigation(case=c.pk, actor=self.actor, **data)
        return self.done(c.pk)

    @extend_schema(summary="Wait on the payer until a follow-up day", request=a.WaitOnPayerSerializer,
                   responses={200: a.CaseDetailSerializer})
    @action(detail=True, methods=["post"], url_path="wait-on-payer")
    def wait_on_payer(self, request, pk=None):
        c = self.case(pk)
        data = self.input(a.WaitOnPayerSerializer)
        case_services.case_wait_on_payer(case=c.pk, actor=self.actor, **data)
        return self.done(c.pk)

    @extend_schema(summary="Assign the case to a staff member (or nobody)", request=a.AssignSerializer,
                   responses={200: a.CaseDetailSerializer})
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        c = self.case(pk)
        data = self.input(a.AssignSerializer)
        case_services.case_assign(case=c.pk, actor=self.actor, reason=data["reason"], assignee_id=data["assignee"])
        return self.done(c.pk)

    @extend_schema(summary="Reopen a resolved case (manager token)",
                   description="Back to investigating; it counts as an error (rule 21).",
                   request=s.ReasonSerializer, responses={200: a.CaseDetailSerializer})
    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        c = self.case(pk)
        data = self.input(s.ReasonSerializer)
        case_services.case_reopen(case=c.pk, actor=self.actor, reason=data["reason"])
        return self.done(c.pk)

    @extend_schema(summary="Propose a resolution",
                   description="Billing staff or managers (rule 16): refund the patient, refund the payer by check, "
                               "wait for the payer's recoupment, apply to the patient's other open balances, keep as "
                               "credit (only on the patient's election), resubmit the claim, write off, or turn over "
                               "as unclaimed property. `amount` defaults to the money left and may not exceed it; "
                               "one live proposal per case.",
                   request=a.ProposeSerializer, responses={201: a.ProposalSerializer})
    @action(detail=True, methods=["post"])
    def propose(self, request, pk=None):
        c = self.case(pk)
        data = self.input(a.ProposeSerializer)
        claim = self.scoped(Claim, data.pop("claim"), field="claim")
        proposal = proposal_services.case_propose(case=c.pk, actor=self.actor, claim_id=claim.pk if claim else None,
                                                  **data)
        return Response(a.ProposalSerializer(proposal).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Approve the case's proposal (manager token)",
                   description="Four eyes: a manager other than the proposer (a person: never an integration token, "
                               "nor another token of the proposer). Approved, it is carried out at once when it can "
                               "be, through the money services; if the money changed meanwhile it is refused, the "
                               "proposal keeps the reason in `refusal` and the case goes back to proposed with "
                               "nothing half done (200: read the case's `state` and the proposal's `state`).",
                   request=a.ApproveSerializer, responses={200: a.CaseDetailSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        c = self.case(pk)
        data = self.input(a.ApproveSerializer)
        proposal_services.case_approve(case=c.pk, actor=self.actor, **data)
        return self.done(c.pk)

    @extend_schema(summary="Reject the case's proposal (manager token)",
                   description="A manager other than the proposer; the case goes back to investigating.",
                   request=s.ReasonSerializer, responses={200: a.CaseDetailSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        c = self.case(pk)
        data = self.input(s.ReasonSerializer)
        proposal_services.case_reject(case=c.pk, actor=self.actor, reason=data["reason"])
        return self.done(c.pk)

    @extend_schema(summary="Carry out an approved proposal that waited",
                   description="E.g. once the check number is known (`reference`).",
                   request=a.CarryOutSerializer, responses={200: a.CaseDetailSerializer})
    @action(detail=True, methods=["post"], url_path="carry-out")
    def carry_out(self, request, pk=None):
        c = self.case(pk)
        data = self.input(a.CarryOutSerializer)
        proposal_services.case_carry_out(case=c.pk, actor=self.actor, **data)
        return self.done(c.pk)

    @extend_schema(summary="Send the patient the overpayment notice",
                   description="A PDF letter, e-mailed with the letter attached when the patient has an e-mail "
                               "address (rule 18). California: the refund clock runs from the notice.",
                   request=a.NoticeSerializer, responses={200: a.CaseDetailSerializer})
    @action(detail=True, methods=["post"])
    def notice(self, request, pk=None):
        c = self.case(pk)
        data = self.input(a.NoticeSerializer)
        notice_services.case_send_notice(case=c.pk, actor=self.actor, **data)
        return self.done(c.pk)

    @extend_schema(summary="Record the patient's election: refund or keep",
                   description="`keep` takes the credit off the refund work list, stops the clock where the law "
                               "allows and resolves the case as kept (the nightly run applies the credit as usual); "
                               "`refund` leaves the case open for the refund.",
                   request=a.ElectionSerializer, responses={200: a.CaseDetailSerializer})
    @action(detail=True, methods=["post"])
    def election(self, request, pk=None):
        c = self.case(pk)
        data = self.input(a.ElectionSerializer)
        notice_services.case_record_election(case=c.pk, actor=self.actor, reason=data["reason"],
                                             election=data["election"], via="staff")
        return self.done(c.pk)

    @extend_schema(summary="Confirm the credit balance is still there",
                   description="Records the money found on hand now, under the case's lock. Refused (409, "
                               "`balance_gone`) when the money is gone: the scan closes such a case with its reason.",
                   request=s.ReasonSerializer, responses={201: a.CaseEventSerializer})
    @action(detail=True, methods=["post"], url_path="confirm-balance")
    def confirm_balance(self, request, pk=None):
        c = self.case(pk)
        data = self.input(s.ReasonSerializer)
        event = case_services.case_confirm_balance(case=c.pk, actor=self.actor, reason=data["reason"])
        return Response(a.CaseEventSerializer(case_timeline(c).get(pk=event.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Record a review of where the credit came from",
                   description="`findings` in words; the event also keeps the source rows as they are now (the "
                               "credit's source, payment and visit of origin, or the payer credit's claim, or the "
                               "visit's claims and payments) in `data.source`.",
                   request=a.ReviewSourceSerializer, responses={201: a.CaseEventSerializer})
    @action(detail=True, methods=["post"], url_path="review-source")
    def review_source(self, request, pk=None):
        c = self.case(pk)
        data = self.input(a.ReviewSourceSerializer)
        event = case_services.case_review_source(case=c.pk, actor=self.actor, reason=data["reason"],
                                                 findings=data["findings"])
        return Response(a.CaseEventSerializer(case_timeline(c).get(pk=event.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="The documents kept with a case, oldest first",
                   responses={200: a.DocumentSerializer(many=True)})
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=TimelinePagination,
            parser_classes=[DocumentUploadParser])
    def documents(self, request, pk=None):
        c = self.case(pk)
        page = self.paginate_queryset(CaseDocument.objects.filter(case_id=c.pk))
        return self.get_paginated_response(a.DocumentSerializer(page, many=True).data)

    @extend_schema(summary="Attach a document to a case",
                   description="multipart/form-data: the file in `file` and a `reason`. Checked by the case service "
                               "(adjudication/documents.py): 1 byte to SETTLE_CASE_DOCUMENT_MAX_BYTES (10 MiB; more "
                               "is a 413 `too_large`), a PDF, PNG, JPEG, TIFF, or UTF-8 text, CSV or X12 by its "
                               "content, and a name that does not claim another type (400 `wrong_type`, `empty`). "
                               "The same file twice on one case is a 409 `duplicate`. It is kept on the case's "
                               "record as a document event.",
                   request={"multipart/form-data": a.DocumentUploadSerializer},
                   responses={201: a.DocumentSerializer})
    @documents.mapping.post
    def add_document(self, request, pk=None):
        c = self.case(pk)
        data = self.input(a.DocumentUploadSerializer)
        upload = data["file"]
        if upload.size is not None and upload.size > documents.max_bytes():
            raise RequestTooLarge(documents.max_bytes(), "the file", field="file")
        try:
            doc = case_services.case_attach_document(case=c.pk, actor=self.actor, reason=data["reason"],
                                                     upload=upload)
        except SettleError as exc:
            raise as_file_field(exc) from None
        return Response(a.DocumentSerializer(doc).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Download a case's document",
                   description="The file's bytes with its stored content type, as an attachment under the name it "
                               "was uploaded with.",
                   parameters=[OpenApiParameter("doc_id", OpenApiTypes.INT, OpenApiParameter.PATH,
                                                description="The document's id (of this case).")],
                   responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path=r"documents/(?P<doc_id>[0-9]+)/file", filterset_class=None,
            pagination_class=None, content_negotiation_class=FileNegotiation)
    def document_file(self, request, pk=None, doc_id=None):
        c = self.case(pk)
        doc = CaseDocument.objects.filter(pk=int(doc_id), case_id=c.pk).first()
        if doc is None:
            raise NotFound(f"case {c.pk} has no document {int(doc_id)}", field="doc_id")
        return download(doc.file, filename=doc.filename, content_type=doc.content_type or "application/octet-stream")

    @extend_schema(summary="Scan now",
                   description="Runs the practice's scan at once, as the token's user: opens a case for every credit "
                               "balance that has none, closes the cases whose money is gone, refreshes the clocks "
                               "and the unclaimed-property list. Running it again opens nothing new.",
                   request=a.ScanSerializer, responses={200: a.ScanResultSerializer})
    @action(detail=False, methods=["post"])
    def scan(self, request):
        data = self.input(a.ScanSerializer)
        result = scan_now(practice_id=self.practice_id, actor=self.actor, reason=data["reason"])
        return Response(a.ScanResultSerializer(result.as_dict()).data)


class ClockRuleFilter(df.FilterSet):
    kind = df.ChoiceFilter(choices=ClockRule.Kind.choices)
    us_state = df.CharFilter(help_text="Exact two-letter code, e.g. TX (the general rules have none: blank).")
    payer_type = df.CharFilter(help_text="medicare, medicaid, commercial (blank: any payer).")
    active = StrictBooleanFilter()

    class Meta:
        model = ClockRule
        fields = ("kind", "us_state", "payer_type", "active")


@extend_schema_view(list=extend_schema(summary="List the clock rules",
                                       description="The legal and policy clocks (rule 17) that apply to the "
                                                   "practice: the general ones and the practice's own. Managers "
                                                   "edit them in the admin."),
                    retrieve=extend_schema(summary="Get a clock rule"))
class ClockRuleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = a.ClockRuleSerializer
    filterset_class = ClockRuleFilter

    def get_queryset(self):
        return ClockRule.objects.filter(Q(practice__isnull=True) | Q(practice_id=self.practice_id))

