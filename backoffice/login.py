"""Login throttling (issue 9) with django-axes: settings in config/settings.py ("Login throttling").

axes counts every failed `authenticate(request, ...)` per username and client address; past the
limit that pair is locked for the cool-off, and the right password is refused meanwhile. This is
what a locked-out login gets instead of the login form: a log line and a clear page (429, with
Retry-After). The admin login and the patient portal's sign-in (portal/views_account.py) go through
the same authenticate() and share it; the portal's page is its own (`LOCKOUT_TEMPLATES`).

Unlock by hand: `manage.py axes_reset_username USERNAME` (or axes_reset_ip / axes_reset); the
attempts, failures and successful logins are in the admin under "Axes"."""

import logging
import math

from axes.helpers import get_client_ip_address, get_client_username, get_cool_off, get_failure_limit
from django.conf import settings
from django.contrib import admin
from django.shortcuts import render
from django.utils import timezone

log = logging.getLogger("backoffice.login")

LOCKOUT_TEMPLATES = [("/admin/", "admin/locked_out.html"),  # (path prefix, template); the first match wins
                     ("/portal/", "portal/account/locked_out.html")]  # the portal's own page, no admin context
DEFAULT_TEMPLATE = "admin/locked_out.html"


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the answer to a login attempt while its username and address are locked."""
    username = get_client_username(request, credentials) or ""
    address = getattr(request, "axes_ip_address", None) or get_client_ip_address(request)
    cool_off = get_cool_off(request)
    limit = get_failure_limit(request, credentials)
    log.warning("login refused: %r from %s is locked out after %s failed attempts (for %s from this attempt)",
                username, address, limit, cool_off)
    template = next((t for prefix, t in LOCKOUT_TEMPLATES if request.path.startswith(prefix)), DEFAULT_TEMPLATE)
    context = {"username": username, "failure_limit": limit, "cool_off": cool_off,
               "cool_off_minutes": math.ceil(cool_off.total_seconds() / 60) if cool_off else None,
               "unlocked_at": timezone.now() + cool_off if cool_off else None, "title": "Too many failed logins"}
    if request.path.startswith("/admin/"):
        context = {**admin.site.each_context(request), **context}
    response = render(request, template, context, status=settings.AXES_HTTP_RESPONSE_CODE)
    if cool_off:
        response["Retry-After"] = str(math.ceil(cool_off.total_seconds()))
    return response
