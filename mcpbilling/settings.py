"""Settings, all read from the environment (README lists every variable).

The embedded default (no variables set) is SQLite, the filesystem Celery
broker, the local-memory cache and the built-in Stripe emulator. With
``DJANGO_ENV=production`` the process refuses to start without its secrets.
"""

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# The embedded default's state: broker folders, beat's schedule, the emulator's state, the demo key.
RUN_DIR = Path(env.str("RUN_DIR", default=str(BASE_DIR / ".run")))

PRODUCTION = env.str("DJANGO_ENV", default="development") == "production"
DEBUG = env.bool("DEBUG", default=not PRODUCTION)

if PRODUCTION:
    # No defaults: a missing secret stops the process at start-up.
    SECRET_KEY = env.str("SECRET_KEY")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="insecure-development-key-do-not-use-in-production")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The public address of this service, for links sent to customers (action_url).
SITE_URL = env.str("SITE_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "djstripe",
    "allauth",
    "allauth.account",
    "django_bootstrap5",
    "bootstrap",  # Bootstrap's CSS and JS, served from our static files (ADR 0030)
    "mcpbilling.apps.McpBillingConfig",
    "customers",
    "billing",
    "webhooks",
    "mcpbilling.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # Idempotency-Key on POSTs to /api/v1/ (after authentication: keys are per operator).
    "mcpbilling.api.idempotency.IdempotencyMiddleware",
]

ROOT_URLCONF = "mcpbilling.urls"
WSGI_APPLICATION = "mcpbilling.wsgi.application"
ASGI_APPLICATION = "mcpbilling.asgi.application"

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

