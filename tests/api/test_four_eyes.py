"""Four eyes compares people, not tokens (issue 9): a token acts for the person who made it, so two
tokens of one person are one person; an integration token (no person behind it) never approves;
a person demoted, removed or deactivated loses what their tokens could do."""

from datetime import date

import pytest
from django.db import IntegrityError, connection, transaction

from api.models import ApiToken
from api.tokens import api_token_create
from credits.models import Refund
from ledger.access import ensure_approver
from ledger.errors import PermissionDenied
from ledger.models import Membership, Patient
from tests.api.conftest import error_of, make_api
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def big_refund(api, world, amount="150.00"):
    """A refund above the practice's threshold (100.00), requested through `api`."""
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 1, 1), claim=False)
    credit = world.pay(pat, amount, encounter=enc, channel="portal").credits[0]
    r = api.post(f"/credits/{credit.pk}/refunds", {"amount": amount, "reason": "Overpaid"})
    assert r.status_code == 201, r.content
    assert r.json()["needs_approval"] is True
    return Refund.objects.get(pk=r.json()["id"])


@pytest.fixture
def other_manager(world):
    return MembershipFactory(practice=world.practice, user=UserFactory(username="deputy"),
                             role=Membership.Role.MANAGER).user


def test_two_tokens_of_one_person_cannot_approve_that_persons_refund(world, other_manager):
    """Before issue 9 each token was its own user, so boss's manager token approved what boss's other token
    asked for."""
    asks = make_api(world.practice, name="boss-sync", person=world.manager)  # billing, acting for boss
    approves = make_api(world.practice, role="manager", name="boss-approvals", person=world.manager)
    refund = big_refund(asks, world)
    assert refund.requested_by == world.manager  # the person, not a token user

    r = approves.post(f"/refunds/{refund.pk}/approve", {"reason": "mine"})
    assert r.status_code == 403 and error_of(r)["code"] == "permission_denied"
    assert "requester" in error_of(r)["message"]
    r = approves.post(f"/refunds/{refund.pk}/reject", {"reason": "mine"})
    assert r.status_code == 403
    refund.refresh_from_db()
    assert (refund.state, refund.decided_by) == (Refund.State.REQUESTED, None)

    deputy = make_api(world.practice, role="manager", name="deputy", person=other_manager)
    r = deputy.post(f"/refunds/{refund.pk}/approve", {"reason": "Checked the EOB"})
    assert r.status_code == 200, r.content
    refund.refresh_from_db()
    assert (refund.state, refund.decided_by) == (Refund.State.APPROVED, other_manager)
    last = refund.history.latest()
    assert (last.history_user, last.history_change_reason) == (other_manager, "Checked the EOB")


def test_a_manager_token_of_another_person_approves_an_integrations_request(api, manager_api, world):
    refund = big_refund(api, world)  # `api` is an integration token: its own user asks
    assert refund.requested_by == api.token.user
    r = manager_api.post(f"/refunds/{refund.pk}/approve", {"reason": "ok"})
    assert r.status_code == 200 and r.json()["state"] == "approved"
    refund.refresh_from_db()
    assert refund.decided_by == world.manager


def test_an_integration_token_cannot_approve(api, world):
    clerk = make_api(world.practice, name="clerk-sync", person=world.clerk)
    refund = big_refund(clerk, world)
    # an integration token is billing: the manager's endpoints refuse it ...
    r = api.post(f"/refunds/{refund.pk}/approve", {"reason": "ok"})
    assert r.status_code == 403
    # ... even when its user was made a manager of the practice behind the API's back
    Membership.objects.filter(user=api.token.user).update(role=Membership.Role.MANAGER)
    assert api.get("/token").json()["effective_role"] == "billing"
    r = api.post(f"/refunds/{refund.pk}/approve", {"reason": "ok"})
    assert r.status_code == 403
    # ... and the one four-eyes check every approval calls refuses it by itself
    with pytest.raises(PermissionDenied, match="an integration cannot approve"):
        ensure_approver(api.token.user, practice_id=world.practice.pk, requested_by_id=world.clerk.pk,
                        what="refund")
    refund.refresh_from_db()
    assert refund.state == Refund.State.REQUESTED


def test_the_database_refuses_a_manager_token_with_no_person_behind_it(api):
    with pytest.raises(IntegrityError, match="api_token_manager_is_a_person"), transaction.atomic():
        ApiToken.objects.filter(pk=api.token.pk).update(role=ApiToken.Role.MANAGER)
    with pytest.raises(IntegrityError, match="api_token_acts_for_one"), transaction.atomic():
        ApiToken.objects.filter(pk=api.token.pk).update(user=None)


def test_ensure_approver_refuses_the_system_user_and_the_inactive(world, other_manager):
    from ledger.access import system_user

    with pytest.raises(PermissionDenied, match="integration"):
        ensure_approver(system_user(), practice_id=world.practice.pk, requested_by_id=world.clerk.pk)
    other_manager.is_active = False
    other_manager.save()
    with pytest.raises(PermissionDenied, match="not active"):
        ensure_approver(other_manager, practice_id=world.practice.pk, requested_by_id=world.clerk.pk)
    ensure_approver(world.manager, practice_id=world.practice.pk, requested_by_id=world.clerk.pk)  # a person: fine


