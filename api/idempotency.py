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

Leases. The request holding an in_progress row renews its lease (`leased_until`) every third of
SETTLE_API_IDEMPOTENCY_LEASE seconds (default 60) from a small thread while it runs, so a long
upload is never run twice. A request that died (its process killed, its database connection cut)
renews nothing: once the lease is over, the next request with the key takes the row over
(`attempt` + 1) and runs. Every write of the holder names its attempt, so a request that was only
slow, not dead, can no longer store its answer over the new one (nor renew the lease).

A request the database cut off (OperationalError / InterfaceError: an outage, a terminated
connection, a timeout) gets 503 and releases its key (its transaction was rolled back: nothing
was kept), so a retry runs at once; when even that release cannot reach the database, the lease
frees the key. Answers of every other status are kept, 500s included: a request that failed
half-way is never run twice under one key (check with a GET and use a new key).

Keys are per token and kept for 24 hours (SETTLE_API_IDEMPOTENCY_TTL_HOURS); older rows are
ignored and can be purged with `purge_expired()`."""

import hashlib
import json
import logging
import re
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from api.exceptions import IdempotencyError
from api.models import IdempotencyRecord
from ledger.errors import InvalidInput

HEADER = "HTTP_IDEMPOTENCY_KEY"
REPLAYED_HEADER = "Idempotent-Replayed"
POLL_SECONDS = 0.05
KEY_PATTERN = r"^[!-~]{1,255}$"  # visible ASCII, no spaces
KEY_RE = re.compile(KEY_PATTERN[1:-1])
MAX_RENEWING = 6 * 3600  # a heartbeat never renews a lease for longer than this (seconds)
REQUEST_ATTRIBUTE = "settle_idempotency"  # the Django request carries its claim, for ApiErrorMiddleware

log = logging.getLogger("api")


class Replay(Exception):
    """Raised from the view's `initial()` to answer with a stored response."""

    def __init__(self, response: HttpResponse):
        self.response = response


def _ttl() -> timedelta:
    return timedelta(hours=getattr(settings, "SETTLE_API_IDEMPOTENCY_TTL_HOURS", 24))


def _lease() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "SETTLE_API_IDEMPOTENCY_LEASE", 60)))


class Heartbeat(threading.Thread):
    """Renews the lease of one claim while its request runs; stops when told, when the claim is no longer
    the current attempt in progress, or after MAX_RENEWING seconds. Its own database connection."""

    def __init__(self, pk: int, attempt: int):
        super().__init__(name=f"idempotency-lease-{pk}-{attempt}", daemon=True)
        self.pk, self.attempt = pk, attempt
        self.stopped = threading.Event()

    def run(self):
        interval = max(_lease().total_seconds() / 3, 0.01)
        give_up = time.monotonic() + MAX_RENEWING
        try:
            while not self.stopped.wait(interval) and time.monotonic() < give_up:
                try:
                    renewed = _current(self.pk, self.attempt).update(leased_until=timezone.now() + _lease())
                except DatabaseError as exc:  # the database is away: try again at the next beat
                    log.warning("idempotency lease %s/%s not renewed: %s", self.pk, self.attempt, exc)
                    connection.close()
                    continue
                if not renewed:
                    return  # answered, released, or taken over
        finally:
            connection.close()

    def stop(self):
        self.stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=5)


class Claim:
    """The key a request holds: its row (pk, attempt) and the heartbeat renewing its lease."""

    def __init__(self, record: IdempotencyRecord):
        self.record = record
        self.heartbeat = Heartbeat(record.pk, record.attempt)
        self.settled = False
        self.heartbeat.start()

    def settle(self) -> bool:
        """Stop renewing; True the first time (the caller then answers or releases the key)."""
        self.heartbeat.stop()
        first, self.settled = not self.settled, True
        return first


def _current(pk: int, attempt: int):
    return IdempotencyRecord.objects.filter(pk=pk, attempt=attempt, state=IdempotencyRecord.State.IN_PROGRESS)


def _recover_connection() -> None:
    """After a database error outside a transaction the connection may be dead; drop it so the next query
    reconnects (Django itself only checks between requests)."""
    if connection.connection is not None and not connection.in_atomic_block and connection.errors_occurred \
            and not connection.is_usable():
        connection.close()


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


