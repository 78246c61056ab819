"""Who may act on what. Staff act only within practices they are members of; a patient acts
only on their own account. The system user (nightly jobs, imports) and superusers act anywhere."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Q

from ledger.errors import PermissionDenied
from ledger.models import Membership, Patient, Practice

SYSTEM_USERNAME = "settle-system"


def system_user():
    User = get_user_model()
    user, _ = User.objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"is_active": False, "first_name": "settle", "last_name": "(system)"}
    )
    return user


def is_system(actor) -> bool:
    return getattr(actor, "username", None) == SYSTEM_USERNAME


def membership(actor, practice_id: int):
    return Membership.objects.filter(user_id=actor.pk, practice_id=practice_id).first()


def is_manager(actor, practice_id: int) -> bool:
    if actor.is_superuser or is_system(actor):
        return True
    m = membership(actor, practice_id)
    return bool(m and m.role == Membership.Role.MANAGER)


def ensure_staff(actor, practice_id: int, *, manager: bool = False) -> None:
    if actor is None or not getattr(actor, "pk", None):
        raise PermissionDenied("an acting user is required")
    if actor.is_superuser or is_system(actor):
        return
    m = membership(actor, practice_id)
    if m is None:
        raise PermissionDenied(f"user {actor.get_username()} is not staff of practice {practice_id}")
    if manager and m.role != Membership.Role.MANAGER:
        raise PermissionDenied(f"user {actor.get_username()} is not a manager of practice {practice_id}")


def ensure_staff_or_patient(actor, patient) -> None:
    if actor is not None and patient.user_id is not None and patient.user_id == actor.pk:
        return
    ensure_staff(actor, patient.practice_id)


def practice_ids_for(user) -> list[int]:
    """Practices whose data this staff user may see."""
    if user.is_superuser:
        return list(Practice.objects.values_list("pk", flat=True))
    return list(Membership.objects.filter(user=user).values_list("practice_id", flat=True))


def is_integration(actor) -> bool:
    """True for the user an API token acts as when no person stands behind it (an integration):
    it may do billing work but never approve anything (four eyes means two people). A person's
    token acts as the person (api/models.py), so its user is never an integration's."""
    if actor is None or not getattr(actor, "pk", None):
        return False
    try:
        actor.api_token  # the reverse side of ApiToken.user, set only for integration tokens
    except (ObjectDoesNotExist, AttributeError):
        return False
    return True


def ensure_approver(actor, *, practice_id: int, requested_by_id: int | None, what: str = "request") -> None:
    """Four eyes: the approver is a manager of the practice, an active person (not an integration,
    not the system user), and someone other than whoever asked. Every approval (refunds, manual
    credits, imports) calls this. API tokens act for the person who made them, so a second token
    of the requester is the requester, and an integration's request needs a person to approve it."""
    ensure_staff(actor, practice_id, manager=True)
    if is_system(actor) or is_integration(actor):
        raise PermissionDenied(f"an integration cannot approve a {what}; a manager must, in person")
    if not actor.is_active:
        raise PermissionDenied(f"user {actor.get_username()} is not active; another manager must approve the {what}")
    if requested_by_id is not None and requested_by_id == actor.pk:
        raise PermissionDenied(f"the requester cannot approve their own {what}; another manager must")


def roles_refusal(actor, *, practice_id: int, user_id: int | None = None) -> str | None:
    """The one rule of who grants, changes and revokes staff roles (the admin and the API both ask
    it, through the membership services and the admin's permissions): an active administrator
    anywhere, an active manager of the practice in that practice; never a person's own role, so a
    manager cannot promote, demote or remove themselves (and a practice is never left without a
    manager by its last one). An integration or the system user never does. Returns why not, or
    None when `actor` may (for `user_id`, or for someone else when it is None)."""
    if actor is None or not getattr(actor, "pk", None) or not actor.is_active:
        return "an active staff user is required to change staff roles"
    if is_system(actor) or is_integration(actor):
        return "an integration or the system never changes staff roles; a manager does, in person"
    if user_id is not None and int(user_id) == actor.pk:
        return "nobody changes their own role: another manager or an administrator must"
    if actor.is_superuser:
        return None
    m = membership(actor, practice_id)
    if m is None or m.role != Membership.Role.MANAGER:
        return f"only a manager of practice {practice_id} or an administrator changes its staff roles"
    return None


def role_candidates(actor):
    """The people `actor` may give a role: an administrator anyone; a manager the staff of their own
    practices and staff with no practice yet, never the staff lists of other practices. Active staff
    users only, never `actor`, an integration, the system user or a patient's portal login."""
    people = (get_user_model().objects.filter(is_active=True, is_staff=True, api_token__isnull=True)
              .exclude(pk=actor.pk).exclude(username=SYSTEM_USERNAME)
              .exclude(pk__in=Patient.objects.filter(user__isnull=False).values("user_id")))
    if not actor.is_superuser:
        people = people.filter(Q(memberships__isnull=True)
                               | Q(memberships__practice_id__in=practice_ids_for(actor))).distinct()
    return people


def may_manage_roles(actor, *, practice_id: int, user_id: int | None = None) -> bool:
    return roles_refusal(actor, practice_id=practice_id, user_id=user_id) is None


def ensure_may_manage_roles(actor, *, practice_id: int, user_id: int | None = None) -> None:
    why = roles_refusal(actor, practice_id=practice_id, user_id=user_id)
    if why is not None:
        raise PermissionDenied(why, field="user" if user_id is not None and actor is not None
                               and int(user_id) == getattr(actor, "pk", None) else None)
