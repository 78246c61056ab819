"""Settings for the test suite (pytest-django uses these; see pyproject.toml)."""

import os

# settings.py refuses to start without SECRET_KEY when DEBUG is off: give tests a fixed one.
if not os.environ.get("SECRET_KEY"):
    os.environ["SECRET_KEY"] = "test-only-not-secret"

from .settings import *  # noqa: E402,F403

DEBUG = False

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Run django-q2 tasks inline, in the caller's thread, instead of queueing them.
Q_CLUSTER["sync"] = True  # noqa: F405

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Several test runs against one server at once (e.g. two developers' checkouts) each need their own
# test database: SETTLE_TEST_DB_NAME names it (default: Django's "test_<name>").
if os.environ.get("SETTLE_TEST_DB_NAME"):
    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ["SETTLE_TEST_DB_NAME"]  # noqa: F405
