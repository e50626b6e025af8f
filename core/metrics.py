"""Prometheus metrics defined by the project (names from SPEC's metrics list).

Under gunicorn every worker writes to PROMETHEUS_MULTIPROC_DIR (deploy/gunicorn.conf.py) and
GET /metrics adds the workers up; in a single process (tests, runserver) the default registry
answers. Only plain counters here: they work the same in both modes.
"""

from __future__ import annotations

from prometheus_client import Counter

CACHE_HITS = Counter(
    "cache_hits_total", "Responses served from the Redis cache (fresh).", ["cache_key_prefix"]
)
CACHE_STALE = Counter(
    "cache_stale_total",
    "Responses served from an expired cache entry while another request recomputes it.",
    ["cache_key_prefix"],
)
CACHE_MISSES = Counter(
    "cache_misses_total",
    "Responses computed from PostgreSQL: absent, expired or invalidated, or the cache off or down.",
    ["cache_key_prefix"],
)
CACHE_ERRORS = Counter(
    "cache_errors_total", "Redis calls that failed (the request went on without the cache).", ["cache"]
)
RATE_LIMITED = Counter("rate_limited_total", "Requests refused with 429, by rate-limit tier.", ["tier"])
