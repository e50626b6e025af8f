"""Tiered API rate limits on django-ratelimit's counters, checked as a DRF throttle.

A view picks its tier per action or method in ``rate_limit_tiers``; otherwise reads (GET,
HEAD, OPTIONS) are "read" and writes are "write". Each tier is one bucket per caller: the user
when authenticated, else the client IP ("auth" is always per IP, to slow password guessing).
Counters live in Redis (the "ratelimit" cache alias), so every gunicorn worker and every
server process sharing that Redis counts together. Limits come from settings.RATE_LIMITS
(RATELIMIT_<TIER> environment variables).

Over the limit: 429 in the error shape with Retry-After (DRF's Throttled). Limited endpoints
also answer X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (seconds until the
window ends), so a client can slow down before it is refused (RateLimitHeadersMiddleware).
With Redis down django-ratelimit cannot count; RATELIMIT_FAIL_OPEN (default on) lets the
request through without headers.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string
from django_ratelimit.core import (
    _SIMPLE_KEYS,
    EXPIRATION_FUDGE,
    _get_window,
    _split_rate,
    get_usage,
)
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import BaseThrottle

from core import metrics

PER_IP_TIERS = {"auth"}
# An IPv4 address as ipaddress writes it back (no leading zeros): such a string is its own
# canonical form, so the hit path need not parse it (about 15 us a request).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")


CLIENT_IP = "core.ratelimit.client_ip"  # settings.RATELIMIT_IP_META_KEY


def client_ip(request) -> str:
    """REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT proxies the address the outermost trusted
    proxy appended to X-Forwarded-For. Entries a client wrote itself (to the left) are never
    trusted; a malformed header falls back to REMOTE_ADDR."""
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_COUNT
    if not hops:
        return remote
    chain = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(chain) < hops:
        return remote
    candidate = chain[-hops]
    if _CANONICAL_IPV4.fullmatch(candidate):
        return candidate
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


@dataclass(slots=True)  # not frozen: one per request, and a frozen init costs a setattr per field
class RateLimitState:
    tier: str
    limit: int
    remaining: int
    reset: int  # seconds until the window ends and the count starts again


def tier_for(request, view) -> str:
    tiers = getattr(view, "rate_limit_tiers", {})
    action = getattr(view, "action", None)
    if action in tiers:
        return tiers[action]
    if request.method in tiers:
        return tiers[request.method]
    return "read" if request.method in SAFE_METHODS else "write"


@dataclass(slots=True)  # not frozen, as RateLimitState
class PendingCount:
    """One request's count in a tier, taken in the lean hit path's round trip (core.hit_path,
    ``INCR`` then ``EXPIRE NX``): django-ratelimit's key, window and expiry, computed as
    ``get_usage`` computes them, so a request counted there and one counted by ``get_usage``
    share the bucket."""

    tier: str
    value: str  # the bucket: the user id, or the client IP
    limit: int
    window: int  # when the window ends (epoch seconds)
    expiry: int
    key: str  # the Redis key, with the cache's prefix and version

    def usage(self, count: int) -> dict:
        """``get_usage``'s answer for the INCR's reply."""
        return {
            "count": count,
            "limit": self.limit,
            "should_limit": count > self.limit,
            "time_left": self.window - int(time.time()),
        }

    def state(self, usage: dict) -> RateLimitState:
        remaining = max(0, self.limit - usage["count"])
        return RateLimitState(self.tier, self.limit, remaining, max(1, usage["time_left"] + 1))


def ip_bucket(request) -> str:
    """django-ratelimit's "ip" key of this request (``_get_ip``: the client IP, masked), the
    common case without its parsing: a canonical IPv4 address under the default /32 mask is
    its own bucket."""
    if settings.RATELIMIT_IP_META_KEY == CLIENT_IP and getattr(settings, "RATELIMIT_IPV4_MASK", 32) == 32:
        ip = client_ip(request)
        if _CANONICAL_IPV4.fullmatch(ip):
            return ip
    return _SIMPLE_KEYS["ip"](request)


def _bucket_key(tier: str) -> str:
    return "ip" if tier in PER_IP_TIERS else "user_or_ip"


def pending_count(
    request, tier: str, user_id: int | None, make_key: Callable[[str], str]
) -> PendingCount | None:
    """The count a request of ``user_id`` (None: anonymous) in ``tier`` takes; None with limits
    off. ``make_key`` is the rate-limit cache's (prefix and version)."""
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    rate = settings.RATE_LIMITS[tier]
    limit, period, head = _rate_of(tier, rate)
    per_user = user_id is not None and _bucket_key(tier) == "user_or_ip"
    value = str(user_id) if per_user else ip_bucket(request)
    window = _get_window(value, period)
    raw_key = rate_limit_key(head, value, window)
    return PendingCount(tier, value, limit, window, period + EXPIRATION_FUDGE, make_key(raw_key))


