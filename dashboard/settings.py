"""Django settings for the Mogplex status board.

Everything comes from the environment through the typed helpers in
``dashboard.env``; every variable is listed in ``.env.example``. With nothing
set, the board boots on embedded defaults: SQLite, an embedded Valkey, and the
bundled Mogplex simulator.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.utils.csp import CSP

from dashboard.demo import demo_secrets
from dashboard.env import (
    ConfigurationError,
    envbool,
    envchoice,
    envfloat,
    envint,
    envlist,
    envnetworks,
    envstr,
)
from dashboard.mogplex.config import Source, Token, base_url_from_env, sources_from_env
from dashboard.notify.destinations import notify_urls_from_env
from dashboard.sso.config import oidc_from_env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("BOARD_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = envbool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS", "")

# --- Mogplex -----------------------------------------------------------------
# Unset Mogplex settings mean: read the bundled simulator with demo tokens that
# live in var/ (see dashboard.demo), never in the repository.
_configured_sources = sources_from_env(os.environ)
_base_configured = any(envstr(v).strip() for v in ("MOGPLEX_BASE_URL", "MOGPLEX_URL"))
MOGPLEX_SIMULATED = not _configured_sources and not _base_configured
SIMULATOR_PORT = envint("SIMULATOR_PORT", 8765, minimum=1, maximum=65535)

if MOGPLEX_SIMULATED:
    _demo = demo_secrets(VAR_DIR)
    MOGPLEX_BASE_URL = envstr("SIMULATOR_URL").strip() or f"http://127.0.0.1:{SIMULATOR_PORT}"
    # One source per demo team member, each account in another readiness state.
    MOGPLEX_TOKENS: list[Source] = [Source(name, Token(token)) for name, token in _demo.sources()]
    BOARD_INGEST_TOKEN = envstr("BOARD_INGEST_TOKEN", _demo.ingest_token)
else:
    if not _configured_sources:
        raise ConfigurationError(
            "MOGPLEX_BASE_URL is set but no token is; set MOGPLEX_TOKEN (or MOGPLEX_TOKEN_<NAME>) "
            "to a read token, or unset MOGPLEX_BASE_URL to use the simulator."
        )
    MOGPLEX_BASE_URL = base_url_from_env(os.environ)
    MOGPLEX_TOKENS = _configured_sources
    BOARD_INGEST_TOKEN = envstr("BOARD_INGEST_TOKEN", "")

BOARD_METRICS_TOKEN = envstr("BOARD_METRICS_TOKEN", "")
# Where "Open in Mogplex" points. With the simulator: its web pages, as a browser on this
# machine reaches them (compose publishes its port; SIMULATOR_URL is the board's way in).
MOGPLEX_APP_URL = envstr("MOGPLEX_APP_URL").strip() or (
    f"http://127.0.0.1:{SIMULATOR_PORT}" if MOGPLEX_SIMULATED else MOGPLEX_BASE_URL
)
MOGPLEX_CONNECT_TIMEOUT = envint("MOGPLEX_CONNECT_TIMEOUT_SECONDS", 5, minimum=1)
MOGPLEX_READ_TIMEOUT = envint("MOGPLEX_READ_TIMEOUT_SECONDS", 15, minimum=1)

# --- Budget and freshness ----------------------------------------------------
MOGPLEX_BUDGET = envint("MOGPLEX_BUDGET", 50, minimum=1, maximum=60)
MOGPLEX_BUDGET_WINDOW_SECONDS = envint("MOGPLEX_BUDGET_WINDOW_SECONDS", 60, minimum=1)
BOARD_RUN_REFRESH_SECONDS = envint("BOARD_RUN_REFRESH_SECONDS", 10, minimum=1)
BOARD_SANDBOXES_REFRESH_SECONDS = envint("BOARD_SANDBOXES_REFRESH_SECONDS", 30, minimum=1)
BOARD_REPOS_REFRESH_SECONDS = envint("BOARD_REPOS_REFRESH_SECONDS", 600, minimum=10)
BOARD_STALE_SECONDS = envint("BOARD_STALE_SECONDS", 90, minimum=5)
# Fractions are allowed (0.05 is three minutes), for a time-compressed endurance run.
BOARD_RETENTION_HOURS = envfloat("BOARD_RETENTION_HOURS", 24.0, minimum=0.05)
# A streaming run with no new event for this long, or a run pending for this long, reads "stalled?".
BOARD_STALL_MINUTES = envint("BOARD_STALL_MINUTES", 15, minimum=1)
BOARD_PENDING_STALL_MINUTES = envint("BOARD_PENDING_STALL_MINUTES", 10, minimum=1)
# Finished runs' summaries are kept this many days in the database (the history page), then purged.
BOARD_HISTORY_DAYS = envint("BOARD_HISTORY_DAYS", 90, minimum=1)
# An unresolved failure leaves the attention lane this long after it ended.
BOARD_ATTENTION_HOURS = envint("BOARD_ATTENTION_HOURS", 8, minimum=1)
# A failure is resolved by a later success on the same repo and base branch.
BOARD_SUPERSEDE_FAILURES = envbool("BOARD_SUPERSEDE_FAILURES", True)
BOARD_POLL_TICK_SECONDS = envint("BOARD_POLL_TICK_SECONDS", 1, minimum=1)
# While newly registered runs wait to be looked up, this share of each token's requests is kept for the
# lookups (they also take any request nothing else wants); known runs keep the rest.
BOARD_LOOKUP_SHARE_PERCENT = envint("BOARD_LOOKUP_SHARE_PERCENT", 20, minimum=1, maximum=50)
# Each source's automations (the list, then each one's runSummary and job runs) are refreshed this
# often, within at most BOARD_AUTOMATIONS_SHARE_PERCENT of its budget (slower when they do not fit).
BOARD_AUTOMATIONS_SECONDS = envint("BOARD_AUTOMATIONS_SECONDS", 300, minimum=30)
BOARD_AUTOMATIONS_SHARE_PERCENT = envint("BOARD_AUTOMATIONS_SHARE_PERCENT", 5, minimum=1, maximum=30)
# Ingest refuses (429) a request registering more new runs than this, and more than
# BOARD_INGEST_RUNS_PER_HOUR new runs in any hour: more than a team plausibly starts.
BOARD_INGEST_MAX_RUNS = envint("BOARD_INGEST_MAX_RUNS", 100, minimum=1)
BOARD_INGEST_RUNS_PER_HOUR = envint("BOARD_INGEST_RUNS_PER_HOUR", 600, minimum=1)
# The page code's version; pages that see it change reload themselves. Unset: a hash of templates and static files.
BOARD_APP_VERSION = envstr("BOARD_APP_VERSION", "")
# The board's address as people and wall screens reach it (kiosk_link prints URLs under it).
# The port `manage.py run` serves on (and compose publishes); the default public URL is on it.
BOARD_PORT = envint("BOARD_PORT", 8000, minimum=1, maximum=65535)
# Unset: the address `manage.py run` prints, so kiosk_link's links and the board's agree.
BOARD_PUBLIC_URL = envstr("BOARD_PUBLIC_URL", "").strip() or f"http://127.0.0.1:{BOARD_PORT}"
# How often an open dashboard page asks whether the board changed (an unchanged board costs a 204).
BOARD_PAGE_REFRESH_SECONDS = envint("BOARD_PAGE_REFRESH_SECONDS", 5, minimum=1, maximum=300)
# Threads per web process for the pages (the change stream needs none: see dashboard/asgi.py).
BOARD_WEB_THREADS = envint("BOARD_WEB_THREADS", 4, minimum=1, maximum=64)

# --- Notifications (dashboard/notify) ------------------------------------------
# Apprise URLs (slack://, msteams://, discord://, mmost://, mailto://, json://...), separated by
# spaces or new lines; a bad one stops start-up naming its position and scheme, never its secret.
BOARD_NOTIFY_URLS = notify_urls_from_env() if envstr("BOARD_NOTIFY_URLS").strip() else []
# A destination gets at most this many messages in any rolling minute; more become one digest.
BOARD_NOTIFY_PER_MINUTE = envint("BOARD_NOTIFY_PER_MINUTE", 3, minimum=1)
# Tries per message before it is given up (the pause doubles from BOARD_NOTIFY_RETRY_SECONDS).
BOARD_NOTIFY_ATTEMPTS = envint("BOARD_NOTIFY_ATTEMPTS", 5, minimum=1)
BOARD_NOTIFY_RETRY_SECONDS = envint("BOARD_NOTIFY_RETRY_SECONDS", 5, minimum=1)
BOARD_NOTIFY_TIMEOUT_SECONDS = envint("BOARD_NOTIFY_TIMEOUT_SECONDS", 10, minimum=1)
# How often the notifier reads the board for changes.
BOARD_NOTIFY_SCAN_SECONDS = envint("BOARD_NOTIFY_SCAN_SECONDS", 2, minimum=1)
# Sent messages and ended events are forgotten after this many days.
BOARD_NOTIFY_KEEP_DAYS = envint("BOARD_NOTIFY_KEEP_DAYS", 30, minimum=1)

# --- Secret key --------------------------------------------------------------
SECRET_KEY = envstr("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and not MOGPLEX_SIMULATED:
        raise ConfigurationError(
            "DJANGO_SECRET_KEY is not set; set it to a long random string "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    SECRET_KEY = demo_secrets(VAR_DIR).secret_key

# --- Redis / Valkey ----------------------------------------------------------
# Unset REDIS_URL: `manage.py run` starts an embedded Valkey on this port.
EMBEDDED_VALKEY_PORT = envint("EMBEDDED_VALKEY_PORT", 6479, minimum=1, maximum=65535)
REDIS_EMBEDDED = not envstr("REDIS_URL").strip()
REDIS_URL = envstr("REDIS_URL").strip() or f"redis://127.0.0.1:{EMBEDDED_VALKEY_PORT}/0"
if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ConfigurationError(f"REDIS_URL is {REDIS_URL!r}; set it to a redis:// or rediss:// URL.")

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# When Redis goes away, the worker and beat keep trying to reconnect, for as long as it takes
# (Celery's default gives up after 100 attempts, about 45 minutes, and the worker exits).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Celery 6's default, and quiet about it: no task acks late, so none is redelivered after a loss.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# A Redis that stops answering (rather than refusing) must not hang a web request that
# enqueues a task (the track form, the ingest endpoint): each try gives up after 3 s and
# there are two, about 9 s in all (Celery's defaults wait forever). A task not sent is
# not lost: the poller's next tick finds the run in the database.
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 3}
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_TASK_ACKS_LATE = False
# Notifications have a queue (and a worker) of their own: a destination that hangs never slows the poller.
CELERY_TASK_ROUTES = {"dashboard.notify.tasks.*": {"queue": "notify"}}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# One log line when beat cannot send a tick (and one when it can again), not a traceback a tick.
CELERY_BEAT_SCHEDULER = "dashboard.polling.beat:BoardScheduler"
# The poller's heartbeat: each tick plans every source's fetches for the next tick.
CELERY_BEAT_SCHEDULE = {
    "poll-tick": {
        "task": "dashboard.polling.tasks.poll_tick",
        "schedule": float(BOARD_POLL_TICK_SECONDS),
        "options": {"expires": float(BOARD_POLL_TICK_SECONDS) * 2},
    },
    # Summaries older than BOARD_HISTORY_DAYS go; hourly, so each purge is small.
    "history-purge": {
        "task": "dashboard.polling.tasks.history_purge",
        "schedule": 3600.0,
        "options": {"expires": 1800.0},
    },
}

# --- Django ------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "dashboard.ops.view_latency_middleware",
    "dashboard.board.middleware.CacheUnavailableMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

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
            "libraries": {"board": "dashboard.board.templatetags"},
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web app, the worker's threads and the ingest endpoint write at once: wait for
    # the lock (instead of "database is locked" at once) and take it at the start of a
    # transaction, so a reader that turns writer cannot deadlock.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
# Failed sign-ins allowed per client address and per username in any rolling window
# (dashboard/signin.py); over it, attempts get 429 without the password being checked.
BOARD_LOGIN_ATTEMPTS_PER_MINUTE = envint("BOARD_LOGIN_ATTEMPTS_PER_MINUTE", 10, minimum=1)
BOARD_LOGIN_WINDOW_SECONDS = 60
# Single sign-on with OpenID Connect (dashboard/sso.py): off unless BOARD_OIDC_ISSUER is set.
BOARD_OIDC = oidc_from_env()
SOCIALACCOUNT_PROVIDERS = BOARD_OIDC.allauth_providers() if BOARD_OIDC else {}
ACCOUNT_ADAPTER = "dashboard.sso.flow.BoardAccountAdapter"
SOCIALACCOUNT_ADAPTER = "dashboard.sso.flow.BoardSocialAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_UNIQUE_EMAIL = False
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_REQUESTS_TIMEOUT = 5
# Reverse proxies whose X-Forwarded-For is believed when they are the peer (addresses or networks).
BOARD_TRUSTED_PROXIES = envnetworks("BOARD_TRUSTED_PROXIES", "")

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("BOARD_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing root on every start
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- Security ------------------------------------------------------------------
# BOARD_HTTPS: the board is served over https (directly or behind a TLS proxy that
# sets X-Forwarded-Proto). Turns on secure cookies, HSTS and the https redirect.
BOARD_HTTPS = envbool("BOARD_HTTPS", False)
if BOARD_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = envbool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("DJANGO_SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
# /healthz and /readyz are probed over plain http from inside the deployment.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# No inline script anywhere: upstream strings are written by agents, and this is the
# second line of defence behind autoescaping. Inline style attributes are allowed
# (htmx and the kiosk's row scaling set them).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# --- Logs ------------------------------------------------------------------------
# At INFO (the default) a minute of work is a line per upstream request plus what
# needs a person: no per-task Celery lines, no access lines for unchanged polls (204,
# gunicorn.conf.py). DEBUG brings them back, with the poller's own per-fetch lines.
BOARD_LOG_LEVEL = envchoice("BOARD_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
# text: one line per record; json: one JSON object per line, for log shippers.
BOARD_LOG_FORMAT = envchoice("BOARD_LOG_FORMAT", "text", ("text", "json"))
_QUIET_BELOW_DEBUG = "WARNING" if BOARD_LOG_LEVEL != "DEBUG" else "DEBUG"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "filters": {
        "redact_display_tokens": {"()": "dashboard.logredact.RedactDisplayTokens"},
        "quiet_bad_requests": {"()": "dashboard.logredact.QuietBadRequests"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": BOARD_LOG_FORMAT,
            "filters": ["quiet_bad_requests", "redact_display_tokens"],
        }
    },
    "root": {"handlers": ["console"], "level": BOARD_LOG_LEVEL},
    # django.request logs the path of every 4xx/5xx answer, and a kiosk path holds a
    # display token: redact it on the logger itself, so every handler gets the redacted line.
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # Apprise's debug lines can quote a destination URL (its secret); its warnings do not.
        "apprise": {"level": "WARNING"},
        "django.request": {"filters": ["redact_display_tokens"]},
        "django.server": {"filters": ["redact_display_tokens"]},
        # "Task ... received" and "Task ... succeeded": two lines a task, several tasks a second.
        "celery.worker.strategy": {"level": _QUIET_BELOW_DEBUG},
        "celery.app.trace": {"level": _QUIET_BELOW_DEBUG},
        # "Scheduler: Sending due task poll-tick", every tick.
        "celery.beat": {"level": _QUIET_BELOW_DEBUG},
    },
}
