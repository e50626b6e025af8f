"""The cache page: Redis's memory, clients and keys, the response cache's hit rates per cached
kind, and a confirmed action to invalidate one cached family or kind.

Hit rates come from the app's own counters (core/metrics.py), not from Redis: Redis's
keyspace hits also count generation-counter reads, locks and rate limits. Under gunicorn
every worker writes its counters to PROMETHEUS_MULTIPROC_DIR and this page adds them up, as
``/metrics`` does; in a single process (runserver, tests) the process's registry answers. They
are cumulative since the server started.

Keys are counted with SCAN in batches, never KEYS (which blocks Redis for the whole keyspace),
up to SCAN_MAX_KEYS keys and SCAN_MAX_SECONDS; past either bound the counts are partial, the
page says so and extrapolates each prefix to the whole keyspace (SCAN visits keys in hash
order, unrelated to their names, so the sample is fair).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.cache import caches
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path
from django_redis import get_redis_connection
from prometheus_client import REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector

from core import metrics, response_cache
from core.response_cache import CachedKind
from perf.monitor.charts import nice
from perf.monitor.models import CacheStats
from perf.monitor.pages import Level, MonitorPageAdmin, level_for

# Every cache alias points at the same Redis database (REDIS_URL); "default" is the one whose
# failures are ignored, which suits a raw client that reports its own errors.
REDIS_ALIAS = "default"
REDIS_ERRORS = response_cache.REDIS_ERRORS
# SCAN's COUNT hint: keys Redis looks at per call, each call a few milliseconds at most.
SCAN_BATCH = 1000
# The most keys the page walks, and for how long: a larger keyspace is counted in part (the
# page says so, and extrapolates). About 5 µs a key here: 100,000 keys take half a second.
SCAN_MAX_KEYS = 100_000
SCAN_MAX_SECONDS = 1.0
# The response cache's key prefixes, followed by a schema version and the kind (or family).
KIND_PREFIXES = ("resp", "gen")
PREFIX_HELP = {
    "resp": "cached response",
    "gen": "generation counter",
    "auth-token": "token owner (authentication cache)",
    "rl": "rate-limit counter",
    "bounty-views": "view counts waiting to be flushed",
    "perf-pool": "pool statistics published by the workers",
}


def _redis():
    return get_redis_connection(REDIS_ALIAS)


def _namespace() -> str:
    """What the cache puts before every key (KEY_PREFIX and version: ``bx:1:``)."""
    return str(caches[REDIS_ALIAS].make_key(""))


# --- Redis INFO ---------------------------------------------------------------------------------


@dataclass
class RedisInfo:
    """What INFO says, in the units the page shows."""

    version: str
    uptime_seconds: int
    used_memory: int
    peak_memory: int
    max_memory: int  # 0: no maxmemory set
    system_memory: int
    fragmentation: float | None
    policy: str
    evicted_keys: int
    expired_keys: int
    keyspace_hits: int
    keyspace_misses: int
    connected_clients: int
    keys: int  # in this database (DBSIZE)

    @classmethod
    def read(cls, client) -> RedisInfo:
        info = client.info()
        return cls(
            version=str(info.get("redis_version", "")),
            uptime_seconds=int(info.get("uptime_in_seconds", 0)),
            used_memory=int(info.get("used_memory", 0)),
            peak_memory=int(info.get("used_memory_peak", 0)),
            max_memory=int(info.get("maxmemory", 0)),
            system_memory=int(info.get("total_system_memory", 0)),
            fragmentation=info.get("mem_fragmentation_ratio"),
            policy=str(info.get("maxmemory_policy", "")),
            evicted_keys=int(info.get("evicted_keys", 0)),
            expired_keys=int(info.get("expired_keys", 0)),
            keyspace_hits=int(info.get("keyspace_hits", 0)),
            keyspace_misses=int(info.get("keyspace_misses", 0)),
            connected_clients=int(info.get("connected_clients", 0)),
            keys=int(client.dbsize()),
        )

    @property
    def memory_limit(self) -> int:
        """maxmemory, or the machine's memory when Redis has no limit of its own."""
        return self.max_memory or self.system_memory

    @property
    def memory_pct(self) -> float | None:
        return self.used_memory / self.memory_limit * 100 if self.memory_limit else None

    @property
    def memory_level(self) -> Level:
        return level_for(
            self.memory_pct,
            warning=settings.PERF_REDIS_MEMORY_WARNING_PCT,
            critical=settings.PERF_REDIS_MEMORY_CRITICAL_PCT,
        )

    @property
    def keyspace_hit_pct(self) -> float | None:
        total = self.keyspace_hits + self.keyspace_misses
        return self.keyspace_hits / total * 100 if total else None

    @property
    def uptime(self) -> str:
        days, rest = divmod(self.uptime_seconds, 86_400)
        hours, rest = divmod(rest, 3600)
        minutes = rest // 60
        return f"{days} d {hours} h" if days else f"{hours} h {minutes} min" if hours else f"{minutes} min"


