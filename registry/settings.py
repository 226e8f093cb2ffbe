"""Settings for the model registry, configured by environment variables (12-factor).

Every variable is optional: without any, the registry runs on SQLite with local file
storage under REGISTRY_DATA_DIR, which is what `make run` uses.
"""

import ipaddress
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DATA_DIR = Path(os.environ.get("REGISTRY_DATA_DIR", BASE_DIR / "var")).resolve()
if not os.environ.get("DATABASE_URL"):
    # The zero-service default keeps its SQLite database here: a fresh checkout has no ./var yet.
    DATA_DIR.mkdir(parents=True, exist_ok=True)

DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me-in-production"
DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        # A production process must never sign sessions with a key that is in the source.
        raise ImproperlyConfigured("DEBUG is false: set SECRET_KEY (50+ random characters).")
    SECRET_KEY = DEV_SECRET_KEY
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- Production (SPEC §8) -----------------------------------------------------------------
# Cookies only travel over HTTPS unless DEBUG (local http) or the operator says otherwise.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("REGISTRY_SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
# Behind a TLS-terminating proxy (nginx, Traefik, a cloud load balancer) that sets
# X-Forwarded-Proto: trust it, redirect plain http to https and send HSTS.
REGISTRY_BEHIND_PROXY = env_bool("REGISTRY_BEHIND_PROXY", False)
if REGISTRY_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("REGISTRY_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("REGISTRY_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("REGISTRY_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("REGISTRY_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "registry",
    "dashboard",
]

MIDDLEWARE = [
    # First: probes answer before host checks, https redirects and sessions (registry/health.py).
    "registry.health.HealthCheckMiddleware",
    # Next, so every page answered below it (the 503, 413 and locked-out pages too) carries it.
    "registry.csp.CSPMiddleware",  # django-csp's, the policy built once (registry/csp.py)
    # A view failing on the database answers 503 with Retry-After (registry/outage.py).
    "registry.outage.DatabaseOutageMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A JSON or form body is read before a token or session borrows a database connection.
    "registry.db.BodyBeforeDatabaseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before CSRF, the first to parse a form: an oversized upload is refused unread.
    "dashboard.middleware.UploadSizeMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "dashboard.middleware.LazyMessageMiddleware",  # Django's, the storage made on first use
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A NUL in the path, the query string or a header: 400 (JSON under /api/, a page elsewhere).
    "registry.http_errors.RefuseNulMiddleware",
    "dashboard.middleware.RegistryErrorMiddleware",
    # Last, as django-axes asks: it turns a refused sign-in into the locked-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "registry.urls"
WSGI_APPLICATION = "registry.wsgi.application"

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
                "dashboard.context_processors.registry_nav",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'registry.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        # A kept connection that the database (or a failover) closed is replaced, not used.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
    "DATABASE_SERVER_SIDE_BINDING", True
):
    # Parameters travel apart from the SQL, so psycopg prepares a statement on a kept
    # connection once it ran a few times: PostgreSQL stops re-planning the API's repeated
    # queries. Off for a pooler in transaction mode (PgBouncer < 1.21), which cannot keep
    # prepared statements.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 5})
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and int(
    os.environ.get("DATABASE_POOL_SIZE", "0")
):
    # The web process (set by registry/gunicorn_conf.py) serves each request in a greenlet of
    # its own, so a connection kept per thread would be one per request: it borrows from a
    # pool instead, returned after each request. A request waits at most
    # DATABASE_POOL_TIMEOUT seconds for a free connection, then answers 503 like an outage.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Django's backend, with the pool's check made without a round trip (registry/postgresql).
    DATABASES["default"]["ENGINE"] = "registry.postgresql"
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": int(os.environ["DATABASE_POOL_SIZE"]),
        "timeout": float(os.environ.get("DATABASE_POOL_TIMEOUT", "10")),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite serialises writers; wait for the lock instead of failing at once, and
    # take it at the start of a transaction so select_for_update-style sections hold.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: a locked-out username or address is refused before its password is checked.
    "registry.signin.SignInLimitBackend",
    # Passwords, unless REGISTRY_PASSWORD_SIGNIN is false.
    "registry.signin.PasswordBackend",
    # Single sign-on (OpenID Connect), when REGISTRY_OIDC_ISSUER is set (registry/sso.py).
    "registry.sso.OidcBackend",
]

