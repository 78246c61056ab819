"""What every API view shares: the token's practice as the tenant, the token's user as the
acting user, input validation, the Idempotency-Key handling of POSTs, and tenancy checks for
ids sent in bodies (another practice's id is "not found", exactly like an id that does not exist)."""

import django_filters
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import generics, viewsets

from api import idempotency
from api.authentication import ApiTokenAuthentication
from api.pagination import IdCursorPagination
from api.parsers import RequestTooLarge, content_length, max_json_bytes
from api.permissions import HasApiToken
from api.throttling import TokenRateThrottle
from ledger.errors import InvalidInput, NotFound


class SettleMixin:
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [HasApiToken]
    throttle_classes = [TokenRateThrottle]
    pagination_class = IdCursorPagination
    filter_backends = [DjangoFilterBackend]
    lookup_value_regex = r"[0-9]+"
    card_payments = False  # True: the schema documents 402 (card declined) on its POSTs
    list_actions = ("list",)  # actions that page and filter
    action_query_params: dict = {}  # other actions' query parameters, e.g. {"preselect": {"encounter_ids"}}
    _idempotency = None

    @property
    def practice_id(self) -> int | None:
        # None only while drf-spectacular inspects the view without a request (swagger_fake_view)
        return getattr(self.request.auth, "practice_id", None)

    @property
    def actor(self):
        return self.request.user

    # --- per request: after authentication, permissions and throttling, refuse unknown methods and
    # parameters, then claim the Idempotency-Key of a POST; its answer is stored once the work is done ---

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            self.http_method_not_allowed(request)  # 405 before looking at parameters
        self.refuse_unknown_query_params(request)
        if not (request.content_type or "").startswith("multipart/") and content_length(request) > max_json_bytes():
            raise RequestTooLarge(max_json_bytes(), "the JSON body")  # 413 before a byte of it is read
        if request.method == "POST":
            self._idempotency = idempotency.begin(request)

    def handle_exception(self, exc):
        if isinstance(exc, idempotency.Replay):
            return exc.response
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if self._idempotency is not None:
            claim, self._idempotency = self._idempotency, None
            idempotency.finish(claim, response)  # never raises: a database error here is logged, not answered
        return response

    def allowed_query_params(self) -> set[str]:
        action = getattr(self, "action", None)
        allowed = set(self.action_query_params.get(action, ()))
        if action in self.list_actions:
            filterset = getattr(self, "filterset_class", None)
            allowed |= set(filterset.base_filters) if filterset else set()
            if self.paginator is not None:
                allowed |= {self.paginator.cursor_query_param, self.paginator.page_size_query_param}
        return allowed

    def refuse_unknown_query_params(self, request) -> None:
        """A misspelt filter must not silently list everything: unknown parameters are a 400, and so is an
        empty value for a parameter that is not free text (django-filter would ignore it)."""
        unknown = sorted(set(request.query_params) - self.allowed_query_params())
        if unknown:
            raise InvalidInput(f"unknown query parameter '{unknown[0]}'", field=unknown[0], code="unknown_parameter")
        filterset = getattr(self, "filterset_class", None)
        text = {name for name, f in (filterset.base_filters.items() if filterset else ())
                if type(f) is django_filters.CharFilter}
        for name, values in request.query_params.lists():
            if name not in text and any(v == "" for v in values):
                raise InvalidInput(f"query parameter '{name}' needs a value", field=name, code="invalid")

    # --- helpers ---

    def input(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def own(self, pk):
        """One of the practice's objects of this view by id, ignoring list filters; 404 otherwise."""
        return get_object_or_404(self.get_queryset(), pk=pk)

    def scoped(self, model, pk, *, field: str, label: str | None = None, **filters):
        """The practice's `model` row `pk` (None stays None); NotFound naming `field` otherwise."""
        if pk is None:
            return None
        obj = model.objects.filter(pk=pk, practice_id=self.practice_id, **filters).first()
        if obj is None:
            raise NotFound(f"unknown {label or field} {pk}", field=field)
        return obj

    def scoped_ids(self, model, ids, *, field: str, label: str | None = None, **filters) -> list[int]:
        wanted = set(ids)
        found = set(model.objects.filter(pk__in=wanted, practice_id=self.practice_id, **filters)
                    .values_list("pk", flat=True))
        missing = sorted(wanted - found)
        if missing:
            raise NotFound(f"unknown {label or field}: {', '.join(map(str, missing))}", field=field)
        return list(ids)


class SettleViewSet(SettleMixin, viewsets.GenericViewSet):
    pass


class SettleAPIView(SettleMixin, generics.GenericAPIView):
    pagination_class = None
    filter_backends = []
