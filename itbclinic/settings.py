"""
ITB Clinic settings: one module, driven by the environment (django-environ).

Defaults are safe for the local demo (`make run`): SQLite under var/ and kombu's
filesystem broker, so nothing but Python is needed. Production differs only by
environment values (see the README's configuration table and docker-compose.yml).
https://docs.djangoproject.com/en/5.2/ref/settings/
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

# ---------------------------------------------------------------------------
# Core
# https://docs.djangoproject.com/en/5.2/ref/settings/#core-settings
# ---------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# The public demo key exists only so the local demo (`make run`, DEBUG on) starts. With DEBUG off
# (production, and the test suite: tests/settings.py gives it a key of its own) the app refuses to
# start without a key of its own: sessions, password-reset and invitation links are signed with it.
DEMO_SECRET_KEY = "django-insecure-local-demo-key-not-for-production"  # noqa: S105 (public on purpose)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or (DEMO_SECRET_KEY if DEBUG else "")
if not DEBUG and SECRET_KEY in ("", DEMO_SECRET_KEY):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a secret of your own with DJANGO_DEBUG off (production); "
        'the demo key is public. Generate one: python -c "import secrets; print(secrets.token_urlsafe(50))". '
        "For the local demo, set DJANGO_DEBUG=true (`make run` does)."
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "axes",
    "django_htmx",
    "phonenumber_field",
    "core",  # the used form tokens (core/idempotency.py) and the {% form_token %} tag
    "itbclinic.accounts",
    "patients",
    "pumps",
    "refills",
    "audit",
    "portal",
    "interop",
    "demo",  # seed_demo only; nothing imports it
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "itbclinic.accounts.middleware.SessionLifetimeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Per-address limit on login/password-reset/invitation POSTs (portal/throttling.py).
    "portal.throttling.AuthPostRateLimitMiddleware",
    # django-axes must come last: it reads the outcome of authentication.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "itbclinic.urls"
WSGI_APPLICATION = "itbclinic.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "itbclinic" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "itbclinic.accounts.context_processors.roles",
                "itbclinic.context_processors.safety_net",
            ],
        },
    },
]

# ---------------------------------------------------------------------------
# Database: SQLite (WAL, immediate transactions) by default, DATABASE_URL otherwise
# https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-notes
# ---------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # A file (not :memory:) so a worker process started by the tests can share it; beside the
    # database file, so DATABASE_URL=sqlite:////elsewhere/db.sqlite3 moves both.
    _db_file = Path(DATABASES["default"]["NAME"])
    DATABASES["default"]["TEST"] = {"NAME": str(_db_file.with_name(f"test-{_db_file.name}"))}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", default=0))
# Connection pooling in production: PgBouncer in transaction mode (docker-compose.yml) in front of
# PostgreSQL. A pooled server connection changes hands between transactions, so no server-side
# cursor may outlive one (`.iterator()` then fetches in chunks client-side) and Django must not
# hold connections open itself.
# https://docs.djangoproject.com/en/5.2/ref/databases/#transaction-pooling-server-side-cursors
if env.bool("DATABASE_TRANSACTION_POOLING", default=False):
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------------------
# Accounts, passwords, lockout
# https://docs.djangoproject.com/en/5.2/topics/auth/passwords/
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
# ---------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
# A cool-off, never a permanent lock: an attacker must not be able to lock a patient out for good.
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
# Attempts during the lock must not push its end back, or a patient could be kept out by
# someone retrying every few minutes.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_SENSITIVE_PARAMETERS = ["password", "new_password1", "new_password2", "old_password"]
# The database handler in every mode: the attempts and locks live in the database every web
# worker already shares (PostgreSQL in production), survive a cache flush or eviction (a lock
# that a full cache silently dropped would be no lock), and the clinic admin sees them in the
# Django admin (Axes → Access attempts). The cache is for the per-address POST limits below.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# The client address axes records and locks on is the one the access log and the POST limits
# use (audit.services.client_address, TRUSTED_PROXY_COUNT below): a client cannot choose it by
# sending X-Forwarded-For, so forged headers cannot lock out somebody else's address.
AXES_CLIENT_IP_CALLABLE = "audit.services.axes_client_address"

# ---------------------------------------------------------------------------
# Sessions: idle timeout per audience, absolute lifetime (SECURITY.md)
# ---------------------------------------------------------------------------
SESSION_SAVE_EVERY_REQUEST = True  # idle timeout counts from the last request, not the login
SESSION_IDLE_TIMEOUT_STAFF = timedelta(minutes=env.int("SESSION_IDLE_MINUTES_STAFF", default=15))
SESSION_IDLE_TIMEOUT_PATIENT = timedelta(minutes=env.int("SESSION_IDLE_MINUTES_PATIENT", default=30))
SESSION_ABSOLUTE_LIFETIME = timedelta(hours=env.int("SESSION_ABSOLUTE_HOURS", default=12))
SESSION_COOKIE_AGE = int(SESSION_ABSOLUTE_LIFETIME.total_seconds())
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# ---------------------------------------------------------------------------
# Transport security: on by default, off only for the local HTTP demo
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
# ---------------------------------------------------------------------------
SECURE_SSL = env.bool("DJANGO_SECURE_SSL", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = SECURE_SSL
SESSION_COOKIE_SECURE = SECURE_SSL
CSRF_COOKIE_SECURE = SECURE_SSL
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000 if SECURE_SSL else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_SSL
SECURE_HSTS_PRELOAD = SECURE_SSL
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # probes from compose and load balancers speak plain HTTP
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [SELF],
        "object-src": [NONE],
    }
}

# ---------------------------------------------------------------------------
# Time: the clinic's zone everywhere (STYLE.md "Time")
# ---------------------------------------------------------------------------
# The clinic's language and region: <html lang>, the browser's date inputs (day/month/year in
# en-gb), and the national format phone numbers are read and shown in.
LANGUAGE_CODE = env.str("CLINIC_LANGUAGE_CODE", default="en-gb")
CLINIC_REGION = env.str("CLINIC_REGION", default="GB")
PHONENUMBER_DEFAULT_REGION = CLINIC_REGION
TIME_ZONE = env.str("CLINIC_TIME_ZONE", default="Europe/London")
USE_I18N = True
USE_TZ = True

# ---------------------------------------------------------------------------
# Static files (whitenoise); every asset is local, no CDN
# ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "itbclinic" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str(
            "DJANGO_STATICFILES_STORAGE",
            default="django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage",
        )
    },
}

# ---------------------------------------------------------------------------
# Email (console in the demo; EMAIL_URL=smtp+tls://user:pass@host:587 in production)
# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-email-url
# ---------------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="ITB Clinic <no-reply@itbclinic.invalid>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# A backend class by name overrides EMAIL_URL's (e.g. a provider's API backend).
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default=EMAIL_BACKEND)  # noqa: F821 (set by email_url above)

# ---------------------------------------------------------------------------
# SMS (refills/messaging.py): console in the demo, Twilio through its SDK by env
# https://www.twilio.com/docs/libraries/reference/twilio-python/
# ---------------------------------------------------------------------------
SMS_BACKEND = env.str("SMS_BACKEND", default="refills.sms_backends.ConsoleBackend")
SMS_PROVIDER_URL = env.str("SMS_PROVIDER_URL", default="https://api.twilio.com")
SMS_PROVIDER_ACCOUNT_SID = env.str("SMS_PROVIDER_ACCOUNT_SID", default="")
SMS_PROVIDER_AUTH_TOKEN = env.str("SMS_PROVIDER_AUTH_TOKEN", default="")
SMS_PROVIDER_FROM = env.str("SMS_PROVIDER_FROM", default="ITBClinic")
SMS_PROVIDER_TIMEOUT = env.float("SMS_PROVIDER_TIMEOUT", default=10.0)

# ---------------------------------------------------------------------------
# Reminder delivery (refills/reminders/, refills/tasks.py). The clinical settings (offsets,
# hour, alert thresholds) live in the database; these are the delivery machinery's.
# ---------------------------------------------------------------------------
# A row left in "sending" this long (worker killed, broker lost the message) goes back to pending.
# Must exceed the longest retry backoff below, or a row waiting for its retry would be re-sent.
REMINDER_STUCK_AFTER_MINUTES = env.int("REMINDER_STUCK_AFTER_MINUTES", default=10)
REMINDER_MAX_RECOVERIES = env.int("REMINDER_MAX_RECOVERIES", default=6)
REMINDER_SEND_MAX_RETRIES = env.int("REMINDER_SEND_MAX_RETRIES", default=5)
REMINDER_RETRY_BACKOFF_SECONDS = env.int("REMINDER_RETRY_BACKOFF_SECONDS", default=15)
REMINDER_RETRY_BACKOFF_MAX_SECONDS = env.int("REMINDER_RETRY_BACKOFF_MAX_SECONDS", default=300)
REMINDER_DISPATCH_BATCH = env.int("REMINDER_DISPATCH_BATCH", default=500)
# A reminder whose time has passed is still sent late only if the appointment is this far ahead.
REMINDER_MIN_LEAD_HOURS = env.int("REMINDER_MIN_LEAD_HOURS", default=12)
# A reminder created up to this long after its time (scan latency, a booking at 09:05) still goes.
REMINDER_LATE_GRACE_HOURS = env.int("REMINDER_LATE_GRACE_HOURS", default=6)

# ---------------------------------------------------------------------------
# Celery: filesystem broker under var/ by default, Redis by CELERY_BROKER_URL
# https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html
# ---------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_DATA_DIR = Path(env.str("CELERY_BROKER_DATA_DIR", default=str(VAR_DIR / "broker")))
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("queue", "processed", "control"):
        (CELERY_BROKER_DATA_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DATA_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DATA_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DATA_DIR / "processed"),
        # The exchange table: every process must share it (kombu's default is ./control).
        "control_folder": str(CELERY_BROKER_DATA_DIR / "control"),
        "store_processed": False,
    }
else:
    # Redis redelivers unacked work after the visibility timeout; nothing here is
    # scheduled far ahead (the database is the record), so the default hour is ample.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = env.str("CELERY_BEAT_SCHEDULE_FILENAME", default=str(VAR_DIR / "celerybeat-schedule"))
# Beat may run on several machines: each run is claimed in the database first (itbclinic/beat.py).
CELERY_BEAT_SCHEDULER = "itbclinic.beat:ClaimingScheduler"
# Two queues, each with its own worker (Procfile, docker-compose.yml): the scheduled scans,
# planning, dispatch, recovery and escalations on "scans", every per-message send on "sends".
# A long batch of sends (one a second with a slow provider) then never delays a scan.
# Anything not routed goes to "scans" (the default queue), which always has a worker.
CELERY_SCANS_QUEUE = env.str("CELERY_SCANS_QUEUE", default="scans")
CELERY_SENDS_QUEUE = env.str("CELERY_SENDS_QUEUE", default="sends")
CELERY_TASK_DEFAULT_QUEUE = CELERY_SCANS_QUEUE
CELERY_TASK_ROUTES = {
    "refills.send_reminder_task": {"queue": CELERY_SENDS_QUEUE},
    # Any other per-message send (emails sent after the response, SMS): *.send_*_task.
    "*.send_*_task": {"queue": CELERY_SENDS_QUEUE},
    "refills.scan_reminders_task": {"queue": CELERY_SCANS_QUEUE},
    "refills.dispatch_reminders_task": {"queue": CELERY_SCANS_QUEUE},
    "refills.recover_reminders_task": {"queue": CELERY_SCANS_QUEUE},
    "itbclinic.*": {"queue": CELERY_SCANS_QUEUE},
    # A bulk FHIR export takes minutes: never in front of a scan (a reminder may wait that long).
    "interop.*": {"queue": CELERY_SENDS_QUEUE},
}
CELERY_BEAT_SCHEDULE = {
    # Every 30 seconds: proves beat → broker → worker end to end (visible in the worker log
    # within a minute of `make run`).
    "heartbeat": {"task": "itbclinic.heartbeat_task", "schedule": 30.0},
    # Every hour: delete expired session rows (an ended session leaves nothing behind).
    "clear-expired-sessions": {"task": "itbclinic.clear_expired_sessions_task", "schedule": 3600.0},
    # Every 5 minutes: materialise due reminders, cancel obsolete ones, raise/resolve alerts (level-triggered).
    "scan-reminders": {"task": "refills.scan_reminders_task", "schedule": 300.0},
    # Every minute: claim reminders whose time has come and enqueue one send each, after commit.
    "dispatch-reminders": {"task": "refills.dispatch_reminders_task", "schedule": 60.0},
    # Every 5 minutes: rows stuck in "sending" (lost message, killed worker) go back to pending.
    "recover-reminders": {"task": "refills.recover_reminders_task", "schedule": 300.0},
}

# ---------------------------------------------------------------------------
# REST API (DRF + drf-spectacular)
# https://www.django-rest-framework.org/api-guide/settings/
# ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.StandardPagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="60/min"),
        "user": env.str("API_THROTTLE_USER", default="600/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ITB Clinic API",
    "DESCRIPTION": (
        "Patients, screening trials, implants, refill visits and appointments of an intrathecal baclofen clinic."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets that share a field name ("kind", "status") or a list (vertebral levels).
    "ENUM_NAME_OVERRIDES": {
        "TrialKindEnum": "patients.models.ScreeningTrial.Kind",
        "AppointmentKindEnum": "refills.models.Appointment.Kind",
        "PatientStatusEnum": "patients.models.Patient.Status",
        "AppointmentStatusEnum": "refills.models.Appointment.Status",
        "VertebralLevelEnum": "patients.models.VERTEBRAL_LEVELS",
        # The refill's safety checklist: answered done / not done, read back with "not recorded" too.
        "SafetyCheckAnswerEnum": "refills.api.SAFETY_CHECK_ANSWERS",
        "SafetyCheckEnum": "refills.models.RefillVisit.SafetyCheck",
    },
}

# ---------------------------------------------------------------------------
# Cache: where the POST limits (portal/throttling.py) and the API throttles count. Local memory
# for the one-process demo; every process of a deployment must share one, so production sets
# CACHE_URL=redis://host:6379/1 (docker-compose.yml; a database index of its own, apart from the
# broker's) and `check --deploy` warns without it (portal/checks.py).
# https://docs.djangoproject.com/en/5.2/topics/cache/#redis
# ---------------------------------------------------------------------------
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# ---------------------------------------------------------------------------
# Logging: to stdout; never passwords, tokens or session ids (SECURITY.md "Audit")
# ---------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Paths can carry calendar/invitation/reset tokens: masked before anything is written.
    "filters": {"redact_secrets": {"()": "audit.logging.RedactSecretsFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        # The Twilio SDK logs every request line and its headers at INFO (never the token).
        "twilio.http_client": {"level": "WARNING"},
        # runserver's request lines go through the same redacting handler.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# ---------------------------------------------------------------------------
# The clinic (display values; the clinical settings live in the database,
# editable by the clinic admin: see refills.ClinicSettings)
# ---------------------------------------------------------------------------
CLINIC_NAME = env.str("CLINIC_NAME", default="ITB Clinic")
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# ---------------------------------------------------------------------------
# Patient portal and access log (issue 6)
# ---------------------------------------------------------------------------
# Reverse proxies we run in front of the app that append to X-Forwarded-For (0: trust none,
# REMOTE_ADDR is the client). The one setting behind the client address of the access log, the
# POST limits and django-axes (audit.services.client_address). AUDIT_TRUSTED_PROXY_COUNT is its
# former name, still read.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=env.int("AUDIT_TRUSTED_PROXY_COUNT", default=0))
PORTAL_INVITATION_MAX_AGE_HOURS = env.int("PORTAL_INVITATION_MAX_AGE_HOURS", default=72)
# Limits on POSTs per client address ("count/seconds") to every form that checks a password
# (the staff/patient login, the Django admin's login, the password change), password reset and
# invitations, counted by django-ratelimit in the default cache (portal/throttling.py); axes
# still locks a username and address after repeated failures.
# https://django-ratelimit.readthedocs.io/en/stable/usage.html#core-methods
AUTH_POST_RATE_LIMITS = {
    "login": env.str("LOGIN_POST_RATE", default="20/300"),
    "admin:login": env.str("LOGIN_POST_RATE", default="20/300"),
    "password_change": env.str("LOGIN_POST_RATE", default="20/300"),
    "password_reset": env.str("PASSWORD_RESET_POST_RATE", default="5/900"),
    "portal:invitation_accept": env.str("INVITATION_POST_RATE", default="10/900"),
}
