"""One settings module, read from the environment.

Every value has a safe default for the embedded mode (SQLite, in-memory Celery broker with an
in-process worker). Production sets the variables listed in README.md; `environs` parses them
and fails loudly on a malformed value instead of silently falling back.
"""

import os
from pathlib import Path

from environs import Env

BASE_DIR = Path(__file__).resolve().parent.parent

env = Env()
env.read_env(str(BASE_DIR / ".env"), recurse=False)

DEBUG = env.bool("DEBUG", True)
_DEV_SECRET = "dev-insecure-secret-key-change-me"
SECRET_KEY = env.str("SECRET_KEY", _DEV_SECRET)
# Production (DJANGO_ENV=production) must never run with debug on or the dev secret.
PRODUCTION = env.str("DJANGO_ENV", "development") == "production"
if PRODUCTION and (DEBUG or SECRET_KEY == _DEV_SECRET):
    raise RuntimeError("DJANGO_ENV=production needs DEBUG=false and a SECRET_KEY of your own")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # The layers, each importing only those above it in this list; localrun (demo, serve) sits on top.
    "smatch",
    "ocpi",
    "flexibility",
    "settlement",
    "localrun",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "smatch.urls"
WSGI_APPLICATION = "smatch.wsgi.application"
ASGI_APPLICATION = "smatch.asgi.application"

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

DATABASES = {
    "default": env.dj_db_url("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'smatch.sqlite3'}"),
}
# dj_db_url sets CONN_MAX_AGE=0 itself: assign, not setdefault. A new PostgreSQL connection per
# request (a backend fork) cost more than the request itself: profiled at ~60 % of a result POST.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # a connection dropped by the server is replaced, not an error
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    (BASE_DIR / "var").mkdir(exist_ok=True)
    # Several threads (web, in-process worker, simulator callbacks) share the file: WAL lets
    # readers run beside the writer, IMMEDIATE avoids lock-upgrade deadlocks between writers.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=30, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

# Static files (H8) -------------------------------------------------------------------------
# The web server is given no static routes: WhiteNoise answers /static/ from STATIC_ROOT (filled by
# `manage.py collectstatic`, as the Dockerfile does), so admin, console and API docs keep their
# CSS and JS in production. Under runserver (DEBUG) it finds the apps' files directly.
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", BASE_DIR / "var" / "static")
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                  "whitenoise.middleware.WhiteNoiseMiddleware")
# Compressed copies without hashed names: a process started without collectstatic (tests, benches)
# still renders every page instead of failing on a missing manifest entry.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
if not PRODUCTION:
    # A checkout has no collectstatic output: an empty folder spares WhiteNoise's "No directory"
    # warning on every start. Production keeps the warning: there it means collectstatic was forgotten.
    try:
        STATIC_ROOT.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass

# OCPI bodies are small; anything bigger is refused before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)

# --- Celery -------------------------------------------------------------------------------
# Unset broker = embedded mode: in-memory broker, worker thread inside the running process.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", "memory://")
CELERY_EMBEDDED = CELERY_BROKER_URL.startswith("memory://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", None) or None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis re-delivers unacked tasks after this; must exceed the longest countdown we schedule.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_S", 3600)}
if CELERY_EMBEDDED:  # the in-memory transport polls; the default second would add to every latency
    CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"] = 0.05

# --- Clock --------------------------------------------------------------------------------
# "system" (default), or "scaled:<sim start ISO>|<real start unix s>|<speed>" so that every
# process (web, worker, simulator) agrees on one simulated time.
SMATCH_CLOCK = env.str("SMATCH_CLOCK", "system")

# --- OCPI ---------------------------------------------------------------------------------
# Public base URL under which the CPO platform reaches our OCPI endpoints.
OCPI_BASE_URL = env.str("OCPI_BASE_URL", "http://127.0.0.1:8000/ocpi").rstrip("/")
OCPI_COUNTRY_CODE = env.str("OCPI_COUNTRY_CODE", "NL")
OCPI_PARTY_ID = env.str("OCPI_PARTY_ID", "SCS")
OCPI_BUSINESS_NAME = env.str("OCPI_BUSINESS_NAME", "SMATCH open SCSP")
OCPI_HTTP_TIMEOUT_S = env.float("OCPI_HTTP_TIMEOUT_S", 5.0)
OCPI_HTTP_POOL_SIZE = env.int("OCPI_HTTP_POOL_SIZE", 64)
OCPI_PULL_INTERVAL_S = env.int("OCPI_PULL_INTERVAL_S", 300)
OCPI_MAX_BODY_BYTES = env.int("OCPI_MAX_BODY_BYTES", 256 * 1024)

