"""Tokens: made by the management command (shown once, only a hash stored), sent as a Bearer
token, refused when missing, wrong or revoked; roles; whom a token acts as (the person behind it,
or an integration's own user). Four eyes between tokens: tests/api/test_four_eyes.py."""

import hashlib
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from api.models import ApiToken
from api.tokens import api_token_revoke
from ledger.models import Membership, Practice
from tests.api.conftest import V1, Api, error_of
from tests.factories import MembershipFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_create_api_token_prints_the_token_once_and_stores_only_its_hash(world):
    out, err = StringIO(), StringIO()
    call_command("create_api_token", practice=world.practice.pk, role="billing", name="EHR-Sync", stdout=out,
                 stderr=err)
    raw = out.getvalue().strip()
    token = ApiToken.objects.get(practice=world.practice, name="ehr-sync")
    assert raw.startswith(f"stl_{token.prefix}_") and "shown only now" in err.getvalue()
    assert token.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {getattr(token, f.attname) for f in ApiToken._meta.concrete_fields}
    # no person behind it: an integration, acting as its own user (no password, no admin), billing staff
    user = token.user
    assert token.created_by is None and "an integration" in err.getvalue()
    assert (user.username, user.is_staff, user.has_usable_password()) == (f"api-{world.practice.pk}-ehr-sync",
                                                                         False, False)
    assert Membership.objects.get(user=user).role == "billing"
    r = Api(token=token, raw=raw).get("/token")
    assert r.status_code == 200
    assert {k: r.json()[k] for k in ("role", "effective_role", "acts_for", "integration")} == {
        "role": "billing", "effective_role": "billing", "acts_for": user.username, "integration": True}
    assert r.json()["practice"]["id"] == world.practice.pk


def test_create_api_token_for_a_person_acts_for_them(world):
    out, err = StringIO(), StringIO()
    call_command("create_api_token", practice=world.practice.pk, role="manager", name="boss-laptop",
                 created_by="boss", stdout=out, stderr=err)
    token = ApiToken.objects.get(name="boss-laptop")
    assert (token.created_by, token.user) == (world.manager, None)  # no user of its own
    assert "acting for boss" in err.getvalue()
    r = Api(token=token, raw=out.getvalue().strip()).get("/token")
    assert {k: r.json()[k] for k in ("role", "effective_role", "acts_for", "integration")} == {
        "role": "manager", "effective_role": "manager", "acts_for": "boss", "integration": False}


def test_create_api_token_refuses_bad_input(world):
    def make(**kw):
        call_command("create_api_token", **{"practice": world.practice.pk, "name": "x", **kw}, stdout=StringIO(),
                     stderr=StringIO())

    with pytest.raises(CommandError, match="unknown practice"):
        make(practice=99999, role="billing")
    make(name="dup")
    with pytest.raises(CommandError, match="already has a token named dup"):
        make(name="dup")
    # an integration can never approve, so a token with no person behind it is never a manager
    with pytest.raises(CommandError, match="never approve"):
        make(role="manager", name="ehr-admin")
    # a token never has more power than its person, who must be staff of the practice
    with pytest.raises(CommandError, match="clerk is billing staff .* cannot have the manager role"):
        make(role="manager", name="clerk-mgr", created_by="clerk")
    stranger = MembershipFactory(practice=PracticeFactory(name="Elsewhere"), user=UserFactory(username="stranger"),
                                 role=Membership.Role.MANAGER).user
    with pytest.raises(CommandError, match="stranger is not active staff of practice"):
        make(name="stranger", created_by=stranger.username)
    with pytest.raises(CommandError, match="no user named nobody"):
        make(name="nobody", created_by="nobody")
    integration = ApiToken.objects.get(name="dup").user
    with pytest.raises(CommandError, match="is not a person"):
        make(name="token-of-a-token", created_by=integration.username)
    assert set(ApiToken.objects.values_list("name", flat=True)) == {"dup"}


@pytest.mark.parametrize("header, code", [
    (None, "not_authenticated"),
    ("Bearer", "authentication_failed"),
    ("Bearer stl_nope", "authentication_failed"),
    ("Bearer stl_000000000000_" + "x" * 43, "authentication_failed"),
    ("Token abc", "not_authenticated"),
])
def test_requests_without_a_valid_token_get_401(api, client, header, code):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    r = client.get(V1 + "/patients", **extra)
    assert r.status_code == 401
    assert r["WWW-Authenticate"].startswith("Bearer")
    assert error_of(r)["code"] == code


def test_a_wrong_secret_with_a_real_prefix_is_refused(api, client):
    forged = api.raw[:-4] + ("aaaa" if not api.raw.endswith("aaaa") else "bbbb")
    r = client.get(V1 + "/token", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert r.status_code == 401


def test_a_revoked_token_is_refused(api):
    assert api.get("/token").status_code == 200
    api_token_revoke(token_id=api.token.pk)
    r = api.get("/token")
    assert r.status_code == 401 and "revoked" in error_of(r)["message"]


def test_last_used_is_recorded(api):
    assert api.token.last_used_at is None
    api.get("/token")
    api.token.refresh_from_db()
    assert api.token.last_used_at is not None


def test_practice_settings_need_a_manager_token(api, manager_api, world):
    r = api.patch("/practice", {"auto_apply": False, "reason": "Patients asked"})
    assert r.status_code == 403 and error_of(r)["code"] == "permission_denied"
    r = manager_api.patch("/practice", {"auto_apply": False, "refund_approval_threshold": "250.00",
                                        "reason": "Board decision"})
    assert r.status_code == 200, r.content
    assert (r.json()["auto_apply"], r.json()["refund_approval_threshold"]) == (False, "250.00")
    world.practice.refresh_from_db()
    last = world.practice.history.latest()
    # the token acts for its person: the history names boss, not the token
    assert (last.history_user, last.history_change_reason) == (world.manager, "Board decision")
    assert api.get("/practice").json()["auto_apply"] is False


def test_practice_settings_refuse_bad_values(manager_api):
    r = manager_api.patch("/practice", {"refund_approval_threshold": "-1.00", "reason": "x"})
    assert r.status_code == 400 and error_of(r)["field"] == "refund_approval_threshold"
    r = manager_api.patch("/practice", {"auto_apply": "no", "reason": "x"})
    assert r.status_code == 400 and error_of(r)["field"] == "auto_apply"
    assert Practice.objects.get(pk=manager_api.practice.pk).auto_apply is True


def test_revoke_api_token_command(api):
    out = StringIO()
    call_command("revoke_api_token", api.token.prefix, stdout=out)
    assert "revoked" in out.getvalue()
    assert api.get("/token").status_code == 401
    with pytest.raises(CommandError):
        call_command("revoke_api_token", "nope", stdout=StringIO())