def test_a_token_never_has_more_power_than_its_person(world):
    with pytest.raises(PermissionDenied, match="cannot have the manager role"):
        api_token_create(practice_id=world.practice.pk, role="manager", name="clerk-mgr", created_by=world.clerk)
    assert not ApiToken.objects.exists()


def test_a_demoted_person_loses_the_managers_power(manager_api, api, world):
    refund = big_refund(api, world)
    Membership.objects.filter(user=world.manager, practice=world.practice).update(role=Membership.Role.BILLING)
    r = manager_api.get("/token")
    assert (r.json()["role"], r.json()["effective_role"]) == ("manager", "billing")
    r = manager_api.post(f"/refunds/{refund.pk}/approve", {"reason": "ok"})
    assert r.status_code == 403 and error_of(r)["code"] == "permission_denied"
    r = manager_api.patch("/practice", {"auto_apply": False, "reason": "x"})
    assert r.status_code == 403
    assert manager_api.get("/patients").status_code == 200  # billing work still goes on
    Membership.objects.filter(user=world.manager, practice=world.practice).update(role=Membership.Role.MANAGER)
    assert manager_api.post(f"/refunds/{refund.pk}/approve", {"reason": "ok"}).status_code == 200


def test_a_person_removed_or_deactivated_loses_the_token(manager_api, world):
    assert manager_api.get("/token").status_code == 200
    Membership.objects.filter(user=world.manager, practice=world.practice).delete()
    r = manager_api.get("/token")
    assert r.status_code == 401 and error_of(r)["code"] == "authentication_failed"
    assert "boss, who is no longer active staff" in error_of(r)["message"]
    MembershipFactory(practice=world.practice, user=world.manager, role=Membership.Role.MANAGER)
    assert manager_api.get("/token").status_code == 200
    world.manager.is_active = False
    world.manager.save()
    assert manager_api.post("/patients", {"account_number": "P-9", "first_name": "A", "last_name": "B"}
                            ).status_code == 401
    assert not Patient.objects.exists()


def test_history_names_the_person_a_token_acts_for(world):
    clerk = make_api(world.practice, name="clerk-sync", person=world.clerk)
    r = clerk.post("/patients", {"account_number": "P-1", "first_name": "Ann", "last_name": "Lee"})
    assert r.status_code == 201
    assert Patient.objects.get(pk=r.json()["id"]).history.latest().history_user == world.clerk


def test_existing_tokens_are_migrated_to_act_for_people(world):
    """ledger/migrations/0008: a token made by a person acts for them (its old user is deactivated); a manager
    token with no person behind it becomes billing. Legacy rows need the constraints off, as before 0008."""
    import importlib

    from django.db.migrations.loader import MigrationLoader

    migration = importlib.import_module("ledger.migrations.0008_api_token_person")
    # the models as they were at 0008 (ApiToken was the ledger app's then; it is the api app's now)
    apps = MigrationLoader(connection).project_state(("ledger", "0008_api_token_person")).apps
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE ledger_apitoken DROP CONSTRAINT api_token_acts_for_one, "
                    "DROP CONSTRAINT api_token_manager_is_a_person")
    old_person_token = api_token_create(practice_id=world.practice.pk, role="billing", name="made-by-boss")[0]
    ApiToken.objects.filter(pk=old_person_token.pk).update(created_by=world.manager)
    old_manager = api_token_create(practice_id=world.practice.pk, role="billing", name="old-manager")[0]
    ApiToken.objects.filter(pk=old_manager.pk).update(role="manager")
    Membership.objects.filter(user=old_manager.user).update(role="manager")

    with connection.schema_editor(atomic=False) as editor:
        migration.tokens_act_for_people(apps, editor)
        editor.execute("ALTER TABLE ledger_apitoken ADD CONSTRAINT api_token_acts_for_one CHECK "
                       "((created_by_id IS NOT NULL AND user_id IS NULL) OR (created_by_id IS NULL AND user_id IS NOT "
                       "NULL)), ADD CONSTRAINT api_token_manager_is_a_person CHECK "
                       "(NOT (role = 'manager') OR created_by_id IS NOT NULL)")  # they hold on the migrated rows

    person_token = ApiToken.objects.get(pk=old_person_token.pk)
    assert (person_token.user, person_token.created_by, person_token.acting_user) == (None, world.manager,
                                                                                       world.manager)
    old_person_token.user.refresh_from_db()
    assert old_person_token.user.is_active is False
    integration = ApiToken.objects.get(pk=old_manager.pk)
    membership = Membership.objects.get(user=integration.user)
    assert (integration.role, membership.role) == ("billing", "billing")
    assert membership.history.latest().history_change_reason.startswith("Issue 9")