# --- OCPI inbound (H1) --------------------------------------------------------------------
# An incoming last_updated further than this ahead of our clock is refused (2001): one far-future
# update would otherwise freeze a session.
OCPI_MAX_FUTURE_S = env.int("OCPI_MAX_FUTURE_S", 300)
# Each pull starts this far before where the last one ended (the CPO's clock may lag ours; storing is
# idempotent, so overlap costs nothing but bandwidth).
OCPI_PULL_OVERLAP_S = env.int("OCPI_PULL_OVERLAP_S", 300)
OCPI_LOCATIONS_INTERVAL_S = env.int("OCPI_LOCATIONS_INTERVAL_S", 24 * 3600)  # Locations refresh (daily)
# A session not heard of (push or pull) for longer than this is skipped as stale.
OCPI_SESSION_STALE_AFTER_S = env.int("OCPI_SESSION_STALE_AFTER_S", 30 * 60)
OCPI_CLOCK_SKEW_WARN_S = env.float("OCPI_CLOCK_SKEW_WARN_S", 30.0)  # admin warns beyond this
# Failed credentials exchanges with one token A before it is locked (an operator reissues it).
OCPI_CREDENTIALS_MAX_FAILURES = env.int("OCPI_CREDENTIALS_MAX_FAILURES", 5)

# --- Flexibility (dispatch) ---------------------------------------------------------------
DISPATCH_THREADS = env.int("DISPATCH_THREADS", 64)  # concurrent OCPI calls per worker process
DISPATCH_CHUNK = env.int("DISPATCH_CHUNK", 2000)  # sessions per Celery send task
DISPATCH_MAX_RETRIES = env.int("DISPATCH_MAX_RETRIES", 6)  # transient failures only, bounded backoff
SWEEP_INTERVAL_S = env.float("SWEEP_INTERVAL_S", 10.0)  # overdue restores, policy relays, expiry

# --- Dispatch & outbound (H2) -------------------------------------------------------------
# Every call to another party: private/loopback/link-local targets only where allowed (on in
# development and for the bundled simulator, off in production); replies above the cap are cut.
OUTBOUND_ALLOW_PRIVATE = env.bool("OUTBOUND_ALLOW_PRIVATE", not PRODUCTION)
OUTBOUND_MAX_BYTES = env.int("OUTBOUND_MAX_BYTES", 8 * 1024 * 1024)
# Retries of transient failures and TOO_OFTEN: delay base * 2**(n-1), at most the cap, bounded count.
DISPATCH_RETRY_BASE_S = env.float("DISPATCH_RETRY_BASE_S", 2.0)
DISPATCH_RETRY_MAX_S = env.float("DISPATCH_RETRY_MAX_S", 60.0)
# A send task is stopped (soft) and killed (hard) after these: a slow party cannot hold a worker.
DISPATCH_SEND_SOFT_LIMIT_S = env.int("DISPATCH_SEND_SOFT_LIMIT_S", 120)
DISPATCH_SEND_HARD_LIMIT_S = env.int("DISPATCH_SEND_HARD_LIMIT_S", 150)
# Caps being sent hold a lease renewed every third of it while their sender lives; a lapsed lease
# tells the sweep the send died with its process (redone then, never on top of a live send).
DISPATCH_CLAIM_LEASE_S = env.float("DISPATCH_CLAIM_LEASE_S", 9.0)
# Delivery judged by measurement: a cap "responded" when the draw fell to limit + tolerance.
DELIVERY_TOLERANCE_A = env.float("DELIVERY_TOLERANCE_A", 1.5)
DELIVERY_TOLERANCE_KW = env.float("DELIVERY_TOLERANCE_KW", 0.5)
DELIVERY_GRACE_S = env.int("DELIVERY_GRACE_S", 120)  # states this soon after the cap start are not judged
DELIVERY_RESUME_WINDOW_S = env.int("DELIVERY_RESUME_WINDOW_S", 300)  # after restore + grace: did it resume?
# An EVSE that did not respond in N of its last M judged activations is flagged.
RESPONSIVENESS_FAILURES_N = env.int("RESPONSIVENESS_FAILURES_N", 2)
RESPONSIVENESS_WINDOW_M = env.int("RESPONSIVENESS_WINDOW_M", 3)
# Target-kW activations pick sessions until their expected shed (best estimate, x the EVSE's share of
# recent caps responded to) reaches target x (1 + margin): the margin covers caps refused, EVSEs not
# judged yet, and the estimate's own error.
TARGET_MARGIN = env.float("TARGET_MARGIN", 0.15)
# (A session drawing within DELIVERY_TOLERANCE_A / _KW of the cap is chosen last: flexibility/selection.py.)

