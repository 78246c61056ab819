"""Idempotency-Key on POSTs (as in the best payments APIs).

* No key: the POST runs normally.
* A new key: a row is inserted first, in its own committed transaction, with state
  "in_progress"; the unique constraint (token, key) lets exactly one request with that key through.
  The view then runs (services commit on their own, outermost, durable transactions) and its
  answer, success or error, is stored on the row.
* The same key and the same request again (method, path, query and body: the fingerprint):
  the stored answer is returned as it was, with `Idempotent-Replayed: true`; nothing runs again.
* The same key while the first request is still running: the second waits up to
  SETTLE_API_IDEMPOTENCY_WAIT seconds (default 10) for the first to finish and then replays its
  answer; if it is still running, 409 `idempotency_in_progress` with Retry-After.
* The same key with a different request: 422 `idempotency_key_reused`.

Keys are per token and kept for 24 hours (SETTLE_API_IDEMPOTENCY_TTL_HOURS); older rows are
ignored and can be purged with `purge_expired()`. Answers of every status are kept, 500s
included: a request that failed half-way is never run twice under one key (check with a GET
and use a new key)."""

import hashlib
import json
import re
import time
from datetime import timedelta

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from ledger.api.exceptions import IdempotencyError
from ledger.api_models import IdempotencyRecord
from ledger.errors import InvalidInput

HEADER = "HTTP_IDEMPOTENCY_KEY"
REPLAYED_HEADER = "Idempotent-Replayed"
POLL_SECONDS = 0.05
KEY_PATTERN = r"^[!-~]{1,255}$"  # visible ASCII, no spaces
KEY_RE = re.compile(KEY_PATTERN[1:-1])


class Replay(Exception):
    """Raised from the view's `initial()` to answer with a stored response."""

    def __init__(self, response: HttpResponse):
        self.response = response


def _ttl() -> timedelta:
    return timedelta(hours=getattr(settings, "SETTLE_API_IDEMPOTENCY_TTL_HOURS", 24))


def _canonical(value):
    if isinstance(value, UploadedFile):
        digest = hashlib.sha256()
        for chunk in value.chunks():
            digest.update(chunk)
        value.seek(0)
        return {"file": value.name, "sha256": digest.hexdigest()}
    if hasattr(value, "lists"):  # QueryDict (multipart / form): every value of every key
        return {k: [_canonical(v) for v in vs] for k, vs in sorted(value.lists())}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def fingerprint(request) -> str:
    payload = {  # request.data holds the uploaded files too (by name and content hash here)
        "method": request.method,
        "path": request.path,
        "query": sorted(request.query_params.lists()),
        "body": _canonical(request.data),
    }
    raw = json.dumps(payload, sort_keys=True, cls=DjangoJSONEncoder, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def _replay(rec: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(rec.response_body, status=rec.response_status, content_type="application/json")
    response[REPLAYED_HEADER] = "true"
    return response


def begin(request) -> IdempotencyRecord | None:
    """Claim the request's Idempotency-Key. Returns the claimed row (the caller runs the request
    and calls `finish`), None without a key; raises Replay or IdempotencyError otherwise."""
    key = request.META.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not KEY_RE.fullmatch(key):
        raise InvalidInput("Idempotency-Key must be 1 to 255 visible ASCII characters (e.g. a UUID)",
                           field="Idempotency-Key")
    fp = fingerprint(request)
    token = request.auth
    wait = float(getattr(settings, "SETTLE_API_IDEMPOTENCY_WAIT", 10))
    deadline = time.monotonic() + wait
    while True:
        try:
            # its own transaction, committed at once: the other request sees the row (and the constraint) now
            with transaction.atomic():
                return IdempotencyRecord.objects.create(token=token, key=key, fingerprint=fp, method=request.method,
                                                        path=request.path[:500])
        except IntegrityError:
            pass
        rec = IdempotencyRecord.objects.filter(token=token, key=key).first()
        if rec is None:
            continue  # it expired and was purged meanwhile: claim it again
        if rec.created_at < timezone.now() - _ttl():
            IdempotencyRecord.objects.filter(pk=rec.pk).delete()  # expired: the key is free again
            continue
        if rec.fingerprint != fp:
            raise IdempotencyError(
                f"Idempotency-Key '{key}' was already used with a different request ({rec.method} {rec.path}); "
                "use a new key for a new request", code="idempotency_key_reused", status_code=422)
        if rec.state == IdempotencyRecord.State.DONE:
            raise Replay(_replay(rec))
        if time.monotonic() >= deadline:
            raise IdempotencyError(
                f"a request with Idempotency-Key '{key}' is still being processed; retry shortly",
                code="idempotency_in_progress", status_code=409)
        time.sleep(POLL_SECONDS)


def finish(rec: IdempotencyRecord, response) -> None:
    """Store the answer of the request that claimed the key."""
    data = getattr(response, "data", None)
    stored = JSONRenderer().render(data).decode() if data is not None else ""  # what the client receives
    IdempotencyRecord.objects.filter(pk=rec.pk).update(
        state=IdempotencyRecord.State.DONE, response_status=response.status_code, response_body=stored,
        completed_at=timezone.now())


def purge_expired(*, now=None) -> int:
    """Delete records past their TTL. Returns how many were deleted."""
    cutoff = (now or timezone.now()) - _ttl()
    return IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()[0]