# --- keys per prefix -----------------------------------------------------------------------------


def key_prefix(key: str, namespace: str) -> str:
    """The family a key belongs to: ``resp:bounty-list``, ``gen:bounties``, ``rl`` ... (the
    cache's namespace removed; the response cache's prefixes keep their kind)."""
    # str.partition rather than split or a regex: this runs for every key walked.
    inside = key.startswith(namespace)
    head, _, rest = key[len(namespace) :].partition(":") if inside else key.partition(":")
    prefix = head
    if head in KIND_PREFIXES:
        version, _, rest = rest.partition(":")
        kind = rest.partition(":")[0]
        if kind and version[:1] == "v" and version[1:].isdigit():
            prefix = f"{head}:{kind}"
    if key.endswith(":lock"):
        prefix += " (lock)"
    return prefix if inside else f"{prefix} (outside {namespace})"


@dataclass
class KeyCount:
    """Keys per prefix, as far as the walk went."""

    counts: list[tuple[str, int]]
    walked: int
    total: int
    partial: bool
    seconds: float
    stopped_by: str = ""

    def estimate(self, count: int) -> int:
        """``count`` scaled to the whole keyspace (itself when every key was walked)."""
        if not self.partial or not self.walked:
            return count
        return round(count * self.total / self.walked)


def count_keys(client, *, max_keys: int | None = None, budget_seconds: float | None = None) -> KeyCount:
    """Walk the keyspace with SCAN (bounded by ``max_keys`` and ``budget_seconds``) and count
    keys per prefix."""
    max_keys = SCAN_MAX_KEYS if max_keys is None else max_keys
    budget = SCAN_MAX_SECONDS if budget_seconds is None else budget_seconds
    namespace = _namespace()
    counts: Counter[str] = Counter()
    started = time.monotonic()
    cursor, walked, stopped_by = 0, 0, ""
    total = int(client.dbsize())
    while True:
        cursor, keys = client.scan(cursor, count=SCAN_BATCH)
        for raw in keys:
            counts[key_prefix(raw.decode(errors="replace"), namespace)] += 1
        walked += len(keys)
        if cursor == 0:
            break
        if walked >= max_keys:
            stopped_by = f"the first {max_keys:,} keys (SCAN_MAX_KEYS)"
            break
        if time.monotonic() - started > budget:
            stopped_by = f"{nice(budget)} s of scanning (SCAN_MAX_SECONDS)"
            break
    return KeyCount(
        counts=sorted(counts.items(), key=lambda item: (-item[1], item[0])),
        walked=walked,
        total=total,
        partial=bool(stopped_by),
        seconds=time.monotonic() - started,
        stopped_by=stopped_by,
    )


def prefix_help(prefix: str) -> str:
    return PREFIX_HELP.get(prefix.split(":")[0].split(" ")[0], "")


# --- the app's counters --------------------------------------------------------------------------


