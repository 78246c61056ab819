"""835 remittance files and the nightly application through the API. Uploads go through
`remittance_file_import` (remittances/posting.py), the unmatched queue through remittances/queue.py,
runs through `nightly_apply` (credits/nightly.py): the same code as the admin, import_835 and
run_nightly."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from api import filters
from api import serializers as s
from api.base import SettleViewSet
from api.parsers import RequestTooLarge, UploadParser, max_835_bytes
from credits.models import NightlyRun
from credits.nightly import PREVIEW_LINE_CAP
from ledger.models import Claim
from remittances.models import RemittanceClaim, RemittanceFile
from remittances.nightly import nightly_run
from remittances.queue import remittance_claim_dismiss, remittance_claim_match
from remittances.receive import remittance_file_import


@extend_schema_view(
    list=extend_schema(summary="List received 835 files"),
    retrieve=extend_schema(summary="Get an 835 file's result",
                           description="Status (posted, duplicate, refused), counts and totals, warnings, the errors "
                                       "of a refused file (segment and byte position), and its claims by state."))
class RemittanceFileViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = s.RemittanceFileSerializer
    filterset_class = filters.RemittanceFileFilter
    parser_classes = [UploadParser]  # uploads only (multipart); nothing else is POSTed here
    list_actions = ("list", "claims")

    def get_queryset(self):
        if getattr(self, "action", None) == "claims":  # GET /remittance-files/{id}/claims lists claims
            return RemittanceClaim.objects.filter(practice_id=self.practice_id)
        return self.files()

    def files(self):
        return RemittanceFile.objects.filter(practice_id=self.practice_id).defer("content")

    def own(self, pk):
        return get_object_or_404(self.files(), pk=pk)

    @extend_schema(
        summary="Upload an 835 file",
        description="multipart/form-data with the file in `file`. The file is read whole first: a file that cannot "
                    "be read is recorded with status `refused` and its `errors` (nothing is posted); the same file "
                    "again is recorded as `duplicate` (nothing is posted twice). A readable file is stored and, "
                    "unless `post` is false, its claims are posted at once: each claim is matched by its number "
                    "(CLP01) and payer; one that matches nothing waits in the unmatched queue "
                    "(GET /remittance-claims?state=unmatched). Always 201: read `status`.",
        request={"multipart/form-data": s.RemittanceUploadSerializer}, responses={201: s.RemittanceFileSerializer})
    def create(self, request):
        data = self.input(s.RemittanceUploadSerializer)
        upload = data["file"]
        limit = max_835_bytes()  # also refused from the Content-Length, before reading (UploadParser)
        if upload.size > limit:
            raise RequestTooLarge(limit, "the file", field="file")  # 413 in the error shape
        result = remittance_file_import(practice_id=self.practice_id, data=upload.read(),
                                   filename=upload.name or "upload.835", actor=self.actor, post=data["post"])
        return Response(s.RemittanceFileSerializer(self.own(result.received.file.pk)).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(summary="The claims of an 835 file and what became of each",
                   filters=True, responses={200: s.RemittanceClaimSerializer(many=True)})
    @action(detail=True, methods=["get"], filterset_class=filters.RemittanceClaimFilter,
            serializer_class=s.RemittanceClaimSerializer)
    def claims(self, request, pk=None):
        f = self.own(pk)
        qs = self.filter_queryset(self.get_queryset().filter(file=f))
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(s.RemittanceClaimSerializer(page, many=True).data)


@extend_schema_view(
    list=extend_schema(summary="List remittance claims",
                       description="Every claim of every 835 file. `state=unmatched` (or `waiting=true`) is the "
                                   "queue of claims waiting for staff."),
    retrieve=extend_schema(summary="Get a remittance claim"))
class RemittanceClaimViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = s.RemittanceClaimSerializer
    filterset_class = filters.RemittanceClaimFilter

    def get_queryset(self):
        return RemittanceClaim.objects.filter(practice_id=self.practice_id)

    @extend_schema(summary="Match a waiting remittance claim to a claim, and post it",
                   description="When the claim's payer, patient name or date of service differs from the remittance "
                               "claim's, the match is refused (409, code `mismatch`, the differences in the message) "
                               "unless `confirm_mismatch` is true; the confirmation is recorded with the reason.",
                   request=s.RemittanceMatchSerializer, responses={200: s.RemittanceClaimSerializer})
    @action(detail=True, methods=["post"])
    def match(self, request, pk=None):
        rc = self.own(pk)
        data = self.input(s.RemittanceMatchSerializer)
        claim = self.scoped(Claim, data["claim"], field="claim")
        rc = remittance_claim_match(remittance_claim_id=rc.pk, claim_id=claim.pk, actor=self.actor,
                                    reason=data["reason"], confirm_mismatch=data["confirm_mismatch"])
        return Response(s.RemittanceClaimSerializer(self.own(rc.pk)).data)

    @extend_schema(summary="Dismiss a waiting remittance claim (not ours)",
                   description="Takes the claim off the unmatched queue without posting anything (state "
                               "`dismissed`); who, when and why are recorded. A claim already posted cannot be "
                               "dismissed (409).",
                   request=s.RemittanceDismissSerializer, responses={200: s.RemittanceClaimSerializer})
    @action(detail=True, methods=["post"])
    def dismiss(self, request, pk=None):
        rc = self.own(pk)
        data = self.input(s.RemittanceDismissSerializer)
        rc = remittance_claim_dismiss(remittance_claim_id=rc.pk, actor=self.actor, reason=data["reason"])
        return Response(s.RemittanceClaimSerializer(self.own(rc.pk)).data)


@extend_schema_view(list=extend_schema(summary="List nightly runs of the practice"),
                    retrieve=extend_schema(summary="Get a nightly run"))
class NightlyRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = s.NightlyRunSerializer
    filterset_class = filters.NightlyRunFilter

    def get_queryset(self):
        return NightlyRun.objects.filter(practice_id=self.practice_id)

    @extend_schema(
        summary="Run the nightly application now",
        description="For the token's practice: post received 835 files, release the locked credits of balanced "
                    "dates of service, and apply usable credits to open PR balances (rule 6). Safe to run twice "
                    "and while staff work. When a run is already in progress this one does nothing and is recorded "
                    "with status `skipped`.",
        request=s.NightlyRunCreateSerializer, responses={201: s.NightlyRunResultSerializer})
    def create(self, request):
        data = self.input(s.NightlyRunCreateSerializer)
        result = nightly_run(practice_id=self.practice_id, actor=self.actor, reason=data["reason"],
                             post_remittances=data["post_remittances"])
        return Response(s.NightlyRunResultSerializer(
            result.run, context={"remittances_posted": result.remittances_posted}).data,
            status=status.HTTP_201_CREATED)

    @extend_schema(summary="Preview the nightly application (dry run)",
                   description="Does the run's work and rolls it back: what a run would apply now, line by line. "
                               "Writes nothing.",
                   request=None, responses={200: s.NightlyPreviewSerializer})
    @action(detail=False, methods=["post"])
    def preview(self, request):
        result = nightly_run(practice_id=self.practice_id, dry_run=True, actor=self.actor)
        lines = [{"patient": p, "encounter": e, "credit": c, "amount": a, "locked": lk}
                 for p, e, c, a, lk in result.lines]
        return Response(s.NightlyPreviewSerializer({
            "status": result.status, "patients_seen": result.patients_seen,
            "application_count": result.application_count, "applied_total": result.applied_total,
            "released_credits": result.released_credits, "lines": lines,
            "lines_truncated": result.application_count > len(lines) and len(lines) >= PREVIEW_LINE_CAP}).data)