# --- Single sign-on (OpenID Connect; README "Configuration") ----------------------------------
# The provider's endpoints are discovered from the issuer (<issuer>/.well-known/openid-configuration).
REGISTRY_OIDC_ISSUER = os.environ.get("REGISTRY_OIDC_ISSUER", "").strip()
REGISTRY_OIDC_CLIENT_ID = os.environ.get("REGISTRY_OIDC_CLIENT_ID", "").strip()
REGISTRY_OIDC_CLIENT_SECRET = os.environ.get("REGISTRY_OIDC_CLIENT_SECRET", "")
REGISTRY_OIDC_SCOPES = os.environ.get("REGISTRY_OIDC_SCOPES", "openid email profile")
REGISTRY_OIDC_PROVIDER_NAME = os.environ.get("REGISTRY_OIDC_PROVIDER_NAME", "single sign-on")
# The claim whose values single sign-on rules map to roles, and the one that names new accounts.
REGISTRY_OIDC_ROLES_CLAIM = os.environ.get("REGISTRY_OIDC_ROLES_CLAIM", "groups")
REGISTRY_OIDC_USERNAME_CLAIM = os.environ.get("REGISTRY_OIDC_USERNAME_CLAIM", "preferred_username")
REGISTRY_OIDC_SIGN_ALGO = os.environ.get("REGISTRY_OIDC_SIGN_ALGO", "RS256")
REGISTRY_OIDC_TIMEOUT_SECONDS = float(os.environ.get("REGISTRY_OIDC_TIMEOUT_SECONDS", "10"))
if REGISTRY_OIDC_ISSUER and not (REGISTRY_OIDC_CLIENT_ID and REGISTRY_OIDC_CLIENT_SECRET):
    raise ImproperlyConfigured("REGISTRY_OIDC_ISSUER is set: set REGISTRY_OIDC_CLIENT_ID and REGISTRY_OIDC_CLIENT_SECRET too.")
# false: the password form is hidden and refused (dashboard and admin); API tokens keep working.
REGISTRY_PASSWORD_SIGNIN = env_bool("REGISTRY_PASSWORD_SIGNIN", True)
# mozilla-django-oidc: the code flow with PKCE, back to the dashboard's callback page.
OIDC_USE_PKCE = True
OIDC_AUTHENTICATION_CALLBACK_URL = "dashboard:sso-callback"

# --- Sign-in limits (django-axes; README "Limits") --------------------------------------------
# This many failed sign-ins for one username (from any address), or from one address (for
# any username), within the lockout time lock that username or address out for that time.
AXES_FAILURE_LIMIT = int(os.environ.get("REGISTRY_SIGNIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("REGISTRY_SIGNIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True  # a successful sign-in forgets that user's failures
# Retrying while locked out does not push the end of the lockout further away.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "registry.signin.client_address"
AXES_LOCKOUT_CALLABLE = "dashboard.views.signin.locked_out"
AXES_HTTP_RESPONSE_CODE = 429
# Failures are kept (the admin lists them; `manage.py axes_reset` lifts lockouts); successful
# sign-ins are not logged by axes.
AXES_DISABLE_ACCESS_LOG = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("REGISTRY_STATIC_ROOT", DATA_DIR / "static")).resolve()
STATICFILES_DIRS = [BASE_DIR / "static"]

LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "dashboard:login"

# --- Storage of model files -------------------------------------------------------------
REGISTRY_S3_BUCKET = os.environ.get("REGISTRY_S3_BUCKET", "")
MEDIA_ROOT = DATA_DIR / "files"
# Downloads redirect to a short-lived presigned GetObject URL instead of streaming through
# the web process (S3 only; the bucket must be reachable by clients at that address).
REGISTRY_S3_PRESIGNED_DOWNLOADS = env_bool("REGISTRY_S3_PRESIGNED_DOWNLOADS", False)
REGISTRY_S3_PRESIGNED_EXPIRY_SECONDS = int(os.environ.get("REGISTRY_S3_PRESIGNED_EXPIRY_SECONDS", "300"))
if REGISTRY_S3_BUCKET:
    _s3_endpoint = os.environ.get("AWS_S3_ENDPOINT_URL") or None
    _file_storage = {
        "BACKEND": "registry.s3.StreamingS3Storage",
        "OPTIONS": {
            "bucket_name": REGISTRY_S3_BUCKET,
            "endpoint_url": _s3_endpoint,
            # Unset, boto3 finds credentials itself (instance profile, ~/.aws, web identity).
            "access_key": os.environ.get("AWS_ACCESS_KEY_ID") or None,
            "secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
            "region_name": os.environ.get("REGISTRY_S3_REGION") or None,
            "signature_version": "s3v4",
            # MinIO and most S3-compatible servers want path-style addressing.
            "addressing_style": "path" if _s3_endpoint else None,
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": REGISTRY_S3_PRESIGNED_EXPIRY_SECONDS,
            "part_size": int(os.environ.get("REGISTRY_S3_PART_BYTES", str(8 * 1024 * 1024))),
            "public_endpoint_url": os.environ.get("REGISTRY_S3_PUBLIC_ENDPOINT_URL") or None,
        },
    }
else:
    _file_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "file_permissions_mode": 0o640},
    }