@lru_cache(maxsize=64)
def _rate_of(tier: str, rate: str) -> tuple[int, int, str]:
    """The limit and period of ``rate``, and what django-ratelimit's cache key of the tier's
    group starts with (the group and the rate as ``<count>/<seconds>s``)."""
    limit, period = _split_rate(rate)
    return limit, period, f"tier-{tier}{limit}/{period}s"


def rate_limit_key(head: str, value: str, window: int) -> str:
    """django-ratelimit's ``_make_cache_key(group, window, rate, value, ALL)`` for the group and
    rate ``head`` names, without parsing the rate again on every request."""
    algorithm = getattr(settings, "RATELIMIT_HASH_ALGORITHM", hashlib.sha256)
    if isinstance(algorithm, str):
        algorithm = import_string(algorithm)
    prefix = getattr(settings, "RATELIMIT_CACHE_PREFIX", "rl:")
    return prefix + algorithm(f"{head}{value}{window}".encode()).hexdigest()


class TieredRateLimit(BaseThrottle):
    """DEFAULT_THROTTLE_CLASSES entry; views opt out with ``throttle_classes = []``."""

    def allow_request(self, request, view) -> bool:
        tier = tier_for(request, view)
        rate = settings.RATE_LIMITS[tier]
        key = _bucket_key(tier)
        taken = getattr(request._request, "rate_limit_taken", None)
        if taken is not None and taken[0].tier == tier and taken[0].value == _SIMPLE_KEYS[key](request):
            usage = taken[1]  # counted by the hit path's round trip (core.hit_path)
        else:
            usage = get_usage(request, group=f"tier-{tier}", key=key, rate=rate, increment=True)
        if usage is None:  # limits disabled, or Redis down with RATELIMIT_FAIL_OPEN
            return True
        # django-ratelimit's window still counts during its last second (time_left 0): the
        # count starts again time_left + 1 seconds from now, which Reset and Retry-After say.
        self.seconds_left = max(1, usage["time_left"] + 1)
        if usage["limit"]:
            request._request.rate_limit = RateLimitState(
                tier, usage["limit"], max(0, usage["limit"] - usage["count"]), self.seconds_left
            )
        if usage["should_limit"]:
            metrics.RATE_LIMITED.labels(tier).inc()
            return False
        return True

    def wait(self) -> float:
        return self.seconds_left


# --- failed sign-ins (the admin login) ------------------------------------------------------------

SIGN_IN_GROUPS = ("sign-in-ip", "sign-in-username")


def _sign_in_usage(request, group: str, username: str, *, increment: bool) -> dict | None:
    if group == "sign-in-ip":
        key = "ip"
    else:
        name = username.strip().casefold()
        key = lambda _group, _request: name  # noqa: E731 (django-ratelimit takes a key callable)
    return get_usage(request, group=group, key=key, rate=settings.RATE_LIMITS["auth"], increment=increment)


def sign_in_wait(request, *, username: str) -> int:
    """Seconds until this client IP and this username may try to sign in again (0: now).
    Counts nothing; with Redis down (fail open) never refuses."""
    wait = 0
    for group in SIGN_IN_GROUPS:
        usage = _sign_in_usage(request, group, username, increment=False)
        if usage is not None and usage["limit"] and usage["count"] >= usage["limit"]:
            wait = max(wait, usage["time_left"] + 1)
    if wait:
        metrics.RATE_LIMITED.labels("admin-login").inc()
    return wait


def sign_in_failed(request, *, username: str) -> None:
    """Count one failed sign-in against the client IP and the username."""
    for group in SIGN_IN_GROUPS:
        _sign_in_usage(request, group, username, increment=True)
