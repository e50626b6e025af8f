"""The `churn` profile's per-second figures: readers' exact latency percentiles and the server's
response-cache hit ratio, second by second, while writers post bounties at a fixed rate.

No Django and no locust here: the locust process imports ``ReadSeconds`` (with the project
root on its path, see runner.py), the runner the rest.

Why our own per-second percentiles rather than locust's ``--csv-full-history``: locust's history
rows hold the "current response time percentile", computed over a moving window of the last
several seconds with response times rounded to about two significant digits (TRAPS, locust). A
second in which the cache emptied would be smeared over its neighbours. The locust process
records every read's exact response time in the second it completed instead, and writes
nearest-rank percentiles per second, and over the steady part of the run, at its exit.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

from perf.loadtest.results import Check

WRITE_NAME = "POST /api/bounties"
# The seed's categories (perf/loadtest/vocabulary.py): readers filter by them, writers post in
# them. Every one is a bounties.models.Category; "other" has no seeded bounties.
CATEGORIES = ["web", "mobile", "design", "data", "testing", "writing", "marketing", "errands"]
SECONDS_JSON = "churn_reads.json"  # written by the locust process
SECONDS_CSV = "churn_seconds.csv"  # the merged series, written by the runner
CACHE_COUNTS = ("hits", "stale", "misses")


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest rank: the smallest value with at least ``fraction`` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _percentiles(values: list[float]) -> dict[str, float | None]:
    return {f"read_p{q}_ms": percentile(values, q / 100) for q in (50, 95, 99)}


class ReadSeconds:
    """What the locust process records: every read's response time, and writes, by the wall-clock
    second (epoch) in which they completed. Reads are GETs; the writers' POSTs are counted apart."""

    def __init__(self) -> None:
        self.reads: dict[int, list[float]] = defaultdict(list)
        self.read_failures: dict[int, int] = defaultdict(int)
        self.writes: dict[int, int] = defaultdict(int)
        self.write_failures: dict[int, int] = defaultdict(int)
        self.spawned_at: float | None = None  # every user running: the steady state starts

    def record(self, *, method: str, name: str, response_time: float, failed: bool, at: float) -> None:
        second = int(at)
        if method == "GET":
            self.reads[second].append(response_time)
            self.read_failures[second] += failed
        elif name == WRITE_NAME:
            self.writes[second] += not failed
            self.write_failures[second] += failed

    def as_json(self) -> dict:
        """Per-second rows from the first second anything completed to the last, and the exact
        read percentiles over the steady seconds: after spawning completed, before the last
        (partial, users stopping) second."""
        seconds = sorted(self.reads.keys() | self.writes.keys() | self.write_failures.keys())
        if not seconds:
            return {"seconds": [], "steady": None}
        rows = [
            {
                "epoch": second,
                "reads": len(self.reads.get(second, ())),
                "read_failures": self.read_failures.get(second, 0),
                **_percentiles(self.reads.get(second, [])),
                "writes": self.writes.get(second, 0),
                "write_failures": self.write_failures.get(second, 0),
            }
            for second in range(seconds[0], seconds[-1] + 1)
        ]
        first = math.ceil(self.spawned_at) if self.spawned_at is not None else seconds[0]
        steady = [second for second in range(first, seconds[-1]) if second in self.reads]
        values = [value for second in steady for value in self.reads[second]]
        return {
            "seconds": rows,
            "steady": {"from_epoch": first, "to_epoch": seconds[-1], **_percentiles(values)}
            if steady
            else None,
        }


def counter_increase(before: dict | None, after: dict | None) -> dict[str, int]:
    """Hits, stale serves and misses between two /metrics scrapes, summed over key prefixes.

    A counter below its previous value means its process restarted from 0 (a recycled worker
    outside multiprocess mode, or a scrape answered by another worker): as Prometheus's
    ``increase()`` does, its whole new value is the increase, never a negative delta."""
    total = dict.fromkeys(CACHE_COUNTS, 0)
    for prefix, counts in (after or {}).items():
        earlier = (before or {}).get(prefix, {})
        for name in CACHE_COUNTS:
            now, then = counts.get(name, 0), earlier.get(name, 0)
            total[name] += int(now - then if now >= then else now)
    return total


def hit_ratio(counts: dict[str, int]) -> float | None:
    """Served from cache (fresh or stale) over every cached-endpoint response; None without any."""
    served = sum(counts[name] for name in CACHE_COUNTS)
    return (counts["hits"] + counts["stale"]) / served if served else None


