"""BountyExpo settings: one module, driven by environment variables.

Every variable read here is listed in README.md with its default. Local development gets its
values from `.local/env`, written by `make services`; variables set in the real environment
always win over that file.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from core.env import env_bool, env_decimal, env_float, env_int, env_list, env_str
from core.sentry import init_sentry

BASE_DIR = Path(__file__).resolve().parent.parent

load_dotenv(env_str("BOUNTYEXPO_ENV_FILE", str(BASE_DIR / ".local" / "env")), override=False)

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set and DEBUG is off. Set SECRET_KEY to a long random string "
            "(for example: python -c 'import secrets; print(secrets.token_urlsafe(50))'), "
            "or run through `make run`, which generates one for local use."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-debug-on"  # noqa: S105 (DEBUG only)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
# Networks whose addresses are accepted as the Host header besides ALLOWED_HOSTS (django-allow-cidr):
# Kubernetes probes and Prometheus reach a pod by its IP. Empty: no extra middleware.
ALLOWED_CIDR_NETS = env_list("ALLOWED_CIDR_NETS", [])
for _net in ALLOWED_CIDR_NETS:
    try:
        ipaddress.ip_network(_net)
    except ValueError:
        raise ImproperlyConfigured(
            f"ALLOWED_CIDR_NETS: {_net!r} is not a network (e.g. 10.0.0.0/8 or fd00::/8)."
        ) from None
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SECURE_COOKIES = env_bool("SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SECURE_CONTENT_TYPE_NOSNIFF = True
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HTTPS only: redirect plain HTTP (SecurityMiddleware), except the probes a load balancer sends
# over plain HTTP inside the network, and tell browsers to stay on HTTPS (HSTS). Off by default
# for local development; set them where the site is served over HTTPS (README, "Production").
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)

INSTALLED_APPS = [
    "core.apps.AdminConfig",  # django.contrib.admin with the throttled login of core/admin_site.py
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "core",
    "accounts",
    "bounties",
    "wallet",
    "messaging",
    "perf",
]

MIDDLEWARE = [
    "core.middleware.RequestIdMiddleware",
    # private, no-store wherever a response sets no Cache-Control (only cached reads may be shared).
    "core.middleware.CacheControlMiddleware",
    # Early, so it compresses the final body; whitenoise serves static files precompressed.
    "core.middleware.GZipMiddleware",
    "core.middleware.RateLimitHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Cached GETs answered here in one Redis round trip; what the middleware below does to
    # them, it does too (core/hit_path.py). HIT_PATH_ENABLED=0 sends every request through.
    "core.hit_path.HitPathMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# --- Metrics (core/metrics.py, core/instrumentation.py; GET /metrics) --------------------------
# Off: no request, SQL or pool metrics are measured and /metrics answers 404 (the benchmark's
# reference; see README "Observability").
METRICS_ENABLED = env_bool("METRICS_ENABLED", True)
# How often each gunicorn worker reports its connection pool to the pool gauges.
METRICS_POOL_SECONDS = env_float("METRICS_POOL_SECONDS", 5.0, minimum=0.1)
# A statement taking this long or longer is logged ("bountyexpo.slow_query") and counted.
SLOW_QUERY_MS = env_int("SLOW_QUERY_MS", 100, minimum=1)
if METRICS_ENABLED:
    # Outermost, so the latency covers the whole stack (django-prometheus's Before middleware
    # plus the guide's series; its After middleware is left out, see core/instrumentation.py).
    MIDDLEWARE = ["core.instrumentation.PrometheusBeforeMiddleware", *MIDDLEWARE]
if ALLOWED_CIDR_NETS:
    # First, as its docs ask: it takes over the Host check (ALLOWED_HOSTS becomes "*" and the
    # listed hosts or the networks are checked here), so no middleware sees a bad host first.
    MIDDLEWARE = ["allow_cidr.middleware.AllowCIDRMiddleware", *MIDDLEWARE]

HIT_PATH_ENABLED = env_bool("HIT_PATH_ENABLED", True)
# The hit path's WSGI front (core/hit_front.py, bountyexpo/wsgi.py): cached GETs answered before
# Django's handler and the middleware above the hit path. Off: the middleware answers them.
HIT_PATH_FRONT = env_bool("HIT_PATH_FRONT", True)

GZIP_MIN_BYTES = env_int("GZIP_MIN_BYTES", 1024, minimum=0)

ROOT_URLCONF = "bountyexpo.urls"
WSGI_APPLICATION = "bountyexpo.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- PostgreSQL through psycopg 3 and Django's native connection pool -------------------------
# The pool lives in each gunicorn worker process; the server sees workers x DATABASE_POOL_MAX
# connections at most. CONN_MAX_AGE must stay 0: the pool, not Django, keeps connections.
DATABASE_URL = env_str("DATABASE_URL", "postgres://bountyexpo:bountyexpo@127.0.0.1:54329/bountyexpo")
DATABASE_POOL_MIN = env_int("DATABASE_POOL_MIN", 5, minimum=0)
DATABASE_POOL_MAX = env_int("DATABASE_POOL_MAX", 20, minimum=1)
DATABASE_POOL_MAX_IDLE = env_float("DATABASE_POOL_MAX_IDLE", 30.0, minimum=1)
DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1)
DATABASE_STATEMENT_TIMEOUT_MS = env_int("DATABASE_STATEMENT_TIMEOUT_MS", 10_000, minimum=0)
# Maintenance commands (seed_data, check_ledger, purge_idempotency_keys) run their bulk SQL
# under this bound instead (core/db/maintenance.py); 0: no limit.
MAINTENANCE_STATEMENT_TIMEOUT_MS = env_int("MAINTENANCE_STATEMENT_TIMEOUT_MS", 3_600_000, minimum=0)
# Requests of one process queued for a free connection beyond this get 503 at once (0: no
# limit). Only a pool smaller than the threads it serves ever queues: then set it.
DATABASE_POOL_MAX_WAITING = env_int("DATABASE_POOL_MAX_WAITING", 0, minimum=0)
# PostgreSQL unreachable (core/db/availability.py): requests get 503 at once with this
# Retry-After, and one request per this many seconds probes with a direct connection that
# gives up after DATABASE_PROBE_TIMEOUT.
DATABASE_RETRY_SECONDS = env_int("DATABASE_RETRY_SECONDS", 1, minimum=1)
DATABASE_PROBE_TIMEOUT = env_int("DATABASE_PROBE_TIMEOUT", 1, minimum=1)
if DATABASE_POOL_MIN > DATABASE_POOL_MAX:
    raise ImproperlyConfigured(
        f"DATABASE_POOL_MIN ({DATABASE_POOL_MIN}) cannot exceed DATABASE_POOL_MAX ({DATABASE_POOL_MAX})."
    )

_default_db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
if _default_db["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(f"DATABASE_URL must point at PostgreSQL, got {_default_db['ENGINE']}.")
# Django's PostgreSQL backend plus the outage guard of core/db/availability.py.
_default_db["ENGINE"] = "core.db"
_default_db["OPTIONS"] = {
    "pool": {
        "name": "default",
        "min_size": DATABASE_POOL_MIN,
        "max_size": DATABASE_POOL_MAX,
        # Seconds a request waits for a free connection before PoolTimeout.
        "timeout": float(DATABASE_CONNECT_TIMEOUT),
        # Connections idle longer than this are closed, down to min_size.
        "max_idle": DATABASE_POOL_MAX_IDLE,
        "max_waiting": DATABASE_POOL_MAX_WAITING,
        # A failed connection attempt is given up at once instead of retried with backoff
        # (1, 2, 4 ... s); core/db/availability.py probes and lets traffic back instead.
        "reconnect_timeout": 0,
    },
    "connect_timeout": DATABASE_CONNECT_TIMEOUT,
    "application_name": env_str("DATABASE_APPLICATION_NAME", "bountyexpo"),
    # Applied by the server to every statement of every pooled connection.
    "options": f"-c statement_timeout={DATABASE_STATEMENT_TIMEOUT_MS}",
}
_direct_options = dict(_default_db["OPTIONS"])  # replicas and the direct alias reach PostgreSQL itself
DATABASES = {"default": _default_db}

# --- PgBouncer in transaction mode (README, "PgBouncer") ---------------------------------------
# DATABASE_URL points at PgBouncer in transaction mode: each transaction may run on another
# server connection. PgBouncer refuses the startup "options", so the statement timeout comes
# from PgBouncer's config (connect_query, deploy/pgbouncer/pgbouncer.ini); server-side cursors
# are off (one would outlive its transaction's server connection); nothing else relies on
# session state (Django never prepares statements: psycopg's prepare_threshold stays None).
DATABASE_PGBOUNCER = env_bool("DATABASE_PGBOUNCER", False)
# PostgreSQL itself, for what needs a session of its own: the perf admin's monitor connection
# (its statement timeout as a startup option, hypopg's hypothetical indexes). Required with
# DATABASE_PGBOUNCER; otherwise DATABASE_URL serves.
DATABASE_DIRECT_URL = env_str("DATABASE_DIRECT_URL", "")
if DATABASE_PGBOUNCER:
    if not DATABASE_DIRECT_URL:
        raise ImproperlyConfigured(
            "DATABASE_PGBOUNCER=1 needs DATABASE_DIRECT_URL: PostgreSQL itself, for the perf monitor."
        )
    del _default_db["OPTIONS"]["options"]
    _default_db["DISABLE_SERVER_SIDE_CURSORS"] = True
if DATABASE_DIRECT_URL:
    _direct = dj_database_url.parse(DATABASE_DIRECT_URL, conn_max_age=0)
    if _direct["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"DATABASE_DIRECT_URL must point at PostgreSQL, got {_direct['ENGINE']}.")
    # No pool and no router entry: only perf.monitor.db reads its parameters.
    _direct["OPTIONS"] = {k: v for k, v in _direct_options.items() if k != "pool"}
    _direct["TEST"] = {"MIRROR": "default"}  # under test, the test database
    DATABASES["direct"] = _direct

# --- Streaming replicas (core/db/replicas.py) ----------------------------------------------
# Zero or more read-only replicas: safe-method API requests read from one (lists, details,
# search, profiles, conversations), everything else stays on the primary. Each worker keeps a
# pool per replica (the same sizes as the primary's): count them in the connection budget.
DATABASE_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS", [])
# A replica further behind the primary than this is skipped (reads go to the primary).
DATABASE_REPLICA_MAX_LAG_SECONDS = env_float("DATABASE_REPLICA_MAX_LAG_SECONDS", 5.0, minimum=0)
# How often each process measures a replica's lag, and how long it leaves a replica that
# failed (connect error, lost connection, recovery conflict) before trying it again.
DATABASE_REPLICA_CHECK_SECONDS = env_float("DATABASE_REPLICA_CHECK_SECONDS", 2.0, minimum=0.1)
DATABASE_REPLICA_RETRY_SECONDS = env_float("DATABASE_REPLICA_RETRY_SECONDS", 5.0, minimum=0.1)
# A page to cache is computed on a replica only once it has replayed the primary's WAL up to
# the moment the page's generation was read: how long a cache miss waits for that (else the
# primary computes it).
DATABASE_REPLICA_CATCH_UP_MS = env_int("DATABASE_REPLICA_CATCH_UP_MS", 20, minimum=0)
# After a user's write, that user's reads stay on the primary this long (tracked in Redis, so
# on every worker and instance).
DATABASE_READ_YOUR_WRITES_SECONDS = env_float("DATABASE_READ_YOUR_WRITES_SECONDS", 5.0, minimum=0)
for _number, _url in enumerate(DATABASE_REPLICA_URLS, start=1):
    _replica = dj_database_url.parse(_url, conn_max_age=0)
    if _replica["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"DATABASE_REPLICA_URLS: replica {_number} must be PostgreSQL, got {_replica['ENGINE']}."
        )
    _replica["ENGINE"] = "core.db"
    _replica["OPTIONS"] = {
        **_direct_options,
        "pool": {**_direct_options["pool"], "name": f"replica_{_number}"},
    }
    # Under test, the replica is the test database (Django creates none for it).
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES[f"replica_{_number}"] = _replica
if DATABASE_REPLICA_URLS:
    DATABASE_ROUTERS = ["core.db.replicas.PrimaryReplicaRouter"]
    # Last: it runs a request again on the primary when its replica failed under it, and only
    # the view then runs twice.
    MIDDLEWARE = [*MIDDLEWARE, "core.db.replicas.ReplicaMiddleware"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis through django-redis -------------------------------------------------------------
# Short socket timeouts plus IGNORE_EXCEPTIONS: a dead Redis costs a request at most
# REDIS_SOCKET_TIMEOUT and the code falls back to PostgreSQL; it never hangs.
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:63799/0")
REDIS_CONNECT_TIMEOUT = env_float("REDIS_CONNECT_TIMEOUT", 0.5, minimum=0.01)
REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 0.5, minimum=0.01)


def _redis_cache(*, ignore_exceptions: bool, counted: bool = True) -> dict:
    # django-prometheus's subclass of django-redis counts gets, hits and misses per backend
    # (django_cache_*); the rate-limit alias stays plain (django-ratelimit warns otherwise).
    counted = counted and METRICS_ENABLED
    return {
        "BACKEND": "django_prometheus.cache.backends.redis.RedisCache"
        if counted
        else "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "bx"),
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": REDIS_CONNECT_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "IGNORE_EXCEPTIONS": ignore_exceptions,
        },
    }


CACHES = {
    # Token owners, view counts, idempotency: a failing call returns None (counted by the
    # "bountyexpo.cache" logger's filter) and the code falls back to PostgreSQL.
    "default": _redis_cache(ignore_exceptions=True),
    # Cached responses (core/response_cache.py): failures raise, so the cache layer can tell
    # "Redis is down" from "not cached" and stop asking for CACHE_RETRY_SECONDS.
    "responses": _redis_cache(ignore_exceptions=False),
    # Rate-limit counters, a plain alias of their own (TRAPS): a failing call returns None and
    # django-ratelimit then applies RATELIMIT_FAIL_OPEN.
    "ratelimit": _redis_cache(ignore_exceptions=True, counted=False),
}

# --- Response cache (core/response_cache.py) --------------------------------------------------
# Seconds each kind of response stays fresh in Redis; 0 turns that cache off.
CACHE_TTL_BOUNTY_DETAIL = env_int("CACHE_TTL_BOUNTY_DETAIL", 180, minimum=0)
CACHE_TTL_BOUNTY_LIST = env_int("CACHE_TTL_BOUNTY_LIST", 60, minimum=0)
CACHE_TTL_SEARCH = env_int("CACHE_TTL_SEARCH", 120, minimum=0)
CACHE_TTL_PROFILE = env_int("CACHE_TTL_PROFILE", 300, minimum=0)
CACHE_TTL_USER_STATS = env_int("CACHE_TTL_USER_STATS", 300, minimum=0)
# A user's own conversation pages (messaging/caching.py): every change moves the user's counter,
# so the TTL only bounds how long an unread page keeps its memory.
CACHE_TTL_CONVERSATIONS = env_int("CACHE_TTL_CONVERSATIONS", 300, minimum=0)
# After expiry an entry is served (X-Cache: stale) this much longer while one request
# recomputes it.
CACHE_STALE_SECONDS = env_int("CACHE_STALE_SECONDS", 30, minimum=0)
# The freshness contract (README): a write's author sees it at once; everyone else within this
# many seconds, during which the entry it invalidated is still served (X-Cache: stale) while
# one request refreshes it. 0: an invalidated entry is never served. At most the list TTL.
CACHE_PUBLIC_LAG_SECONDS = env_int(
    "CACHE_PUBLIC_LAG_SECONDS", min(5, CACHE_TTL_BOUNTY_LIST), minimum=0, maximum=CACHE_TTL_BOUNTY_LIST
)
# An invalidated entry younger than this is served without a refresh: a page read all the time
# is recomputed about once per this interval however many writes arrive. Half the lag by
# default (docs/perf/churn.md: 2.5 s against 1 s, 67 % against 53 % of the readers' throughput
# at 10 posts/s).
CACHE_COALESCE_SECONDS = env_float("CACHE_COALESCE_SECONDS", CACHE_PUBLIC_LAG_SECONDS / 2, minimum=0)
# The recompute lock's lifetime, and how long requests wait for another's recompute when
# there is no stale value to serve.
CACHE_LOCK_SECONDS = env_int("CACHE_LOCK_SECONDS", 10, minimum=1)
CACHE_LOCK_WAIT_SECONDS = env_float("CACHE_LOCK_WAIT_SECONDS", 2.0, minimum=0)
# After a Redis failure a process serves from PostgreSQL without trying Redis this long.
CACHE_RETRY_SECONDS = env_float("CACHE_RETRY_SECONDS", 5.0, minimum=0)

# Edge caching (README "Edge caching"): how long a shared cache (nginx's micro-cache, a CDN)
# may serve an anonymous cached read without asking (s-maxage), how much longer it may serve it
# while one request revalidates (stale-while-revalidate), and how long while the app fails
# (stale-if-error). Everyone but the author then sees a write within CACHE_PUBLIC_LAG_SECONDS
# + EDGE_CACHE_SECONDS + EDGE_STALE_WHILE_REVALIDATE_SECONDS (12 s by default), at most the
# list TTL. EDGE_CACHE_SECONDS=0: no shared cache may serve without revalidating (no-cache).
_EDGE_BUDGET = CACHE_TTL_BOUNTY_LIST - CACHE_PUBLIC_LAG_SECONDS  # what the contract leaves the edge
EDGE_CACHE_SECONDS = env_int("EDGE_CACHE_SECONDS", min(2, _EDGE_BUDGET), minimum=0, maximum=_EDGE_BUDGET)
EDGE_STALE_WHILE_REVALIDATE_SECONDS = env_int(
    "EDGE_STALE_WHILE_REVALIDATE_SECONDS",
    min(5, _EDGE_BUDGET - EDGE_CACHE_SECONDS),
    minimum=0,
    maximum=_EDGE_BUDGET - EDGE_CACHE_SECONDS,
)
EDGE_STALE_IF_ERROR_SECONDS = env_int("EDGE_STALE_IF_ERROR_SECONDS", 300, minimum=0)

# Search ranks the newest this-many matches of its filters and returns the best of them
# (bounties/selectors.py newest_matches): its cost stays flat as the table grows.
SEARCH_RANK_CANDIDATES = env_int("SEARCH_RANK_CANDIDATES", 200, minimum=1)

# --- Rate limits (core/ratelimit.py, django-ratelimit) ----------------------------------------
# "<count>/<period>" with period s, m, h or d, optionally multiplied: "5/15m".
RATE_LIMIT_DEFAULTS = {
    "search": "20/m",
    "list": "60/m",
    "read": "100/m",
    "write": "30/m",
    "money": "10/m",
    "auth": "5/15m",
}
RATE_LIMITS = {
    tier: env_str(f"RATELIMIT_{tier.upper()}", default) for tier, default in RATE_LIMIT_DEFAULTS.items()
}
for _tier, _rate in RATE_LIMITS.items():
    if not re.fullmatch(r"[1-9]\d*/\d*[smhd]", _rate):
        raise ImproperlyConfigured(f"RATELIMIT_{_tier.upper()}={_rate!r}: expected e.g. 20/m or 5/15m.")
RATELIMIT_ENABLE = env_bool("RATELIMIT_ENABLE", True)
RATELIMIT_USE_CACHE = "ratelimit"
RATELIMIT_CACHE_PREFIX = "rl:"
# Redis down: let requests through (see README, "Rate limits").
RATELIMIT_FAIL_OPEN = env_bool("RATELIMIT_FAIL_OPEN", True)
# The client address: REMOTE_ADDR, or with TRUSTED_PROXY_COUNT proxies in front, the address
# the outermost trusted proxy saw (from X-Forwarded-For).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
RATELIMIT_IP_META_KEY = "core.ratelimit.client_ip"
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
DJANGO_REDIS_LOGGER = "bountyexpo.cache"

# --- Authentication -------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_TOKEN_TTL_DAYS = env_int("AUTH_TOKEN_TTL_DAYS", 30, minimum=1)
# How long a token's owner is served from Redis before PostgreSQL is asked again; also the
# longest a revoked token or deactivated user can go on working if Redis missed the eviction.
AUTH_TOKEN_CACHE_SECONDS = env_int("AUTH_TOKEN_CACHE_SECONDS", 300, minimum=0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Marketplace ---------------------------------------------------------------------------------
PLATFORM_FEE_PERCENT = env_decimal("PLATFORM_FEE_PERCENT", "5", minimum="0", maximum="50")
# Detail views are counted in Redis and written to PostgreSQL in one batch at most this often.
VIEW_COUNT_FLUSH_SECONDS = env_int("VIEW_COUNT_FLUSH_SECONDS", 10, minimum=1)

# --- REST framework and OpenAPI ----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    # Adds the error responses and area tags to every operation (core/schema.py).
    "DEFAULT_SCHEMA_CLASS": "core.schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "core.pagination.CursorPagination",
    "DEFAULT_THROTTLE_CLASSES": ["core.ratelimit.TieredRateLimit"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "BountyExpo API",
    "DESCRIPTION": "Bounty marketplace: bounties, applications, search, wallet and messaging.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The areas core.schema.ApiAutoSchema.get_tags files operations under, in this order.
    "TAGS": [
        {"name": "auth", "description": "Register, log in (bearer tokens) and log out."},
        {"name": "profiles", "description": "Public profiles, your own profile, and user statistics."},
        {"name": "bounties", "description": "Posting, listing, searching and the bounty status flow."},
        {"name": "applications", "description": "Hunters' applications to bounties and owners' decisions."},
        {"name": "wallet", "description": "Balance, ledger, deposits and withdrawals."},
        {"name": "messaging", "description": "Conversations and their messages."},
    ],
    "ENUM_NAME_OVERRIDES": {
        "BountyStatusEnum": "bounties.models.BountyStatus",
        "RequestStatusEnum": "bounties.models.RequestStatus",
        "TransactionStatusEnum": "wallet.models.TransactionStatus",
    },
}

# --- The perf admin (perf/monitor/) ------------------------------------------------------------
# Every page's SQL runs on a connection of its own with this statement timeout.
PERF_STATEMENT_TIMEOUT_MS = env_int("PERF_STATEMENT_TIMEOUT_MS", 2000, minimum=100)
# Live queries (and the overview's long-running check) list queries running longer than this.
PERF_LONG_QUERY_SECONDS = env_float("PERF_LONG_QUERY_SECONDS", 1.0, minimum=0)
# Overview thresholds: amber at the first, red at the second.
PERF_POOL_WARNING_PCT = env_int("PERF_POOL_WARNING_PCT", 80, minimum=1, maximum=100)
PERF_POOL_CRITICAL_PCT = env_int("PERF_POOL_CRITICAL_PCT", 95, minimum=1, maximum=100)
PERF_CONNECTIONS_WARNING_PCT = env_int("PERF_CONNECTIONS_WARNING_PCT", 70, minimum=1, maximum=100)
PERF_CONNECTIONS_CRITICAL_PCT = env_int("PERF_CONNECTIONS_CRITICAL_PCT", 90, minimum=1, maximum=100)
# Response-cache hit rate: amber under the first, red under the second.
PERF_CACHE_HIT_WARNING_PCT = env_int("PERF_CACHE_HIT_WARNING_PCT", 70, minimum=0, maximum=100)
PERF_CACHE_HIT_CRITICAL_PCT = env_int("PERF_CACHE_HIT_CRITICAL_PCT", 50, minimum=0, maximum=100)
PERF_REDIS_MEMORY_WARNING_PCT = env_int("PERF_REDIS_MEMORY_WARNING_PCT", 80, minimum=1, maximum=100)
PERF_REDIS_MEMORY_CRITICAL_PCT = env_int("PERF_REDIS_MEMORY_CRITICAL_PCT", 95, minimum=1, maximum=100)
# A statement is slow when its mean time over the window is above this.
PERF_SLOW_QUERY_MS = env_int("PERF_SLOW_QUERY_MS", 100, minimum=1)
# Tables over this many rows whose index-scan share is under PERF_INDEX_SCAN_MIN_PCT are flagged.
PERF_SEQ_SCAN_MIN_ROWS = env_int("PERF_SEQ_SCAN_MIN_ROWS", 10_000, minimum=0)
PERF_INDEX_SCAN_MIN_PCT = env_int("PERF_INDEX_SCAN_MIN_PCT", 95, minimum=0, maximum=100)
# check_ledger older than this is amber on the overview.
PERF_LEDGER_CHECK_MAX_AGE_HOURS = env_int("PERF_LEDGER_CHECK_MAX_AGE_HOURS", 24, minimum=1)
# pg_stat_statements snapshots: a page view takes one when the newest is older than this; kept
# this many days (perf_snapshot prunes).
PERF_SNAPSHOT_MAX_AGE_SECONDS = env_int("PERF_SNAPSHOT_MAX_AGE_SECONDS", 300, minimum=10)
PERF_SNAPSHOT_RETENTION_DAYS = env_int("PERF_SNAPSHOT_RETENTION_DAYS", 7, minimum=1)
# Each gunicorn worker publishes its pool statistics this often; the pool page's history covers
# the last PERF_POOL_HISTORY_MINUTES.
PERF_POOL_PUBLISH_SECONDS = env_int("PERF_POOL_PUBLISH_SECONDS", 5, minimum=1)
PERF_POOL_HISTORY_MINUTES = env_int("PERF_POOL_HISTORY_MINUTES", 60, minimum=1)

# --- Internationalisation and static files ----------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".local" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Logging ----------------------------------------------------------------------------------
LOG_FORMAT = env_str("LOG_FORMAT", "text")
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'text' or 'json', got {LOG_FORMAT!r}.")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "core.logging.RequestIdFilter"},
        "pool_events": {"()": "core.logging.PoolEventFilter"},
        "cache_errors": {"()": "core.logging.CacheErrorFilter"},
    },
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": LOG_FORMAT,
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # django-redis reports each ignored Redis failure here: counted, and logged sparingly.
        "bountyexpo.cache": {
            "handlers": ["console"],
            "filters": ["cache_errors"],
            "level": "INFO",
            "propagate": False,
        },
        # Statements over SLOW_QUERY_MS, once each, with route, request id and normalised SQL.
        "bountyexpo.slow_query": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # Pool connect/remove events and errors: psycopg_pool logs them at INFO/WARNING.
        "psycopg.pool": {
            "handlers": ["console"],
            "filters": ["pool_events"],
            "level": env_str("POOL_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
    },
}

# --- Error reporting (core/sentry.py) -----------------------------------------------------------
# Off unless SENTRY_DSN is set: then the SDK is not even initialised. Last, so that it sees the
# final settings; gunicorn does not preload the app, so each worker starts its own client.
SENTRY_DSN = env_str("SENTRY_DSN")
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", "development" if DEBUG else "production")
SENTRY_RELEASE = env_str("SENTRY_RELEASE")
SENTRY_TRACES_SAMPLE_RATE = env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0, minimum=0.0)
init_sentry(
    SENTRY_DSN,
    environment=SENTRY_ENVIRONMENT,
    release=SENTRY_RELEASE or None,
    traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
)