@dataclass
class KindStats:
    """One cached kind's lookups since the server started, summed over the workers."""

    name: str
    hits: float = 0
    stale: float = 0
    misses: float = 0

    @property
    def lookups(self) -> float:
        return self.hits + self.stale + self.misses

    def share(self, count: float) -> float | None:
        return count / self.lookups * 100 if self.lookups else None

    @property
    def hit_pct(self) -> float | None:
        return self.share(self.hits)

    @property
    def stale_pct(self) -> float | None:
        return self.share(self.stale)

    @property
    def miss_pct(self) -> float | None:
        return self.share(self.misses)

    @property
    def served_pct(self) -> float | None:
        """Answered without PostgreSQL (fresh or stale): what the thresholds judge, since a
        stale answer while one request recomputes costs the database nothing."""
        return self.share(self.hits + self.stale)

    @property
    def level(self) -> Level:
        return level_for(
            self.served_pct,
            warning=settings.PERF_CACHE_HIT_WARNING_PCT,
            critical=settings.PERF_CACHE_HIT_CRITICAL_PCT,
            higher_is_worse=False,
        )


def _family_name(counter) -> str:
    return counter.describe()[0].name


def _collect() -> list:
    """Every metric family: summed over the workers' files in multiprocess mode (as /metrics
    does), else this process's registry."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and os.path.isdir(directory):
        return list(MultiProcessCollector(None, path=directory).collect())
    return list(REGISTRY.collect())


@dataclass
class Counters:
    kinds: dict[str, KindStats] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)  # Redis failures, by key prefix

    @property
    def overall(self) -> KindStats:
        total = KindStats("all kinds")
        for kind in self.kinds.values():
            total.hits += kind.hits
            total.stale += kind.stale
            total.misses += kind.misses
        return total


def read_counters() -> Counters:
    """The response cache's hits, stale answers and misses per kind, and Redis errors."""
    fields = {
        _family_name(metrics.CACHE_HITS): "hits",
        _family_name(metrics.CACHE_STALE): "stale",
        _family_name(metrics.CACHE_MISSES): "misses",
    }
    errors_name = _family_name(metrics.CACHE_ERRORS)
    counters = Counters()
    for family in _collect():
        if family.name not in fields and family.name != errors_name:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue  # _created timestamps in single-process mode
            if family.name == errors_name:
                prefix = sample.labels.get("cache_key_prefix", "")
                counters.errors[prefix] = counters.errors.get(prefix, 0) + sample.value
                continue
            name = sample.labels.get("cache_key_prefix", "")
            kind = counters.kinds.setdefault(name, KindStats(name))
            setattr(kind, fields[family.name], getattr(kind, fields[family.name]) + sample.value)
    return counters


# --- invalidation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What one invalidate button moves: a family's single generation counter, or every
    per-object counter of a kind without a family."""

    slug: str
    label: str
    kinds: tuple[str, ...]
    family_scope: str | None = None
    object_kind: CachedKind | None = None

    @property
    def description(self) -> str:
        if self.family_scope is not None:
            return f"the generation counter {self.family_scope}, shared by {', '.join(self.kinds)}"
        return f"every per-object generation counter of {self.kinds[0]} ({self.object_kind.scope('*')})"


def invalidation_targets() -> list[Target]:
    """One target per cached family and per kind cached object by object."""
    # The domain apps declare their cached kinds; the monitor imports them only for this
    # action, which calls the response cache on their behalf.
    from accounts import caching as accounts_caching
    from bounties import caching as bounties_caching
    from messaging import caching as messaging_caching

    kinds = [
        value
        for module in (bounties_caching, accounts_caching, messaging_caching)
        for value in vars(module).values()
        if isinstance(value, CachedKind)
    ]
    families: dict[str, list[CachedKind]] = {}
    targets = []
    for kind in kinds:
        if kind.family is not None:
            families.setdefault(kind.family, []).append(kind)
        else:
            targets.append(Target(f"kind-{kind.name}", kind.name, (kind.name,), object_kind=kind))
    for family, members in families.items():
        names = tuple(sorted(kind.name for kind in members))
        targets.append(Target(f"family-{family}", f"{family} family", names, family_scope=members[0].scope()))
    return sorted(targets, key=lambda target: target.slug)


def generation(scope: str) -> int | None:
    """A generation counter's current value (None: not started yet)."""
    value = caches[response_cache.CACHE_ALIAS].get(scope)
    return None if value is None else int(value)


