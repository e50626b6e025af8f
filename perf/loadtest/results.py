"""Read locust's CSV output and judge it against a profile's thresholds (k6's semantics)."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path

from perf.loadtest.profiles import Thresholds

AGGREGATED = "Aggregated"
GUIDE_MAX_USERS = 200


@dataclass(frozen=True)
class EndpointStats:
    name: str
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    avg_ms: float
    rps: float


@dataclass(frozen=True)
class HistoryPoint:
    elapsed_s: float
    users: int
    rps: float
    failures_per_s: float
    p95_ms: float  # locust's recent window, as are the two below
    p50_ms: float = 0.0
    p99_ms: float = 0.0


@dataclass
class RunStats:
    total: EndpointStats
    endpoints: list[EndpointStats]
    history: list[HistoryPoint]
    failures: list[dict] = field(default_factory=list)  # locust's _failures.csv rows

    @property
    def error_rate(self) -> float:
        return self.total.failures / self.total.requests if self.total.requests else 1.0

    @property
    def max_users(self) -> int:
        return max((point.users for point in self.history), default=0)

    @property
    def steady_rps(self) -> float:
        """Mean requests/s while the most users were running: ramp-up excluded."""
        steady = [point.rps for point in self.history if point.users == self.max_users and point.rps > 0]
        return sum(steady) / len(steady) if steady else 0.0

    def as_json(self) -> dict:
        return asdict(self) | {"error_rate": self.error_rate, "steady_rps": self.steady_rps}


def _float(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):  # locust writes "N/A" for empty percentiles
        return 0.0


def _endpoint(row: dict) -> EndpointStats:
    return EndpointStats(
        name=row["Name"],
        requests=int(row["Request Count"]),
        failures=int(row["Failure Count"]),
        p50_ms=_float(row["50%"]),
        p95_ms=_float(row["95%"]),
        p99_ms=_float(row["99%"]),
        avg_ms=_float(row["Average Response Time"]),
        rps=_float(row["Requests/s"]),
    )


def load_stats(prefix: Path) -> RunStats:
    """Parse ``<prefix>_stats.csv``, ``_stats_history.csv`` and ``_failures.csv``."""
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    total = next((_endpoint(row) for row in rows if row["Name"] == AGGREGATED), None)
    if total is None:
        total = EndpointStats(AGGREGATED, 0, 0, 0, 0, 0, 0, 0)
    endpoints = sorted((_endpoint(row) for row in rows if row["Name"] != AGGREGATED), key=lambda e: e.name)
    history: list[HistoryPoint] = []
    history_file = Path(f"{prefix}_stats_history.csv")
    if history_file.exists():
        with open(history_file, newline="") as handle:
            points = [row for row in csv.DictReader(handle) if row["Name"] == AGGREGATED]
        start = int(points[0]["Timestamp"]) if points else 0
        history = [
            HistoryPoint(
                elapsed_s=int(row["Timestamp"]) - start,
                users=int(row["User Count"]),
                rps=_float(row["Requests/s"]),
                failures_per_s=_float(row["Failures/s"]),
                p95_ms=_float(row["95%"]),
                p50_ms=_float(row["50%"]),
                p99_ms=_float(row["99%"]),
            )
            for row in points
        ]
    failures: list[dict] = []
    failures_file = Path(f"{prefix}_failures.csv")
    if failures_file.exists():
        with open(failures_file, newline="") as handle:
            failures = sorted(csv.DictReader(handle), key=lambda row: -int(row["Occurrences"]))
    return RunStats(total=total, endpoints=endpoints, history=history, failures=failures)


@dataclass(frozen=True)
class Check:
    metric: str
    value: str
    target: str
    status: str  # "pass", "fail" or "n/a"


def evaluate(stats: RunStats, thresholds: Thresholds) -> list[Check]:
    """The guide's table, judged as k6 would: a run without requests fails every check."""
    none = stats.total.requests == 0
    checks: list[Check] = []

    def add(metric: str, value: float, unit: str, limit: float | None, below: bool) -> None:
        shown = f"{value:.2f} {unit}" if unit == "%" else f"{value:.0f} {unit}"
        if limit is None:
            checks.append(Check(metric, shown, "-", "n/a"))
            return
        target = f"{'<' if below else '>'} {limit:g} {unit}"
        ok = not none and (value < limit if below else value > limit)
        checks.append(Check(metric, shown, target, "pass" if ok else "fail"))

    add("p95 Response Time", stats.total.p95_ms, "ms", thresholds.p95_ms, below=True)
    add("p99 Response Time", stats.total.p99_ms, "ms", thresholds.p99_ms, below=True)
    rate = None if thresholds.error_rate is None else thresholds.error_rate * 100
    add("Error Rate", stats.error_rate * 100, "%", rate, below=True)
    add("Throughput", stats.steady_rps, "RPS", thresholds.min_rps, below=False)
    # "Handled": reached with the error rate under 1 %. Below 200 users the run did not try, and
    # the row would only say so: it is left out (the users are in the report's header).
    if stats.max_users >= GUIDE_MAX_USERS:
        handled = not none and stats.error_rate < 0.01
        checks.append(
            Check(
                "Max VUs Handled",
                str(stats.max_users),
                f">= {GUIDE_MAX_USERS}",
                "pass" if handled else "fail",
            )
        )
    by_name = {endpoint.name: endpoint for endpoint in stats.endpoints}
    for name, limit in thresholds.endpoint_p95_ms.items():
        endpoint = by_name.get(name)
        value = endpoint.p95_ms if endpoint else 0.0
        ok = endpoint is not None and endpoint.requests > 0 and value < limit
        checks.append(Check(f"p95 {name}", f"{value:.0f} ms", f"< {limit:g} ms", "pass" if ok else "fail"))
    if none:
        checks.append(Check("Requests", "0", "> 0", "fail"))
    return checks


def passed(checks: list[Check]) -> bool:
    return all(check.status != "fail" for check in checks)