STORAGES = {
    "default": _file_storage,
    # Served by the app through WhiteNoise. In production (DEBUG false) the names carry a
    # content hash and files are pre-compressed, so they can be cached forever; that needs
    # `manage.py collectstatic` first (the Dockerfile runs it at build time).
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage" if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage",
    },
}

# --- Content-Security-Policy (django-csp; README "Dashboard") -----------------------------------
# Every page loads its scripts, styles and images from the registry itself and runs no inline
# code: no <script> blocks, no on*= handlers, no style attributes (tests/dashboard/test_csp.py
# keeps the templates that way). The API docs pages get their own policy (registry/urls.py).


def presigned_download_origins(bucket: str, endpoint: str | None, region: str | None) -> list[str]:
    """The origins of the presigned URLs boto3 writes for this bucket (registry/s3.py): the
    endpoint's, path-style, when one is set; on AWS the bucket's own host, or AWS's hosts with
    the bucket in the path when its name has dots. With and without the region in the host."""
    if endpoint:
        parts = urlsplit(endpoint)
        return [f"{parts.scheme}://{parts.netloc}"]
    host = "s3" if "." in bucket else f"{bucket}.s3"
    return [f"https://{host}.amazonaws.com"] + ([f"https://{host}.{region}.amazonaws.com"] if region else [])


_form_targets, _connect = [SELF], {}
if REGISTRY_S3_BUCKET:
    # The dashboard's direct uploads PUT a file's parts to presigned URLs of the bucket
    # (otherwise default-src, the registry alone).
    _connect["connect-src"] = [SELF] + presigned_download_origins(
        REGISTRY_S3_BUCKET,
        _file_storage["OPTIONS"]["public_endpoint_url"] or _s3_endpoint,
        _file_storage["OPTIONS"]["region_name"],
    )
if REGISTRY_S3_BUCKET and REGISTRY_S3_PRESIGNED_DOWNLOADS:
    # The acknowledged download of a flagged file is a form; the API answers it with a redirect
    # to the bucket, and browsers hold a form's redirects to form-action as well.
    _form_targets += presigned_download_origins(
        REGISTRY_S3_BUCKET,
        _file_storage["OPTIONS"]["public_endpoint_url"] or _s3_endpoint,
        _file_storage["OPTIONS"]["region_name"],
    )
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": _form_targets,
        **_connect,
    },
}

# --- Registry limits (SPEC §1, §8) ------------------------------------------------------
REGISTRY_MAX_UPLOAD_BYTES = int(os.environ.get("REGISTRY_MAX_UPLOAD_BYTES", str(20 * 1024**3)))
REGISTRY_MAX_VERSIONS = int(os.environ.get("REGISTRY_MAX_VERSIONS", "30"))
REGISTRY_MAX_FORMATS = int(os.environ.get("REGISTRY_MAX_FORMATS", "3"))
# Attachments of a model itself (model cards, reports, plots): how large one may be, how many a model keeps.
REGISTRY_MAX_ATTACHMENT_BYTES = int(os.environ.get("REGISTRY_MAX_ATTACHMENT_BYTES", str(1024**3)))
REGISTRY_MAX_ATTACHMENTS = int(os.environ.get("REGISTRY_MAX_ATTACHMENTS", "100"))
# Tags on one model or one version (400 above).
REGISTRY_MAX_TAGS = int(os.environ.get("REGISTRY_MAX_TAGS", "100"))
# Arrays and objects nested in a JSON body or JSON field (400 above): Python's json, DRF's
# renderer and PostgreSQL's jsonb all recurse once per level.
REGISTRY_MAX_JSON_DEPTH = int(os.environ.get("REGISTRY_MAX_JSON_DEPTH", "64"))
# The largest JSON body (413 above), sized for the largest documented one: a batch of 10,000
# metrics with 200-character keys and 500-character text values is about 8 MB. File uploads
# stream and are not held to it; dashboard forms (without their files) are.
REGISTRY_MAX_JSON_BODY_BYTES = int(os.environ.get("REGISTRY_MAX_JSON_BODY_BYTES", str(16 * 1024**2)))
DATA_UPLOAD_MAX_MEMORY_SIZE = REGISTRY_MAX_JSON_BODY_BYTES
# Chunk size used when streaming uploads to storage and downloads to clients.
REGISTRY_STREAM_CHUNK_BYTES = 1024 * 1024
# A token's last-used time is written at most this often, so reads stay read-only.
REGISTRY_TOKEN_TOUCH_SECONDS = 60