def object_scopes(client, kind: CachedKind) -> list[str]:
    """Every per-object generation counter of ``kind`` in Redis (a full SCAN: an invalidation
    must not stop half way), as the cache names them (without its namespace)."""
    cache = caches[response_cache.CACHE_ALIAS]
    namespace = str(cache.make_key(""))
    pattern = str(cache.make_key(kind.scope("*")))
    return [raw.decode()[len(namespace) :] for raw in client.scan_iter(match=pattern, count=SCAN_BATCH)]


def invalidate(target: Target) -> str:
    """Bump the target's generation counter(s) through the response cache; what happened, for
    the staff message and the admin log. Redis errors propagate."""
    if target.family_scope is not None:
        before = generation(target.family_scope)
        response_cache.bump([target.family_scope], hard=True)
        after = generation(target.family_scope)
        if after is None or (before is not None and after <= before):
            return f"Invalidation of the {target.label} could not reach Redis; this process retries it."
        was = "not started" if before is None else before
        return (
            f"Invalidated the {target.label} ({', '.join(target.kinds)}): generation {was} → {after}; "
            "entries cached before are no longer served, not even within the public lag."
        )
    scopes = object_scopes(get_redis_connection(response_cache.CACHE_ALIAS), target.object_kind)
    response_cache.bump(scopes, hard=True)
    return (
        f"Invalidated {target.label}: bumped {len(scopes)} per-object generation counter(s); "
        "entries cached before are no longer served."
    )


# --- the summary ---------------------------------------------------------------------------------


def cache_summary() -> dict[str, Any]:
    """The cache in one line, for the overview page (INFO and the counters; no SCAN).

    Keys: ``hit_rate_pct`` (lookups answered from the cache, fresh or stale, over all lookups
    since the server started; None before any), ``level`` (against PERF_CACHE_HIT_WARNING_PCT /
    _CRITICAL_PCT, lower is worse), ``lookups``, ``redis_ok``, ``redis_error`` (None when Redis
    answered), ``used_memory`` and ``max_memory`` (bytes; max is maxmemory or, without one, the
    machine's memory; None when Redis is down), ``memory_pct``, ``memory_level`` (against
    PERF_REDIS_MEMORY_WARNING_PCT / _CRITICAL_PCT), ``evictions``, ``version``,
    ``uptime_seconds``.
    """
    overall = read_counters().overall
    summary: dict[str, Any] = {
        "hit_rate_pct": overall.served_pct,
        "level": overall.level,
        "lookups": int(overall.lookups),
        "redis_ok": False,
        "redis_error": None,
        "used_memory": None,
        "max_memory": None,
        "memory_pct": None,
        "memory_level": Level.UNKNOWN,
        "evictions": None,
        "version": None,
        "uptime_seconds": None,
    }
    try:
        info = RedisInfo.read(_redis())
    except REDIS_ERRORS as exc:
        summary["redis_error"] = f"Redis is unreachable: {exc}"
        return summary
    summary.update(
        redis_ok=True,
        used_memory=info.used_memory,
        max_memory=info.memory_limit or None,
        memory_pct=info.memory_pct,
        memory_level=info.memory_level,
        evictions=info.evicted_keys,
        version=info.version,
        uptime_seconds=info.uptime_seconds,
    )
    return summary


# --- the page ------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{nice(value)} %"


def _kind_row(kind: KindStats, target: Target | None, generations: dict[str, int | None]) -> dict[str, Any]:
    return {
        "name": kind.name,
        "hits": int(kind.hits),
        "stale": int(kind.stale),
        "misses": int(kind.misses),
        "lookups": int(kind.lookups),
        "hit_pct": _pct(kind.hit_pct),
        "stale_pct": _pct(kind.stale_pct),
        "miss_pct": _pct(kind.miss_pct),
        "served_pct": _pct(kind.served_pct),
        "level": kind.level,
        "target": target,
        "generation": generations.get(target.slug) if target else None,
    }


