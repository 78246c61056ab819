"""Creating practices and granting staff roles go through services, with history."""

import pytest

from ledger.errors import Duplicate, InvalidInput, PermissionDenied
from ledger.models import Membership
from ledger.services import membership_grant, practice_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_only_administrators_create_practices(world):
    admin = UserFactory(username="root", is_superuser=True)
    p = practice_create(name="Hill Clinic", us_state="ok", actor=admin, auto_apply=False)
    assert (p.us_state, p.auto_apply) == ("OK", False)
    assert p.history.latest().history_user == admin
    with pytest.raises(PermissionDenied):
        practice_create(name="Other", us_state="TX", actor=world.manager)
    with pytest.raises(Duplicate):
        practice_create(name="Hill Clinic", us_state="TX", actor=admin)
    with pytest.raises(InvalidInput, match="not a US state"):
        practice_create(name="X", us_state="Texas", actor=admin)


def test_managers_grant_roles_in_their_practice_only(world):
    newcomer = UserFactory(username="newcomer")
    m = membership_grant(user_id=newcomer.pk, practice_id=world.practice.pk, role="billing", actor=world.manager,
                         reason="Hired")
    assert m.history.latest().history_change_reason == "Hired"
    m = membership_grant(user_id=newcomer.pk, practice_id=world.practice.pk, role="manager", actor=world.manager,
                         reason="Promoted")
    assert Membership.objects.get(user=newcomer, practice=world.practice).role == "manager"
    with pytest.raises(PermissionDenied):  # billing staff cannot grant roles
        membership_grant(user_id=newcomer.pk, practice_id=world.practice.pk, role="billing", actor=world.clerk,
                         reason="x")
    other = UserFactory(username="elsewhere", is_superuser=True)
    from ledger.services import practice_create as create
    far = create(name="Far Clinic", us_state="CA", actor=other)
    with pytest.raises(PermissionDenied):  # a manager of another practice
        membership_grant(user_id=newcomer.pk, practice_id=far.pk, role="billing", actor=world.manager, reason="x")