# --- REST API ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "registry.api.authentication.BearerTokenAuthentication",
        # Browser sessions; DRF enforces CSRF on unsafe methods for them.
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "registry.api.negotiation.ContentNegotiation",
    # DRF's JSON parser with a nesting limit and no text the database would refuse.
    "DEFAULT_PARSER_CLASSES": ["registry.api.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "registry.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "registry.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # 429 with Retry-After past a rate (registry/api/throttling.py; README "Limits").
    "DEFAULT_THROTTLE_CLASSES": [
        "registry.api.throttling.TokenRateThrottle",
        "registry.api.throttling.ScopedTokenThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        # Any request, per token (a browser session counts per user).
        "token": os.environ.get("REGISTRY_API_RATE", "3000/minute"),
        # Tamper reports, per token: each may queue a re-hash of a large file.
        "tamper_report": os.environ.get("REGISTRY_TAMPER_REPORT_RATE", "10/hour"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Model Registry API",
    "DESCRIPTION": "Store every version of your trained models, their files, metrics and lineage.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Served from the app's own static files: the docs page works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery -----------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")

# --- Cache: the API's request counts --------------------------------------------------------
# Shared by every web process when there is a Redis (one Redis may serve several registries:
# keys carry the queue name); otherwise each process counts alone.
REGISTRY_CACHE_URL = os.environ.get("REGISTRY_CACHE_URL", REDIS_URL)
if REGISTRY_CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REGISTRY_CACHE_URL,
            "KEY_PREFIX": os.environ.get("REGISTRY_CELERY_QUEUE", "registry"),
            # A cache that does not answer must not hold requests up (throttles then let them through).
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "registry"}}
# How long the serialized form of a published version, its formats or its manifest is kept
# (registry/api/conditional.py): keyed by what can still change it, it is never stale.
REGISTRY_REPRESENTATION_CACHE_SECONDS = int(os.environ.get("REGISTRY_REPRESENTATION_CACHE_SECONDS", str(24 * 3600)))

# `json`: one JSON object per line on stderr (for Loki, CloudWatch, Elasticsearch...).
REGISTRY_LOG_FORMAT = os.environ.get("REGISTRY_LOG_FORMAT", "text").strip().lower()
if REGISTRY_LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured("REGISTRY_LOG_FORMAT must be 'text' or 'json'.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "registry.logs.JsonFormatter"},
    },
    "filters": {"pool_connect_errors": {"()": "registry.logs.PoolConnectErrors"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": REGISTRY_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # A database outage is logged once per failed request, naming the cause (registry.outage).
        "psycopg.pool": {"filters": ["pool_connect_errors"]},
    },
}

