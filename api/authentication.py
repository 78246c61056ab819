"""`Authorization: Bearer <token>`. `request.auth` is the ApiToken, whose practice scopes
everything; the request's user (the acting user for services and history) is the person the token
acts for, or an integration token's own user (api/models.py). What the token may do is
checked on every request (`token_power`): a revoked token, or one whose person was removed from the
practice or deactivated, is a 401; a person demoted to billing makes their manager token a billing
one (`request.auth.effective_role`)."""

import logging
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from api.models import ApiToken
from api.tokens import api_token_find, token_power
from ledger.errors import PermissionDenied

log = logging.getLogger("api")

LAST_USED_PRECISION = timedelta(minutes=1)  # write last_used_at at most once a minute per token


class ApiTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token is not valid.") from None
        token = api_token_find(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("The token is not valid.")
        try:
            actor, token.effective_role = token_power(token)
        except PermissionDenied as exc:
            raise exceptions.AuthenticationFailed(exc.message) from None
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        if request.method not in ("GET", "HEAD", "OPTIONS"):  # which token acted for whom, next to the history
            log.info("API %s %s: token %s (%s) acting for %s as %s", request.method, request.path, token.prefix,
                     token.name, actor.get_username(), token.effective_role)
        return actor, token

    def authenticate_header(self, request):
        # a 401 (not 403) with WWW-Authenticate when the token is missing or wrong
        return f'{self.keyword} realm="settle"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "stl_<prefix>_<secret>",
                "description": "An API token of one practice (`manage.py create_api_token`)."}