def cache_series(scrapes: list[tuple[int, dict | None]]) -> dict[int, dict[str, int]]:
    """Epoch second -> cache counts from scrapes taken at the start of each second: the increase
    from that second's scrape to the next one. A failed scrape (None) leaves its second without
    figures, and the preceding second's increase then spans until the next good scrape."""
    good = [(second, counters) for second, counters in scrapes if counters is not None]
    return {
        second: counter_increase(counters, following) for (second, counters), (_, following) in pairwise(good)
    }


def merge(reads: dict, cache: dict[int, dict[str, int]], writes_per_second: float, writers: int) -> dict:
    """report.json's ``churn`` section: the summary and the series, seconds counted from the first
    second a request completed."""
    rows = reads["seconds"]
    start = rows[0]["epoch"] if rows else 0
    series = []
    for row in rows:
        counts = cache.get(row["epoch"])
        series.append(
            {
                "second": row["epoch"] - start,
                **{key: value for key, value in row.items() if key != "epoch"},
                **(counts or dict.fromkeys(CACHE_COUNTS)),
                "hit_ratio": hit_ratio(counts) if counts else None,
            }
        )
    steady = reads["steady"] or {}
    window = [row for row in rows if steady and steady["from_epoch"] <= row["epoch"] < steady["to_epoch"]]
    cached = [cache[row["epoch"]] for row in window if row["epoch"] in cache]
    cache_total = {name: sum(counts[name] for counts in cached) for name in CACHE_COUNTS}
    seconds = len(window)
    return {
        "writes_per_second_requested": writes_per_second,
        "writers": writers,
        "writes": {
            "count": sum(row["writes"] for row in rows),
            "failures": sum(row["write_failures"] for row in rows),
            "per_second": sum(row["writes"] for row in window) / seconds if seconds else 0.0,
        },
        "steady_seconds": [window[0]["epoch"] - start, window[-1]["epoch"] - start] if window else None,
        "read_rps": sum(row["reads"] for row in window) / seconds if seconds else 0.0,
        "read_failures": sum(row["read_failures"] for row in rows),
        "read_p50_ms": steady.get("read_p50_ms"),
        "read_p95_ms": steady.get("read_p95_ms"),
        "read_p99_ms": steady.get("read_p99_ms"),
        "cache": cache_total,
        "hit_ratio": hit_ratio(cache_total),
        "seconds": series,
    }


SERIES_COLUMNS = [
    "second", "reads", "read_failures", "read_p50_ms", "read_p95_ms", "read_p99_ms",
    *CACHE_COUNTS, "hit_ratio", "writes", "write_failures",
]  # fmt: skip


def write_series_csv(churn: dict, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SERIES_COLUMNS)
        writer.writeheader()
        writer.writerows({column: row[column] for column in SERIES_COLUMNS} for row in churn["seconds"])


def read_seconds_file(path: Path) -> dict:
    """The locust process's per-second reads; empty when it wrote none (it failed early)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"seconds": [], "steady": None}


def baseline_checks(churn: dict, baseline: dict) -> list[Check]:
    """Issue 13's targets for a churn run, relative to an earlier churn run (usually 0 posts/s):
    read RPS >= 90 % of it, hit ratio >= 97 %, read p99 <= 1.5x its p99, no failed request."""
    checks = []
    rps, base_rps = churn["read_rps"], baseline["read_rps"]
    checks.append(
        Check(
            "Read RPS vs baseline",
            f"{rps:.0f} RPS",
            f">= {0.9 * base_rps:.0f} RPS (90 % of {base_rps:.0f})",
            "pass" if base_rps and rps >= 0.9 * base_rps else "fail",
        )
    )
    ratio = churn["hit_ratio"]
    checks.append(
        Check(
            "Response cache hit ratio",
            "n/a" if ratio is None else f"{ratio:.1%}",
            ">= 97 %",
            "pass" if ratio is not None and ratio >= 0.97 else "fail",
        )
    )
    p99, base_p99 = churn["read_p99_ms"], baseline["read_p99_ms"]
    checks.append(
        Check(
            "Read p99 vs baseline",
            "n/a" if p99 is None else f"{p99:.0f} ms",
            "n/a" if base_p99 is None else f"<= {1.5 * base_p99:.0f} ms (1.5x {base_p99:.0f})",
            "pass" if p99 is not None and base_p99 and p99 <= 1.5 * base_p99 else "fail",
        )
    )
    errors = churn["read_failures"] + churn["writes"]["failures"]
    checks.append(Check("Failed requests", f"{errors:,}", "0", "pass" if errors == 0 else "fail"))
    return checks
