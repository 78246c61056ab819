"""API tokens in the admin (issue 9): a staff user makes a token that acts for themselves, with at
most their role; the token is shown once; tokens are listed per practice and revoked with a reason."""

import re

import pytest
from django.urls import reverse

from api.models import ApiToken
from ledger.models import Membership
from tests.api.conftest import Api
from tests.factories import MembershipFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db

ADD = "/admin/api/apitoken/add/"


def make_in_admin(client, user, practice, *, role="billing", name="pm-sync"):
    client.force_login(user)
    return client.post(ADD, {"practice": practice.pk, "name": name, "role": role, "reason": "For the PM system",
                             "_save": "1"})


def test_a_manager_makes_a_token_that_acts_for_them_shown_once(client, world):
    r = make_in_admin(client, world.manager, world.practice, role="manager", name="pm-approvals")
    assert r.status_code == 200
    raw = re.search(r"stl_[a-z0-9]{12}_[A-Za-z0-9_-]+", r.text).group()
    token = ApiToken.objects.get(name="pm-approvals")
    assert (token.created_by, token.user, token.role) == (world.manager, None, "manager")
    assert token.key_hash not in r.text
    me = Api(token=token, raw=raw).get("/token").json()
    assert (me["acts_for"], me["effective_role"]) == ("boss", "manager")
    listing = client.get(reverse("admin:api_apitoken_changelist")).text
    assert "pm-approvals" in listing and raw not in listing  # the token itself is never shown again


def test_a_clerk_cannot_make_a_token_above_their_role(client, world):
    r = make_in_admin(client, world.clerk, world.practice, role="manager", name="clerk-mgr")
    assert r.status_code == 200 and "cannot have the manager role" in r.text
    assert not ApiToken.objects.exists()


def test_tokens_of_another_practice_are_invisible_and_not_revocable(client, world):
    other = PracticeFactory(name="Elsewhere")
    stranger = MembershipFactory(practice=other, user=UserFactory(username="stranger"),
                                 role=Membership.Role.MANAGER).user
    make_in_admin(client, stranger, other, name="theirs")
    theirs = ApiToken.objects.get(name="theirs")
    client.force_login(world.manager)
    assert "theirs" not in client.get(reverse("admin:api_apitoken_changelist")).text
    client.post(reverse("admin:api_apitoken_changelist"),
                {"action": "revoke_selected", "_selected_action": [theirs.pk], "confirm": "yes", "reason": "x"})
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_revoking_in_the_admin(client, world):
    make_in_admin(client, world.clerk, world.practice, name="clerk-sync")
    token = ApiToken.objects.get(name="clerk-sync")
    client.force_login(world.manager)  # a manager of the practice may revoke the clerk's token
    r = client.post(reverse("admin:api_apitoken_changelist"),
                    {"action": "revoke_selected", "_selected_action": [token.pk], "confirm": "yes",
                     "reason": "Laptop lost"})
    assert r.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
