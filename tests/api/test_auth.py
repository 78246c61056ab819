"""Tokens: made by the management command (shown once, only a hash stored), sent as a Bearer
token, refused when missing, wrong or revoked; roles; the token's user as the acting user."""

import hashlib
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ledger.api.tokens import api_token_revoke
from ledger.api_models import ApiToken
from ledger.models import Membership, Practice
from tests.api.conftest import V1, Api, error_of

pytestmark = pytest.mark.django_db


def test_create_api_token_prints_the_token_once_and_stores_only_its_hash(world):
    out, err = StringIO(), StringIO()
    call_command("create_api_token", practice=world.practice.pk, role="manager", name="EHR-Sync", stdout=out,
                 stderr=err)
    raw = out.getvalue().strip()
    token = ApiToken.objects.get(practice=world.practice, name="ehr-sync")
    assert raw.startswith(f"stl_{token.prefix}_") and "shown only now" in err.getvalue()
    assert token.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {getattr(token, f.attname) for f in ApiToken._meta.concrete_fields}
    user = token.user
    assert (user.username, user.is_staff, user.has_usable_password()) == (f"api-{world.practice.pk}-ehr-sync",
                                                                         False, False)
    assert Membership.objects.get(user=user).role == "manager"
    r = Api(token=token, raw=raw).get("/token")
    assert r.status_code == 200 and r.json()["role"] == "manager"
    assert r.json()["practice"]["id"] == world.practice.pk


def test_create_api_token_refuses_bad_input(world):
    with pytest.raises(CommandError, match="unknown practice"):
        call_command("create_api_token", practice=99999, role="billing", name="x", stdout=StringIO(),
                     stderr=StringIO())
    call_command("create_api_token", practice=world.practice.pk, name="dup", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="already has a token named dup"):
        call_command("create_api_token", practice=world.practice.pk, name="dup", stdout=StringIO(),
                     stderr=StringIO())


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
    assert (last.history_user, last.history_change_reason) == (manager_api.token.user, "Board decision")
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
