"""Security headers of the portal's pages (issue 13, docs/portal.md "Security"): a
Content-Security-Policy with no inline script or style (the pages have none: the practice's colour
comes from /portal/brand/<id>.css), no framing, no caching of pages that carry patient data, no
referrer leaving the site. The rest of the site is unchanged (the admin's own CSP is issue 14)."""

from django.utils.cache import add_never_cache_headers

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


class PortalSecurityMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith("/portal/"):
            response.setdefault("Content-Security-Policy", CSP)
            response["X-Frame-Options"] = "DENY"
            response["Referrer-Policy"] = "same-origin"
            response["X-Content-Type-Options"] = "nosniff"
            response["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=(self)"
            if not request.path.startswith("/portal/brand/"):
                add_never_cache_headers(response)  # Cache-Control: no-store (patient data)
        return response
