"""Who may call what: any valid token of a practice; some actions need a manager's token, whose
person is a manager of the practice now (`effective_role`, set by the authentication)."""

from rest_framework.permissions import BasePermission

from api.models import ApiToken


class HasApiToken(BasePermission):
    message = "An API token is required (Authorization: Bearer <token>)."

    def has_permission(self, request, view):
        return isinstance(request.auth, ApiToken) and request.auth.revoked_at is None


class IsManagerToken(BasePermission):
    message = "This action needs a manager's token: the manager role, made by a manager who still is one."

    def has_permission(self, request, view):
        token = request.auth
        return isinstance(token, ApiToken) and getattr(token, "effective_role", None) == ApiToken.Role.MANAGER
