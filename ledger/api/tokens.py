"""Making and revoking API tokens. A token looks like `stl_<prefix>_<secret>`: the prefix finds
the row, the SHA-256 of the whole token is compared in constant time. Only the hash is kept."""

import hashlib
import hmac
import re
import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from ledger.api_models import ApiToken
from ledger.errors import Duplicate, InvalidInput, NotFound
from ledger.models import Membership, Practice

TOKEN_RE = re.compile(r"^stl_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,59}$")


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def find_token(raw: str) -> ApiToken | None:
    """The token row for `raw`, revoked or not; None when it matches nothing."""
    m = TOKEN_RE.match(raw or "")
    if not m:
        return None
    token = ApiToken.objects.select_related("user").filter(prefix=m.group(1)).first()
    if token is None or not hmac.compare_digest(token.key_hash, hash_token(raw)):
        return None
    return token


@transaction.atomic
def api_token_create(*, practice_id: int, role: str, name: str, actor=None) -> tuple[ApiToken, str]:
    """Make a token for one practice with one role. Returns (token row, the token itself): the
    token is not stored and cannot be shown again. The token acts as its own user (no password,
    no admin access) with a Membership in the practice, so services check and record it."""
    name = (name or "").strip().lower()
    if not NAME_RE.match(name):
        raise InvalidInput("name: 1-60 characters of a-z, 0-9, '.', '_' or '-'", field="name")
    if role not in ApiToken.Role.values:
        raise InvalidInput(f"role must be one of {', '.join(ApiToken.Role.values)}", field="role")
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        raise NotFound(f"unknown practice {practice_id}", field="practice")
    if ApiToken.objects.filter(practice=practice, name=name).exists():
        raise Duplicate(f"practice {practice_id} already has a token named {name}", field="name")
    User = get_user_model()
    username = f"api-{practice.pk}-{name}"[:150]
    if User.objects.filter(username=username).exists():
        raise Duplicate(f"user {username} already exists", field="name")
    user = User(username=username, first_name="API", last_name=name[:150], is_staff=False, is_active=True)
    user.set_unusable_password()
    user.save()
    membership = Membership(user=user, practice=practice, role=role)
    membership._history_user = actor
    membership._change_reason = f"API token {name} created"
    membership.save()
    prefix = secrets.token_hex(6)
    raw = f"stl_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(practice=practice, name=name, role=role, prefix=prefix, key_hash=hash_token(raw),
                                    user=user, created_by=actor)
    return token, raw


@transaction.atomic
def api_token_revoke(*, token_id: int, actor=None) -> ApiToken:
    """Refuse the token from now on (401). Its user stays, so the history keeps naming it."""
    token = ApiToken.objects.select_for_update().filter(pk=token_id).first()
    if token is None:
        raise NotFound(f"unknown API token {token_id}", field="token")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        get_user_model().objects.filter(pk=token.user_id).update(is_active=False)
    return token