# --- Celery (SPEC §2) --------------------------------------------------------------------
# Without REDIS_URL the broker is kombu's filesystem transport under the data dir: `make run`
# then needs no other service, and web and worker still talk through a real broker.
BROKER_DIR = DATA_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
# Registries sharing one Redis keep apart by queue name.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("REGISTRY_CELERY_QUEUE", "registry")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# Workers keep the registry's log format instead of installing Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Seconds: a task over the soft limit is told to stop (the file is marked failed); the hard
# limit kills the worker child, so one crafted file cannot stall the queue.
# Hours a direct upload (parts sent straight to the bucket) may take before it is aborted.
REGISTRY_UPLOAD_SESSION_HOURS = int(os.environ.get("REGISTRY_UPLOAD_SESSION_HOURS", "24"))
REGISTRY_TASK_SOFT_TIME_LIMIT = int(os.environ.get("REGISTRY_TASK_SOFT_TIME_LIMIT", "600"))
REGISTRY_TASK_TIME_LIMIT = REGISTRY_TASK_SOFT_TIME_LIMIT + 60
# Hashing reads the whole file (20 GiB at ~300 MB/s is about 70 s); it gets more room.
REGISTRY_HASH_SOFT_TIME_LIMIT = int(os.environ.get("REGISTRY_HASH_SOFT_TIME_LIMIT", "3600"))
# A worker child that grew past this (KiB) is replaced after its task: memory stays bounded.
CELERY_WORKER_MAX_MEMORY_PER_CHILD = 1024 * 1024
# A format stuck before `ready` for this long is re-queued by the reconciler.
REGISTRY_RECONCILE_AFTER_SECONDS = int(os.environ.get("REGISTRY_RECONCILE_AFTER_SECONDS", "120"))
# A file whose hashing or introspection was started this many times without finishing ends failed.
REGISTRY_MAX_PROCESSING_ATTEMPTS = int(os.environ.get("REGISTRY_MAX_PROCESSING_ATTEMPTS", "3"))
REGISTRY_INTEGRITY_SWEEP_HOURS = float(os.environ.get("REGISTRY_INTEGRITY_SWEEP_HOURS", "24"))
# Webhooks (registry.services.webhooks, registry.webhooks): where deliveries may go, how they
# are sent and for how long they are retried.
# Destinations outside the public internet (private, loopback, link-local, ULA, shared, reserved)
# are refused unless allowed here: all of them, or the networks listed (CIDRs, comma-separated).
REGISTRY_WEBHOOK_ALLOW_PRIVATE = env_bool("REGISTRY_WEBHOOK_ALLOW_PRIVATE", False)
REGISTRY_WEBHOOK_ALLOWED_NETWORKS = env_list("REGISTRY_WEBHOOK_ALLOWED_NETWORKS", [])
for _network in REGISTRY_WEBHOOK_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _error:
        raise ImproperlyConfigured(f"REGISTRY_WEBHOOK_ALLOWED_NETWORKS: {_error}") from None
REGISTRY_WEBHOOK_CONNECT_TIMEOUT = float(os.environ.get("REGISTRY_WEBHOOK_CONNECT_TIMEOUT", "5"))
# Seconds to wait for any byte of the answer, and for the whole answer.
REGISTRY_WEBHOOK_READ_TIMEOUT = float(os.environ.get("REGISTRY_WEBHOOK_READ_TIMEOUT", "10"))
REGISTRY_WEBHOOK_MAX_RESPONSE_BYTES = int(os.environ.get("REGISTRY_WEBHOOK_MAX_RESPONSE_BYTES", str(64 * 1024)))
REGISTRY_WEBHOOK_RETRY_HOURS = float(os.environ.get("REGISTRY_WEBHOOK_RETRY_HOURS", "24"))
# The first retry waits this long; each next one twice as long, up to an hour.
REGISTRY_WEBHOOK_RETRY_BASE_SECONDS = float(os.environ.get("REGISTRY_WEBHOOK_RETRY_BASE_SECONDS", "30"))
REGISTRY_WEBHOOK_SWEEP_SECONDS = float(os.environ.get("REGISTRY_WEBHOOK_SWEEP_SECONDS", "15"))
# Finished deliveries (and their attempts) are deleted this many days after they finished.
REGISTRY_WEBHOOK_KEEP_DAYS = float(os.environ.get("REGISTRY_WEBHOOK_KEEP_DAYS", "30"))
CELERY_BEAT_SCHEDULE = {
    "webhook-deliveries": {"task": "registry.tasks.webhook_deliveries_due",
                           "schedule": REGISTRY_WEBHOOK_SWEEP_SECONDS},
    "webhook-deliveries-prune": {"task": "registry.tasks.webhook_deliveries_prune", "schedule": 3600.0},
    "reconcile-formats": {"task": "registry.tasks.formats_reconcile", "schedule": 60.0},
    "integrity-sweep": {"task": "registry.tasks.integrity_sweep", "schedule": REGISTRY_INTEGRITY_SWEEP_HOURS * 3600},
    "storage-orphans": {"task": "registry.tasks.storage_orphans_sweep", "schedule": 3600.0},
}
