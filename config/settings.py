"""Settings for settle: everything lives here and is driven by environment variables.

See README.md ("Configuration") for the list of variables. bin/run and bin/test set
DATABASE_URL for you (a private PostgreSQL started by scripts/devdb.py).
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


# --- Core -----------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", default=False)

SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (set SECRET_KEY in the environment, "
            "or DEBUG=1 for local development)."
        )
    SECRET_KEY = "django-insecure-settle-dev-only-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / Redoc assets served from here, not a CDN
    "django_q",
    "axes",  # login throttling (section "Login throttling" below)
    "simple_history",
    # the one-way stack, bottom to top (docs/architecture.md): each app imports only those above it here
    "ledger",        # the books kernel
    "credits",       # credits and everything done with them, the nightly application
    "remittances",   # X12 835 files: reading (remittances/x12, pure Python), receiving, posting, the queue
    "adjudication",  # credit-balance cases
    "reports",       # audits, reconciliation, measures, exports (the managers' reports)
    # interfaces on top: nothing below imports them
    "api",           # the REST API for other systems
    "backoffice",    # the Django admin back-office for billing staff and managers
    "portal",        # patients' own pages: accounts, balances, payments, refunds, notices, guest pay
]

MIDDLEWARE = [
    # every error under /api/ in the JSON shape, also what escapes DRF (a 404 no route matches, an exception
    # after the view or in a middleware, a database outage): first, so it sees everything (api/middleware.py)
    "api.middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.PortalSecurityMiddleware",  # /portal/: CSP without inline code, no-store, the idle timeout
    "simple_history.middleware.HistoryRequestMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as axes asks: it answers a lockout
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# --- Database -------------------------------------------------------------------------

DATABASE_URL = env("DATABASE_URL")
if not DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Use bin/run or bin/test (they start a private PostgreSQL "
        "and set it for you), or set DATABASE_URL yourself, e.g. "
        "postgres://user:password@localhost:5432/settle"
    )

DATABASES = {
    # CONN_MAX_AGE=0: one connection per request; safe with threads, qcluster and tests.
    # ATOMIC_REQUESTS off: services own their transactions (durable, outermost).
    "default": {**dj_database_url.parse(DATABASE_URL, conn_max_age=0), "ATOMIC_REQUESTS": False},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- I18N / time ----------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "static"

# Uploaded and generated files (case documents, patient notices, due-diligence letters): private,
# never served as static files; the back-office and the API hand them out to those allowed to see
# the case. SETTLE_MEDIA_ROOT puts them on a shared volume when several machines serve settle.
MEDIA_ROOT = Path(os.environ.get("SETTLE_MEDIA_ROOT", BASE_DIR / ".local" / "media"))

# E-mail (patient notices): the console in development, SMTP when EMAIL_HOST is set.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = os.environ.get("EMAIL_USE_TLS", "1") == "1"
EMAIL_BACKEND = ("django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
                 else "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "billing@settle.invalid")

# --- Background jobs (django-q2, ORM broker) ------------------------------------------

Q_CLUSTER = {
    "name": "settle",
    "orm": "default",
    "workers": 2,
    "timeout": 600,
    "retry": 1200,  # must be larger than timeout
    "max_attempts": 1,
    "catch_up": False,
}

# --- Logging --------------------------------------------------------------------------

LOG_LEVEL = env("LOG_LEVEL", "INFO")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}

# --- settle ---------------------------------------------------------------------------

# Dotted path of the card processor class used for refunds to cards.
SETTLE_CARD_PROCESSOR = env("SETTLE_CARD_PROCESSOR", "ledger.processors.SandboxProcessor")

# Credit CSV imports (credits/csv_import.py): the most lines of credits one file may hold and its
# largest size; a file beyond either is refused at once, with nothing written.
SETTLE_CSV_IMPORT_MAX_ROWS = int(env("SETTLE_CSV_IMPORT_MAX_ROWS", "100000"))
SETTLE_CSV_IMPORT_MAX_BYTES = int(env("SETTLE_CSV_IMPORT_MAX_BYTES", str(50 * 1024 * 1024)))

# Case documents (adjudication/documents.py): the largest file staff may attach to a case.
SETTLE_CASE_DOCUMENT_MAX_BYTES = int(env("SETTLE_CASE_DOCUMENT_MAX_BYTES", str(10 * 1024 * 1024)))
# Export files (reports/exports) are temporary: the retention job removes them after this many days.
SETTLE_EXPORT_KEEP_DAYS = int(env("SETTLE_EXPORT_KEEP_DAYS", "30"))

# --- REST API (issue 6; api/, docs/api.md) ----------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "api.schema.SettleAutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.ApiTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.HasApiToken"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.TokenRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.IdCursorPagination",
    "DEFAULT_PARSER_CLASSES": ["api.parsers.DecimalJSONParser"],  # uploads: multipart on their view
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "api.exceptions.error_response",
    "COERCE_DECIMAL_TO_STRING": True,  # money leaves as "50.00", never as a JSON number
    "PAGE_SIZE": 50,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "settle API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "Patient balances, payments, credits, refunds, 835 remittances and the nightly application of one "
        "practice. Authenticate with `Authorization: Bearer <token>`; send `Idempotency-Key` on every POST; "
        "money is a decimal string (\"50.00\"). Guide: docs/api.md."
    ),
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "MedicarePartEnum": "ledger.models.MEDICARE_PARTS",
        "CreditStateEnum": "credits.models.Credit.State",
        "ClaimStateEnum": "ledger.models.Claim.State",
        "RefundStateEnum": "credits.models.Refund.State",
        "RemittanceClaimStateEnum": "remittances.models.RemittanceClaim.State",
        "RemittanceFileStatusEnum": "remittances.models.RemittanceFile.Status",
        "NightlyRunStatusEnum": "credits.models.NightlyRun.Status",
        "ManualCreditStateEnum": "credits.models.ManualCreditRequest.State",
        "CreditImportStateEnum": "credits.models.CreditImport.State",
        # adjudication (api/serializers_adjudication.py)
        "CaseStateEnum": "adjudication.models.Case.State",
        "CaseKindEnum": "adjudication.models.Case.Kind",
        "CaseOutcomeEnum": "adjudication.models.Case.Outcome",
        "CaseEventKindEnum": "adjudication.models.CaseEvent.Kind",
        "ProposalKindEnum": "adjudication.models.Proposal.Kind",
        "ProposalStateEnum": "adjudication.models.Proposal.State",
        "ClockRuleKindEnum": "adjudication.models.ClockRule.Kind",
        "PayerContactChannelEnum": "adjudication.models.PayerContact.Channel",
        "ChannelEnum": "ledger.models.Payment.Channel",  # the payments' name, kept beside the payer contacts'
    },
}

# Requests per token (DRF rate syntax, e.g. 600/minute, 20/second). Counted in the default cache.
SETTLE_API_RATE = env("SETTLE_API_RATE", "600/minute")
# How long a POST waits for another request with the same Idempotency-Key to finish (seconds).
SETTLE_API_IDEMPOTENCY_WAIT = float(env("SETTLE_API_IDEMPOTENCY_WAIT", "10"))

# --- REST API: limits and failures (issue 9; docs/api.md "Errors", "Idempotency-Key") ---------------

# A JSON body over this many bytes is refused with 413 (before it is read, from its Content-Length).
SETTLE_API_MAX_JSON_BYTES = int(env("SETTLE_API_MAX_JSON_BYTES", str(1024 * 1024)))
# An 835 upload (POST /api/v1/remittance-files) over this many bytes is refused with 413.
SETTLE_API_MAX_835_BYTES = int(env("SETTLE_API_MAX_835_BYTES", str(100 * 1024 * 1024)))
# Seconds an Idempotency-Key stays claimed by a request that stopped renewing it (it died): then a
# retry with the key runs. A running request renews its claim every third of this.
SETTLE_API_IDEMPOTENCY_LEASE = float(env("SETTLE_API_IDEMPOTENCY_LEASE", "60"))

# --- Login throttling (issue 9; django-axes; backoffice/login.py, docs/operations.md) -----------------

# Every login through django.contrib.auth.authenticate(request, ...) is counted: the admin's now, the
# patient portal's later (AXES_ONLY_ADMIN_SITE stays off). After SETTLE_LOGIN_FAILURE_LIMIT failures
# for one username from one address, that pair is locked for SETTLE_LOGIN_LOCKOUT_MINUTES (each
# further try restarts the clock); the right password is refused meanwhile. API tokens and
# client.force_login in tests never go through authenticate(), so they are not counted.
from datetime import timedelta  # noqa: E402

# AxesStandaloneBackend first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(env("SETTLE_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(env("SETTLE_LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]  # a pair: an attacker cannot lock a person out everywhere
AXES_RESET_ON_SUCCESS = True  # a successful login forgets that pair's earlier failures
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # every failure kept (axes' AccessFailureLog), successes in AccessLog
AXES_LOCKOUT_CALLABLE = "backoffice.login.lockout_response"  # logs the refusal, answers 429 with the lockout page
# Behind a reverse proxy, the client's address comes from X-Forwarded-For: set how many proxies are trusted.
if env("SETTLE_LOGIN_PROXY_COUNT"):
    AXES_IPWARE_PROXY_COUNT = int(env("SETTLE_LOGIN_PROXY_COUNT"))
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]

# --- The patient portal (issue 13; portal/, docs/portal.md) ------------------------------------------

# The address patients reach settle at: the invitation and password-reset e-mails link there.
SETTLE_SITE_URL = env("SETTLE_SITE_URL", "http://127.0.0.1:8000")
# An invitation or password-reset link works once, for this many hours.
PASSWORD_RESET_TIMEOUT = int(env("SETTLE_PORTAL_LINK_HOURS", "72")) * 3600
# A portal session ends after this many idle minutes, and in any case this many hours after sign-in.
SETTLE_PORTAL_IDLE_MINUTES = int(env("SETTLE_PORTAL_IDLE_MINUTES", "15"))
SETTLE_PORTAL_SESSION_HOURS = int(env("SETTLE_PORTAL_SESSION_HOURS", "8"))
# The one-time sign-in code (a practice setting turns it on): valid this many minutes, this many tries.
SETTLE_PORTAL_CODE_MINUTES = int(env("SETTLE_PORTAL_CODE_MINUTES", "10"))
SETTLE_PORTAL_CODE_ATTEMPTS = int(env("SETTLE_PORTAL_CODE_ATTEMPTS", "5"))
# Guest pay: wrong dates of birth in a row that lock a statement, and for how long (example P); and
# how many guest-pay tries one address may make per lockout period, whatever the codes.
SETTLE_GUEST_PAY_FAILURE_LIMIT = int(env("SETTLE_GUEST_PAY_FAILURE_LIMIT", "5"))
SETTLE_GUEST_PAY_LOCKOUT_MINUTES = int(env("SETTLE_GUEST_PAY_LOCKOUT_MINUTES", "15"))
SETTLE_GUEST_PAY_TRIES_PER_ADDRESS = int(env("SETTLE_GUEST_PAY_TRIES_PER_ADDRESS", "20"))
