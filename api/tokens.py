"""Making and revoking API tokens, and what a token may do now. A token looks like
`stl_<prefix>_<secret>`: the prefix finds the row, the SHA-256 of the whole token is compared in
constant time. Only the hash is kept. Who a token acts for: api/models.py."""

import hashlib
import hmac
import logging
import re
import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from api.models import ApiToken
from ledger.access import is_integration, is_manager, is_system
from ledger.errors import Duplicate, InvalidInput, NotFound, PermissionDenied
from ledger.history import save_with_history
from ledger.inputs import require_reason
from ledger.models import Membership, Practice

log = logging.getLogger("api")

TOKEN_RE = re.compile(r"^stl_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,59}$")


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_find(raw: str) -> ApiToken | None:
    """The token row for `raw`, revoked or not; None when it matches nothing."""
    m = TOKEN_RE.match(raw or "")
    if not m:
        return None
    token = ApiToken.objects.select_related("user", "created_by").filter(prefix=m.group(1)).first()
    if token is None or not hmac.compare_digest(token.key_hash, hash_token(raw)):
        return None
    return token


ROLE_RANK = {ApiToken.Role.BILLING: 1, ApiToken.Role.MANAGER: 2}


def person_role(user, practice_id: int) -> str | None:
    """The user's role in the practice now (a superuser counts as a manager); None when the user is
    inactive or not staff of the practice."""
    if user is None or not user.is_active:
        return None
    if user.is_superuser:
        return ApiToken.Role.MANAGER
    return Membership.objects.filter(user_id=user.pk, practice_id=practice_id).values_list("role", flat=True).first()


def token_power(token: ApiToken):
    """(acting user, effective role) of a token now, checked on every request: a person's token acts for the
    person with at most the person's current role; an integration token acts as its own user, as billing
    staff. Raises PermissionDenied saying why the token has no power left."""
    if token.revoked_at is not None:
        raise PermissionDenied("The token was revoked.")
    if token.is_integration:
        if person_role(token.user, token.practice_id) is None:
            raise PermissionDenied(f"The token's integration user is no longer active in practice {token.practice_id}.")
        return token.user, ApiToken.Role.BILLING  # an integration never has more (it never approves)
    person = token.created_by
    role = person_role(person, token.practice_id)
    if role is None:
        raise PermissionDenied(f"The token acts for {person.get_username()}, who is no longer active staff of "
                               f"practice {token.practice_id}.")
    return person, min(token.role, role, key=ROLE_RANK.__getitem__)


def _check_person(person, practice_id: int, role: str) -> None:
    if is_system(person) or is_integration(person):
        raise InvalidInput(f"{person.get_username()} is not a person: a token is made by a staff user",
                           field="created_by")
    held = person_role(person, practice_id)
    if held is None:
        raise PermissionDenied(f"{person.get_username()} is not active staff of practice {practice_id}; a token acts "
                               "for a person of its practice", field="created_by")
    if ROLE_RANK[role] > ROLE_RANK[held]:
        raise PermissionDenied(f"{person.get_username()} is {held} staff of practice {practice_id}: their token cannot "
                               f"have the {role} role", field="role")


@transaction.atomic
def api_token_create(*, practice_id: int, role: str, name: str, created_by=None,
                     reason: str = "API token made") -> tuple[ApiToken, str]:
    """Make a token for one practice with one role. Returns (token row, the token itself): the token is not
    stored and cannot be shown again. The token's history row names who made it (its person; none for an
    operator's integration token) and the reason.

    With `created_by` (a staff user of the practice) the token acts for that person, with at most their role.
    Without, it is an integration token: its own user (no password, no admin access) with a billing
    Membership; it can never be a manager, since an integration never approves."""
    reason = require_reason(reason)
    name = (name or "").strip().lower()
    if not NAME_RE.match(name):
        raise InvalidInput("name: 1-60 characters of a-z, 0-9, '.', '_' or '-'", field="name")
    if role not in ApiToken.Role.values:
        raise InvalidInput(f"role must be one of {', '.join(ApiToken.Role.values)}", field="role")
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        raise NotFound(f"unknown practice {practice_id}", field="practice")
    if created_by is not None:
        _check_person(created_by, practice.pk, role)
    elif role == ApiToken.Role.MANAGER:
        raise PermissionDenied("a token with no person behind it is an integration, which can never approve: a "
                               "manager token is made by (and acts for) a manager (--created-by)", field="role")
    if ApiToken.objects.filter(practice=practice, name=name).exists():
        raise Duplicate(f"practice {practice_id} already has a token named {name}", field="name")
    user = None
    if created_by is None:
        User = get_user_model()
        username = f"api-{practice.pk}-{name}"[:150]
        if User.objects.filter(username=username).exists():
            raise Duplicate(f"user {username} already exists", field="name")
        user = User(username=username, first_name="API", last_name=name[:150], is_staff=False, is_active=True)
        user.set_unusable_password()
        user.save()
        membership = Membership(user=user, practice=practice, role=ApiToken.Role.BILLING)
        membership._change_reason = f"API token {name} created (an integration)"
        membership.save()
    prefix = secrets.token_hex(6)
    raw = f"stl_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken(practice=practice, name=name, role=role, prefix=prefix, key_hash=hash_token(raw), user=user,
                     created_by=created_by)
    save_with_history(token, actor=created_by, reason=reason)
    log.info("API token #%s %r (%s) of practice %s made, acting for %s", token.pk, name, role, practice.pk,
             created_by.get_username() if created_by else f"its integration user {user.username}")
    return token, raw


def may_revoke(actor, token: ApiToken) -> bool:
    """Who revokes a token: its person, or a manager of its practice (an administrator anywhere)."""
    return actor is not None and actor.is_active and (token.created_by_id == actor.pk
                                                      or is_manager(actor, token.practice_id))


@transaction.atomic
def api_token_revoke(*, token_id: int, actor=None, reason: str = "API token revoked") -> ApiToken:
    """Refuse the token from now on (401). An integration's user stays (deactivated), so the history keeps
    naming it; a person's token simply stops acting for them. `actor` (None: an operator on the command
    line) must be the token's person or a manager of its practice; the history row names them and the reason."""
    reason = require_reason(reason)
    token = ApiToken.objects.select_for_update().filter(pk=token_id).first()
    if token is None:
        raise NotFound(f"unknown API token {token_id}", field="token")
    if actor is not None and not may_revoke(actor, token):
        raise PermissionDenied(f"only a manager of practice {token.practice_id} or the token's person revokes it",
                               field="token")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        save_with_history(token, actor=actor, reason=reason, update_fields=["revoked_at"])
        if token.user_id is not None:  # an integration's own user acts for nothing else
            get_user_model().objects.filter(pk=token.user_id).update(is_active=False)
        log.info("API token #%s %r of practice %s revoked%s", token.pk, token.name, token.practice_id,
                 f" by {actor.get_username()}" if actor is not None else "")
    return token