# --- Settlement ---------------------------------------------------------------------------
# Where database-door settlement runs write their CSV / XLSX / PNG files (one folder per run).
SETTLEMENT_OUTPUT_DIR = env.path("SETTLEMENT_OUTPUT_DIR", BASE_DIR / "var" / "settlement")
# States are loaded this far around the activations, for the baseline before and the fit after.
SETTLEMENT_MARGIN_S = env.int("SETTLEMENT_MARGIN_S", 3600)
# Settlement (H6)
# Catch-up charging after a clear counted against an activation's value (net value), in minutes.
SETTLEMENT_REBOUND_WINDOW_MIN = env.int("SETTLEMENT_REBOUND_WINDOW_MIN", 60)
# A running settlement run whose worker has not renewed its heartbeat for this long is stale: the
# sweep (every SETTLEMENT_SWEEP_INTERVAL_S) re-queues it, or fails it after SETTLEMENT_MAX_ATTEMPTS starts.
SETTLEMENT_LEASE_S = env.int("SETTLEMENT_LEASE_S", 600)
SETTLEMENT_SWEEP_INTERVAL_S = env.int("SETTLEMENT_SWEEP_INTERVAL_S", 120)
SETTLEMENT_MAX_ATTEMPTS = env.int("SETTLEMENT_MAX_ATTEMPTS", 2)
# Processes that draw a settlement's activation charts while the tables are written (0: the writing
# process draws them). A prefork Celery worker always draws its own: its children may not have children.
SETTLEMENT_CHART_PROCESSES = env.int("SETTLEMENT_CHART_PROCESSES", min(4, os.cpu_count() or 1))
for _name, _least in (("SETTLEMENT_REBOUND_WINDOW_MIN", 0), ("SETTLEMENT_LEASE_S", 1),
                      ("SETTLEMENT_SWEEP_INTERVAL_S", 1), ("SETTLEMENT_MAX_ATTEMPTS", 1),
                      ("SETTLEMENT_CHART_PROCESSES", 0)):
    if globals()[_name] < _least:
        raise ValueError(f"{_name} must be at least {_least} (got {globals()[_name]})")

# --- Beat: every periodic task of every app, declared here once --------------------------------
CELERY_BEAT_SCHEDULE = {
    # Overdue restores, due policy relays, expiry, stalled sends (flexibility/tasks.py).
    "flexibility.sweep": {"task": "flexibility.sweep", "schedule": SWEEP_INTERVAL_S},
    # The sessions pull, a safety net next to the CPO's pushes (ocpi/tasks.py).
    "ocpi-pull-sessions": {"task": "ocpi_client.pull_sessions", "schedule": float(OCPI_PULL_INTERVAL_S)},
    # Each tick refreshes only the parties due (never pulled, or not for OCPI_LOCATIONS_INTERVAL_S).
    "ocpi-pull-locations": {"task": "ocpi_client.pull_locations", "schedule": float(OCPI_PULL_INTERVAL_S)},
    # Runs whose worker died are re-queued or failed (settlement/tasks.py).
    "settlement.sweep_stale_runs": {"task": "settlement.sweep_stale_runs", "schedule": SETTLEMENT_SWEEP_INTERVAL_S},
}

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    # Refusals answer {"code": ..., "detail": ...} (smatch/errors.py).
    "EXCEPTION_HANDLER": "smatch.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "brp": env.str("BRP_THROTTLE_RATE", "600/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SMATCH open SCSP API",
    "DESCRIPTION": "Imbalance signals from Balance Responsible Parties and their settlement.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

