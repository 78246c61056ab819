"""Fuzz the API against its own OpenAPI schema (schemathesis, in-process over WSGI): no server
errors, and no response that contradicts the schema (status codes, content types, bodies,
headers). Bounded: a few examples per operation, deterministic, so CI stays fast.

Every check runs but `positive_data_acceptance`: it expects every schema-valid request to succeed, and
the API rightly refuses some of them by a rule the schema cannot state (a card token the processor
declines, a refund of a locked credit, a date of service of another patient): those are 4xx answers
the schema documents, not contradictions of it. `negative_data_rejection` (schema-invalid input
is refused) does run.

Run more examples by hand:  SETTLE_FUZZ_EXAMPLES=200 bin/test tests/api/test_schemathesis.py
(SETTLE_FUZZ_SKIP_PHASES=coverage or =fuzzing runs one of schemathesis's two phases only.)"""

import json
import os
import uuid
from datetime import date

import pytest
import schemathesis
from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.idempotency import KEY_RE
from tests.api.conftest import make_api

EXAMPLES = int(os.environ.get("SETTLE_FUZZ_EXAMPLES", "12"))


def _load_schema():
    raw = SchemaGenerator().get_schema(request=None, public=True)
    # the generator returns Python objects (e.g. lazy strings): round-trip through JSON like /api/schema/ does
    loaded = schemathesis.openapi.from_dict(json.loads(json.dumps(raw, cls=DjangoJSONEncoder)))
    loaded.app = get_wsgi_application()
    # NUL characters cannot be stored and are refused (400) by design; don't count that as a finding
    loaded.config.generation.update(max_examples=EXAMPLES, deterministic=True, allow_x00=False)
    for phase in os.environ.get("SETTLE_FUZZ_SKIP_PHASES", "").split(","):
        if phase:
            getattr(loaded.config.phases, phase).enabled = False
    return loaded


schema = _load_schema()


def prepare(case):
    # cursors are opaque tokens the API hands out; a random one is rightly a 400, so send none
    if case.query and "cursor" in case.query:
        del case.query["cursor"]
    # a valid Idempotency-Key gets a fresh value: generated keys repeat across examples, and a repeated key
    # with another body is rightly refused (422; tests/api/test_idempotency.py covers that)
    key = (case.headers or {}).get("Idempotency-Key")
    if key is not None and KEY_RE.fullmatch(key.strip()):
        case.headers["Idempotency-Key"] = str(uuid.uuid4())


@pytest.fixture
def fuzz_token(world):
    """A practice with some of everything, so generated ids sometimes hit real rows."""
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 3, 3))
    world.pay(pat, "50.00", encounter=enc)
    world.remit(claim, pr="20.00", paid="150.00")
    # the WSGI handler closes the connection at the end of each request; the test's transaction needs it open
    # (Django's own test client disconnects the same signals)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield make_api(world.practice, name="fuzzer").raw
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(suppress_health_check=list(HealthCheck), deadline=None, max_examples=EXAMPLES, derandomize=True)
def test_api_conforms_to_its_schema(case, fuzz_token):
    prepare(case)
    case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_token}"},
                           excluded_checks=[positive_data_acceptance])