# --- Database -------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers queue on the busy timeout instead of failing with "database is
    # locked"; IMMEDIATE takes the write lock at BEGIN, so a transaction that
    # reads then writes cannot be refused half-way.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_BUSY_TIMEOUT_S", default=30),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory: tests share it across threads, and --reuse-db keeps it.
    DATABASES["default"]["TEST"] = {"NAME": str(RUN_DIR / "test.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The charge engine prepares its statements once per PostgreSQL session; turn off
# behind a pooler that shares sessions between clients (PgBouncer's transaction mode).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
# On PostgreSQL the gateway sends a call's authorise and settle from its event loop,
# on sessions of its own (at most this many per server process), instead of from
# worker threads through Django's connections (docs/decisions/0009).
GATEWAY_DB_ON_LOOP = env.bool("GATEWAY_DB_ON_LOOP", default=True)
GATEWAY_DB_LOOP_SESSIONS = env.int("GATEWAY_DB_LOOP_SESSIONS", default=10)
# Group commit (docs/decisions/0011): the settles of calls that finish while another
# settle is in flight go to PostgreSQL together, as one string with one commit.
GATEWAY_GROUP_COMMIT = env.bool("GATEWAY_GROUP_COMMIT", default=True)
# Spare holds (docs/decisions/0010): how many more holds a call's authorisation reserves
# for the next calls of the same key and tool (0: off), and how long unused ones stay.
GATEWAY_SPARE_HOLDS = env.int("GATEWAY_SPARE_HOLDS", default=16)
GATEWAY_SPARE_HOLD_IDLE_S = env.float("GATEWAY_SPARE_HOLD_IDLE_S", default=2.0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (API-key lookups, rate limits) ---------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "mcpb",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The gateway's Redis connections per server process (rate limits); a call waits up to
# REDIS_POOL_TIMEOUT_S for a free one when all are busy.
REDIS_MAX_CONNECTIONS = env.int("REDIS_MAX_CONNECTIONS", default=50)
REDIS_POOL_TIMEOUT_S = env.float("REDIS_POOL_TIMEOUT_S", default=10.0)

# How long a stopping server lets the calls in flight finish (then they are cancelled,
# and released); `manage.py serve` passes it to uvicorn's --timeout-graceful-shutdown.
SHUTDOWN_GRACE_S = env.int("SHUTDOWN_GRACE_S", default=30)

# --- Celery ----------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = RUN_DIR / "celery" / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(RUN_DIR / "celery" / "processed"),
        "control_folder": str(RUN_DIR / "celery" / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULE_FILENAME = str(RUN_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "release-stale-holds": {"task": "billing.tasks.release_stale_holds", "schedule": 60.0},
    "expire-credits": {"task": "billing.tasks.expire_credits", "schedule": 300.0},
    # Due collections and top-ups are started, then the outbox is sent to Stripe.
    "outbox-dispatch": {"task": "billing.tasks.outbox_dispatch", "schedule": 10.0},
    "reconcile-meters": {"task": "billing.tasks.reconcile_meters", "schedule": 3600.0},
    "stripe-events-sweep": {"task": "webhooks.tasks.events_sweep_task", "schedule": 60.0},
    "api-idempotency-purge": {"task": "api.tasks.idempotency_purge", "schedule": 3600.0},
}

# --- Stripe ----------------------------------------------------------------
# Without a secret key the product talks to its own Stripe emulator.
STRIPE_EMULATOR_PORT = env.int("STRIPE_EMULATOR_PORT", default=12111)
if PRODUCTION:
    STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY")
else:
    STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_EMULATED = not STRIPE_SECRET_KEY
if STRIPE_EMULATED:
    STRIPE_SECRET_KEY = "sk_test_emulator0000000000000000000000"  # dj-stripe wants 24+ chars
    STRIPE_PUBLISHABLE_KEY = STRIPE_PUBLISHABLE_KEY or "pk_test_emulator"
    STRIPE_API_HOST = env.str("STRIPE_API_HOST", default=f"http://127.0.0.1:{STRIPE_EMULATOR_PORT}")
elif env.str("STRIPE_API_HOST", default=""):
    STRIPE_API_HOST = env.str("STRIPE_API_HOST")
STRIPE_LIVE_MODE = STRIPE_SECRET_KEY.startswith(("sk_live_", "rk_live_"))
if STRIPE_LIVE_MODE:
    STRIPE_LIVE_SECRET_KEY = STRIPE_SECRET_KEY
else:
    STRIPE_TEST_SECRET_KEY = STRIPE_SECRET_KEY
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
STRIPE_TIMEOUT_S = env.float("STRIPE_TIMEOUT_S", default=10.0)

# --- Billing ---------------------------------------------------------------
BILLING_DEFAULT_CURRENCY = env.str("BILLING_DEFAULT_CURRENCY", default="usd")
# A hold not settled within this time (a crashed worker) is released by beat.
BILLING_HOLD_TTL_S = env.int("BILLING_HOLD_TTL_S", default=900)

# --- Customer accounts (django-allauth, ADR 0031) ----------------------------
# Customers sign up and in with their email; the address is verified before the
# first sign-in. Sign-up creates the billing customer on BILLING_SIGNUP_PLAN.
ACCOUNT_ADAPTER = "billing.accounts.AccountAdapter"
ACCOUNT_FORMS = {"signup": "billing.accounts.SignupForm"}
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_REDIRECT_URL = "/"
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[MCP Billing] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = SITE_URL.partition("://")[0] or "http"
# Sign-in attempts that fail are limited per address and per email (allauth's own
# limits, kept in the cache: Redis in production). Its other limits keep their defaults.
ACCOUNT_RATE_LIMITS = {
    "login_failed": env.str("ACCOUNT_LOGIN_FAILED_RATE", default="10/m/ip,5/5m/key"),
}
BILLING_SIGNUP_PLAN = env.str("BILLING_SIGNUP_PLAN", default="free")

BOOTSTRAP5 = {
    # Never the CDN: the layout links the files from static/ (ADR 0030).
    "css_url": None,
    "javascript_url": None,
    "set_placeholder": False,
    "field_renderers": {"default": "mcpbilling.form_rendering.FieldRenderer"},
}

# --- Mail ------------------------------------------------------------------
# EMAIL_URL: smtp://user:password@host:587 (or smtp+tls://, smtp+ssl://). The embedded
# default prints each mail (sign-up verification, password reset) to the console.
if PRODUCTION:
    _email = env.email_url("EMAIL_URL")
else:
    _email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
for _name in ("HOST", "PORT", "HOST_USER", "HOST_PASSWORD", "USE_TLS", "USE_SSL", "TIMEOUT"):
    if _email.get(f"EMAIL_{_name}") is not None:
        globals()[f"EMAIL_{_name}"] = _email[f"EMAIL_{_name}"]
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="MCP Billing <billing@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- REST API (docs/decisions/0020) ---------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["mcpbilling.api.permissions.OperatorPermissions"],
    "DEFAULT_PARSER_CLASSES": ["mcpbilling.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "mcpbilling.api.schema.ApiSchema",
    "EXCEPTION_HANDLER": "mcpbilling.api.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "mcpbilling.api.pagination.CursorPage",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "PAGE_SIZE": 50,
    # Ids are strings in the API; money is a *_decimal string of cents.
    "COERCE_DECIMAL_TO_STRING": True,
    "DATETIME_FORMAT": "iso-8601",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MCP Billing operator API",
    "DESCRIPTION": (
        "Run the business from code: customers, API keys, credits, usage, plans, tools and "
        "prices, upstream MCP servers, Stripe's subscriptions, invoices and payments, webhook "
        "events and the outbox. Authenticate with `Authorization: Token <operator token>` "
        "(`python manage.py operator_token NAME`). Ids are strings, money is a `*_decimal` "
        "string of cents, credits are integers, times are ISO 8601 in UTC. Every error is "
        '`{"error": {"code", "message", "fields"?}}`; every list is a cursor page '
        '`{"results", "next", "previous"}`; every POST takes an `Idempotency-Key`.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["mcpbilling.api.permissions.StaffOnly"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": False,
    "ENUM_NAME_OVERRIDES": {},
    "PATH_CONVERTER_OVERRIDE": {
        "id": {"type": "string", "pattern": "^[0-9]{1,18}$"},
        "stripe_id": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,255}$"},
    },
    # Swagger UI and Redoc are served from this project (drf-spectacular-sidecar), no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# How long an Idempotency-Key and its answer are kept, hours (at least 24).
API_IDEMPOTENCY_TTL_H = max(env.int("API_IDEMPOTENCY_TTL_H", default=24), 24)

# --- Auth, i18n, static ----------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",  # the admin's usernames
    "allauth.account.auth_backends.AuthenticationBackend",  # customers sign in by email
]
LOGIN_URL = "account_login"
CSRF_FAILURE_VIEW = "mcpbilling.error_pages.csrf_failure"
LOGIN_REDIRECT_URL = "/dashboard/"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# The source tree's static/; an installed wheel carries it as mcpbilling/static/ instead
# (found there as an app's static files: see setup.py).
STATICFILES_DIRS = [path for path in [BASE_DIR / "static"] if path.is_dir()]
# Where collectstatic gathers files for production; development serves them
# from the apps directly (WhiteNoise's finders), so it needs none.
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")) if PRODUCTION else None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Gateway (MCP endpoint) --------------------------------------------------
# Host and Origin headers accepted at /mcp (DNS-rebinding protection; a bad
# Origin gets 403). "name:*" accepts any port. The defaults cover SITE_URL and
# loopback.
_SITE_ORIGIN = "/".join(SITE_URL.split("/", 3)[:3])  # scheme://host[:port]
_SITE_HOST = _SITE_ORIGIN.partition("://")[2]
MCP_ALLOWED_HOSTS = env.list(
    "MCP_ALLOWED_HOSTS",
    default=[_SITE_HOST, "127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]:*"],
)
MCP_ALLOWED_ORIGINS = env.list(
    "MCP_ALLOWED_ORIGINS",
    default=[_SITE_ORIGIN, "http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
)
# Modules whose @tool functions the gateway serves (imported at start-up).
MCP_TOOL_MODULES = env.list(
    "MCP_TOOL_MODULES",
    default=[
        "mcpbilling.gateway.tools.calculate",
        "mcpbilling.gateway.tools.units",
        "mcpbilling.gateway.tools.text",
        "mcpbilling.gateway.tools.data",
        "mcpbilling.gateway.tools.dates",
    ],
)
# Commands a stdio upstream server may run when it is set up through the REST API
# (anything through the admin). Empty: stdio servers are set up in the admin only.
MCP_UPSTREAM_STDIO_COMMANDS = env.list("MCP_UPSTREAM_STDIO_COMMANDS", default=[])
# "${NAME}" in an upstream server's configuration reads only variables with this prefix.
MCP_UPSTREAM_ENV_PREFIX = env.str("MCP_UPSTREAM_ENV_PREFIX", default="UPSTREAM_")
# Python tools run in this many worker processes per server process (a tool that holds
# the CPU cannot stall the server; at its timeout the worker is killed and replaced),
# each allowed this much more memory than the loaded tools use (0: no limit).
MCP_TOOL_WORKERS = env.int("MCP_TOOL_WORKERS", default=max(2, os.cpu_count() or 1))
MCP_TOOL_MEMORY_MB = env.int("MCP_TOOL_MEMORY_MB", default=512)
# Create Tool rows (and first prices) for the registered Python tools at start-up.
MCP_SYNC_TOOLS_ON_STARTUP = env.bool("MCP_SYNC_TOOLS_ON_STARTUP", default=True)
# Largest accepted request body at /mcp, bytes (larger: 413).
MCP_MAX_BODY_BYTES = env.int("MCP_MAX_BODY_BYTES", default=256 * 1024)
# How long the gateway keeps its snapshot of tools and active prices, seconds.
MCP_CATALOG_TTL_S = env.float("MCP_CATALOG_TTL_S", default=5.0)
# API-key lookups are cached this long (at most 60: a revoked key stops within a minute),
# customers and their plans this long (status and plan changes apply within it).
API_KEY_CACHE_TTL_S = min(env.int("API_KEY_CACHE_TTL_S", default=30), 60)
CUSTOMER_CACHE_TTL_S = env.int("CUSTOMER_CACHE_TTL_S", default=5)
# JWTs issued by the operator: accepted when JWT_ISSUER and a key are set.
# `sub` names the customer (its id, or its email); `aud`, `iss` and `exp` are required.
JWT_ISSUER = env.str("JWT_ISSUER", default="")
JWT_AUDIENCE = env.str("JWT_AUDIENCE", default=f"{SITE_URL.rstrip('/')}/mcp")
JWT_HS256_SECRET = env.str("JWT_HS256_SECRET", default="")
# PEM; "\n" escapes are accepted so the key fits in one environment line.
JWT_RS256_PUBLIC_KEY = env.str("JWT_RS256_PUBLIC_KEY", default="").replace("\\n", "\n")
# Accepted algorithms; only HS256 and RS256 are ever honoured.
JWT_ALGORITHMS = env.list("JWT_ALGORITHMS", default=["HS256", "RS256"])
JWT_LEEWAY_S = env.int("JWT_LEEWAY_S", default=0)

# --- Webhooks ----------------------------------------------------------------
# The plan a customer returns to when their subscription ends (blank: no plan).
BILLING_FALLBACK_PLAN = env.str("BILLING_FALLBACK_PLAN", default="free")

# --- Metering (the outbox to Stripe, meter reconciliation, collection) -------
# Stripe requests per second from one process (Stripe: live 100/s, sandbox 25/s).
STRIPE_RATE_LIMIT_PER_S = env.float(
    "STRIPE_RATE_LIMIT_PER_S", default=90.0 if STRIPE_LIVE_MODE else 20.0
)
# Outbox rows claimed per batch; a claim leases them for OUTBOX_LEASE_S seconds.
OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=100)
OUTBOX_LEASE_S = env.int("OUTBOX_LEASE_S", default=300)
# A row that failed this many times is dead (shown in the admin for an operator).
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=20)
# Retries back off exponentially from the base to the cap, seconds (Retry-After wins).
OUTBOX_BACKOFF_BASE_S = env.float("OUTBOX_BACKOFF_BASE_S", default=2.0)
OUTBOX_BACKOFF_MAX_S = env.float("OUTBOX_BACKOFF_MAX_S", default=3600.0)
# How long a row waits for its customer's Stripe customer before looking again, seconds.
OUTBOX_WAIT_S = env.int("OUTBOX_WAIT_S", default=60)
# One beat tick sends for at most this long, seconds (under the task's soft time limit).
OUTBOX_RUN_BUDGET_S = env.float("OUTBOX_RUN_BUDGET_S", default=120.0)
# Whole hours before the current one compared with Stripe's meter summaries each run.
METERING_RECONCILE_HOURS = env.int("METERING_RECONCILE_HOURS", default=3)
# stripe-python logs every request at INFO; the outbox makes thousands of them.
LOGGING["loggers"]["stripe"] = {"level": env.str("STRIPE_LOG_LEVEL", default="WARNING")}