LOG_LEVEL = env.str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Security & deployment (H3) ---------------------------------------------------------------
# The variables, their production values and why: docs/security.md "Deployment".
# Django's own check (security.W009) wants 50 characters with at least 5 different ones.
SECRET_KEY_MIN_LENGTH = 50
if PRODUCTION and (len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH or len(set(SECRET_KEY)) < 5):
    raise RuntimeError(
        f"DJANGO_ENV=production needs a SECRET_KEY of at least {SECRET_KEY_MIN_LENGTH} characters "
        f"(this one has {len(SECRET_KEY)}); make one with: "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'")

# Rate limits are counted in this cache. Every web process must see the same counters (4 web
# workers would otherwise allow 4x the limit), so only the embedded mode, one process, keeps them in
# local memory. Default: the broker's Redis (keys are prefixed; never `cache.clear()` it, that would
# flush the broker's database too).
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
CACHE_URL = env.str("CACHE_URL", "") or (CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(_REDIS_SCHEMES) else "")
if CACHE_URL:
    CACHES = {"default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", "smatch"),
        # A Redis that does not answer costs a request 1 s at most (the throttle then lets it through).
        "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
    }}
elif CELERY_EMBEDDED:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "smatch"}}
else:
    raise RuntimeError(f"CELERY_BROKER_URL={CELERY_BROKER_URL.split(':', 1)[0]}:... is not Redis: set CACHE_URL "
                       "(redis://host:6379/N) so that every process counts the same rate limits")

# The REST API takes BRP tokens (per view) and staff sessions; never HTTP Basic (a password per
# request, and no throttle could tell a guess from a call).
REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] = ["rest_framework.authentication.SessionAuthentication"]
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["settlement"] = env.str("SETTLEMENT_THROTTLE_RATE", "120/min")
# Client addresses (the throttle of anonymous callers) come from X-Forwarded-For only behind this
# many proxies that set it; 0: the socket's address, so a caller cannot pick its own.
REST_FRAMEWORK["NUM_PROXIES"] = env.int("TRUSTED_PROXY_COUNT", 0)

# Behind a TLS-terminating proxy (compose: put one in front of `web`): the header it sets, e.g.
# HTTP_X_FORWARDED_PROTO. Only safe if the proxy overwrites a header of that name sent by clients.
_PROXY_SSL_HEADER = env.str("SECURE_PROXY_SSL_HEADER", "")
SECURE_PROXY_SSL_HEADER = (_PROXY_SSL_HEADER, "https") if _PROXY_SSL_HEADER else None
USE_X_FORWARDED_HOST = env.bool("USE_X_FORWARDED_HOST", False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", PRODUCTION)
# HSTS: a year in production. Subdomains and the browsers' preload list commit other hosts of the
# domain to HTTPS for good: the operator opts in, and the two checks are silenced while off.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [
    *([] if SECURE_HSTS_INCLUDE_SUBDOMAINS else ["security.W005"]),
    *([] if SECURE_HSTS_PRELOAD else ["security.W021"]),
]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", PRODUCTION)

# --- First hour (H4) ----------------------------------------------------------------------
# Swagger UI and Redoc from the installed sidecar package: the docs pages work offline, no CDN.
INSTALLED_APPS.append("drf_spectacular_sidecar")
SPECTACULAR_SETTINGS.update(SWAGGER_UI_DIST="SIDECAR", SWAGGER_UI_FAVICON_HREF="SIDECAR", REDOC_DIST="SIDECAR",
                            # Swagger UI's default validator badge is an image from swagger.io: none.
                            SWAGGER_UI_SETTINGS={"deepLinking": True, "validatorUrl": None})
# The landing page and the branded admin templates: a directory, so they come before django.contrib.admin's
# (an app listed after it would come after).
TEMPLATES[0]["DIRS"].append(BASE_DIR / "smatch" / "templates")
# How often the operator console refreshes its figures and chart (real seconds).
CONSOLE_REFRESH_S = env.float("CONSOLE_REFRESH_S", 3.0)
