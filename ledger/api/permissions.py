"""Who may call what: any valid token of a practice; some actions need a manager's token."""

from rest_framework.permissions import BasePermission

from ledger.api_models import ApiToken


class HasApiToken(BasePermission):
    message = "An API token is required (Authorization: Bearer <token>)."

    def has_permission(self, request, view):
        return isinstance(request.auth, ApiToken) and request.auth.revoked_at is None


class IsManagerToken(BasePermission):
    message = "This action needs a token with the manager role."

    def has_permission(self, request, view):
        return isinstance(request.auth, ApiToken) and request.auth.role == ApiToken.Role.MANAGER