def begin(request) -> "Claim | None":
    """Claim the request's Idempotency-Key. Returns the claim (its row, its lease renewing; the caller
    runs the request and calls `finish`), None without a key; raises Replay or IdempotencyError
    otherwise."""
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
                rec = IdempotencyRecord.objects.create(token=token, key=key, fingerprint=fp, method=request.method,
                                                       path=request.path[:500], leased_until=timezone.now() + _lease())
            return _hold(request, rec)
        except IntegrityError:
            pass
        rec = IdempotencyRecord.objects.filter(token=token, key=key).first()
        if rec is None:
            continue  # it expired and was purged meanwhile: claim it again
        now = timezone.now()
        if rec.created_at < now - _ttl():
            IdempotencyRecord.objects.filter(pk=rec.pk).delete()  # expired: the key is free again
            continue
        if rec.fingerprint != fp:
            raise IdempotencyError(
                f"Idempotency-Key '{key}' was already used with a different request ({rec.method} {rec.path}); "
                "use a new key for a new request", code="idempotency_key_reused", status_code=422)
        if rec.state == IdempotencyRecord.State.DONE:
            raise Replay(_replay(rec))
        if rec.leased_until <= now:
            # the request holding the key stopped renewing its lease: it died. Take the row over; of two
            # requests doing this at once, the attempt number lets one through.
            if _current(rec.pk, rec.attempt).filter(leased_until__lte=now).update(
                    attempt=F("attempt") + 1, leased_until=now + _lease()):
                rec.refresh_from_db()
                log.warning("Idempotency-Key %r of token %s: attempt %s stopped renewing its lease; attempt %s runs",
                            key, token.pk, rec.attempt - 1, rec.attempt)
                return _hold(request, rec)
            continue
        if time.monotonic() >= deadline:
            raise IdempotencyError(
                f"a request with Idempotency-Key '{key}' is still being processed; retry shortly",
                code="idempotency_in_progress", status_code=409)
        time.sleep(POLL_SECONDS)


def _hold(request, rec: IdempotencyRecord) -> Claim:
    claim = Claim(rec)
    setattr(getattr(request, "_request", request), REQUEST_ATTRIBUTE, claim)
    return claim


def finish(claim: Claim, response) -> None:
    """Store the answer of the request that claimed the key (or release the key, for a request the database
    cut off). Never raises: the client gets its answer even when it cannot be stored."""
    if not claim.settle():
        return
    if getattr(response, "settle_release_key", False):
        release(claim)
        return
    data = getattr(response, "data", None)
    stored = JSONRenderer().render(data).decode() if data is not None else ""  # what the client receives
    _store(claim.record, response.status_code, stored)


def _store(rec: IdempotencyRecord, status_code: int, stored: str) -> None:
    try:
        _recover_connection()
        done = _current(rec.pk, rec.attempt).update(
            state=IdempotencyRecord.State.DONE, response_status=status_code, response_body=stored,
            completed_at=timezone.now())
    except DatabaseError as exc:
        log.error("Idempotency-Key %r: the answer (%s) could not be stored, the key stays claimed until its lease "
                  "ends: %s", rec.key, status_code, exc)
        return
    if not done:
        log.warning("Idempotency-Key %r: attempt %s finished after its lease was taken over; its answer (%s) was "
                    "not stored", rec.key, rec.attempt, status_code)


def release(claim: Claim) -> bool:
    """Free the key for a retry: the request kept nothing. False when the database cannot be reached (the lease
    then frees it)."""
    claim.settle()
    rec = claim.record
    try:
        _recover_connection()
        _current(rec.pk, rec.attempt).delete()
    except DatabaseError as exc:
        log.error("Idempotency-Key %r could not be released; it is free once its lease ends: %s", rec.key, exc)
        return False
    return True


def abandon(request, response, *, release_key: bool) -> None:
    """For ApiErrorMiddleware: the request's view raised past DRF, and `response` is what the client gets.
    Release its key (the database cut it off) or keep that answer, as for any other failure."""
    claim = getattr(request, REQUEST_ATTRIBUTE, None)
    if claim is None or not claim.settle():
        return
    if release_key:
        release(claim)
    else:
        _store(claim.record, response.status_code, response.content.decode())


def purge_expired(*, now=None) -> int:
    """Delete records past their TTL. Returns how many were deleted."""
    cutoff = (now or timezone.now()) - _ttl()
    return IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()[0]
