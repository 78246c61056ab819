"""API fixtures: a token client for the `world` practice (billing and manager roles) and one for
a second practice, to prove that one practice's token never reaches the other's data."""

from dataclasses import dataclass

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from api.tokens import api_token_create
from ledger.models import Membership
from tests.factories import MembershipFactory, PayerFactory, PracticeFactory, UserFactory

V1 = "/api/v1"


@dataclass
class Api:
    token: object
    raw: str

    def __post_init__(self):
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.raw}")

    @property
    def practice(self):
        return self.token.practice

    def get(self, path, params=None, **extra):
        return self.client.get(V1 + path, params or {}, **extra)

    def post(self, path, data=None, *, key=None, fmt="json", **extra):
        if key is not None:
            extra["HTTP_IDEMPOTENCY_KEY"] = key
        return self.client.post(V1 + path, data if data is not None else {}, format=fmt, **extra)

    def patch(self, path, data=None, **extra):
        return self.client.patch(V1 + path, data or {}, format="json", **extra)


def make_api(practice, *, role=Membership.Role.BILLING, name="ehr", person=None) -> Api:
    """A token of `practice`: acting for `person` when given; without one, a billing token is an integration's,
    and a manager token gets a manager of its own (an integration can never be a manager)."""
    if person is None and role == Membership.Role.MANAGER:
        person = MembershipFactory(practice=practice, user=UserFactory(username=f"person-{practice.pk}-{name}"),
                                   role=Membership.Role.MANAGER).user
    token, raw = api_token_create(practice_id=practice.pk, role=role, name=name, created_by=person)
    return Api(token=token, raw=raw)


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()  # rate-limit counters live in the cache; each test starts from zero
    yield
    cache.clear()


@pytest.fixture
def api(world):
    return make_api(world.practice)


@pytest.fixture
def manager_api(world):
    """A manager's token: it acts for `world.manager` (boss)."""
    return make_api(world.practice, role=Membership.Role.MANAGER, name="ehr-manager", person=world.manager)


@pytest.fixture
def other_api(db):
    practice = PracticeFactory(name="Across Town Clinic")
    PayerFactory(practice=practice)
    return make_api(practice, name="intruder")


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "field"}, body
    return body["error"]