@admin.register(CacheStats)
class CacheStatsAdmin(MonitorPageAdmin):
    template_name = "admin/perf/monitor/cache.html"
    order = 60

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        return [
            path(
                "invalidate/<slug:slug>/",
                self.admin_site.admin_view(self.invalidate_view),
                name=f"{opts.app_label}_{opts.model_name}_invalidate",
            ),
            *super().get_urls(),
        ]

    def page_context(self, request: HttpRequest) -> dict[str, Any]:
        counters = read_counters()
        targets = invalidation_targets()
        by_kind = {name: target for target in targets for name in target.kinds}
        redis_error = info = keys = None
        generations: dict[str, int | None] = {}
        try:
            client = _redis()
            info = RedisInfo.read(client)
            keys = count_keys(client)
            generations = {t.slug: generation(t.family_scope) for t in targets if t.family_scope}
        except REDIS_ERRORS as exc:
            redis_error = f"Redis is unreachable ({settings.REDIS_URL.rsplit('@', 1)[-1]}): {exc}"
        # Every known kind gets a row, with no lookups yet if it has none.
        for name in by_kind:
            counters.kinds.setdefault(name, KindStats(name))
        overall = counters.overall
        return {
            "redis_error": redis_error,
            "info": info,
            "memory_pct": _pct(info.memory_pct) if info else "-",
            "fragmentation": nice(info.fragmentation) if info and info.fragmentation is not None else "-",
            "keyspace_hit_pct": _pct(info.keyspace_hit_pct) if info else "-",
            "keys": keys,
            "key_rows": [
                {
                    "prefix": prefix,
                    "count": count,
                    "estimate": keys.estimate(count),
                    "help": prefix_help(prefix),
                }
                for prefix, count in keys.counts
            ]
            if keys
            else [],
            "overall": _kind_row(overall, None, {}),
            "kind_rows": [
                _kind_row(counters.kinds[name], by_kind.get(name), generations)
                for name in sorted(counters.kinds)
            ],
            "families": [
                {"target": t, "generation": generations.get(t.slug), "url": self.invalidate_url(t)}
                for t in targets
            ],
            "redis_errors": sorted((prefix, count) for prefix, count in counters.errors.items() if count),
            "multiprocess": bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")),
            "hit_warning_pct": settings.PERF_CACHE_HIT_WARNING_PCT,
            "hit_critical_pct": settings.PERF_CACHE_HIT_CRITICAL_PCT,
            "memory_warning_pct": settings.PERF_REDIS_MEMORY_WARNING_PCT,
            "memory_critical_pct": settings.PERF_REDIS_MEMORY_CRITICAL_PCT,
        }

    def invalidate_url(self, target: Target) -> str:
        return self.page_url() + f"invalidate/{target.slug}/"

    def invalidate_view(self, request: HttpRequest, slug: str) -> HttpResponse:
        target = next((t for t in invalidation_targets() if t.slug == slug), None)
        if target is None:
            raise Http404(f"No cached family or kind {slug!r}.")
        if request.method == "POST" and self.has_view_permission(request):
            try:
                _redis().ping()
            except REDIS_ERRORS as exc:
                # Nothing done, nothing logged: the staff member sees why and may try again.
                self.message_user(
                    request, f"Redis is unreachable, nothing invalidated: {exc}", messages.ERROR
                )
                return HttpResponseRedirect(self.page_url())
        return self.confirm(
            request,
            title=f"Invalidate the {target.label}",
            question=(
                f"Invalidate every cached {' and '.join(target.kinds)} response? The next request for "
                "each is computed from PostgreSQL again."
            ),
            details=[("Bumps", target.description), ("Kinds", ", ".join(target.kinds))],
            perform=lambda: invalidate(target),
            object_id=target.slug,
            object_repr=f"cache: {target.label}",
        )
