"""Rate limiting per token: settings.SETTLE_API_RATE (env SETTLE_API_RATE, default 600/minute).
Counts live in Django's default cache: configure a shared cache (e.g. Redis) when several
processes serve the API, or each process counts on its own."""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from api.models import ApiToken


class TokenRateThrottle(SimpleRateThrottle):
    scope = "token"
    cache_format = "settle-api-throttle-%(ident)s"

    def get_rate(self):
        # read on every request (not at import) so the setting can change without a restart of tests
        return getattr(settings, "SETTLE_API_RATE", "600/minute") or None

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiToken):
            return None  # unauthenticated requests are refused before anything runs
        return self.cache_format % {"ident": request.auth.pk}
