"""A stored run folder (``report.json`` and locust's CSVs, as ``manage.py loadtest`` writes them
and ``docs/loadtests/`` keeps them) turned back into a ``LoadTestRun``.

The admin's tests import the committed runs with it, and ``loadtest --compare`` can compare
against a folder on a fresh clone, where the database has none of those runs.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

from perf.models import LoadTestRun

REPORT = "report.json"
# Locust's history CSV in the same folder: the runner keeps only p95 per point (results.py's
# HistoryPoint), this file also has the median and p99 of the same moving window.
HISTORY_CSV = "locust_stats_history.csv"
AGGREGATED = "Aggregated"


class StoredRunError(Exception):
    """The path is not a stored run: one line that says what was expected."""


def read_result(path: Path) -> dict:
    """The ``result`` dict the runner wrote, from a run folder or its ``report.json``."""
    report = path / REPORT if path.is_dir() else path
    try:
        result = json.loads(report.read_text())
    except FileNotFoundError:
        raise StoredRunError(
            f"no {REPORT} at {report}: give a load-test run folder or its {REPORT}."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoredRunError(f"{report} is not a load-test report ({exc}).") from None
    if not isinstance(result, dict) or not {"profile", "stats", "checks", "started_at"} <= result.keys():
        raise StoredRunError(f"{report} is not a load-test report (no profile, stats or checks).")
    return result


def run_from_result(result: dict, *, report_path: str = "") -> LoadTestRun:
    """An unsaved ``LoadTestRun`` with the columns the runner fills, all derived from ``result``."""
    stats, think_time = result["stats"], result["profile"]["think_time"]
    return LoadTestRun(
        profile=result["profile"]["name"],
        host=result.get("host", ""),
        started_at=datetime.fromisoformat(result["started_at"]),
        finished_at=datetime.fromisoformat(result["finished_at"]),
        max_users=stats["max_users"],
        duration_s=round(result["duration_s"]),
        think_time=f"{think_time[0]:g}-{think_time[1]:g} s",
        requests=stats["total"]["requests"],
        p95_ms=stats["total"]["p95_ms"],
        p99_ms=stats["total"]["p99_ms"],
        error_rate=stats["error_rate"],
        rps=stats["steady_rps"],
        passed=result["passed"],
        data=result,
        report_path=report_path,
        notes=result.get("notes", ""),
    )


def stored_run(path: Path) -> LoadTestRun:
    """The run stored at ``path`` (a folder or its ``report.json``) as an unsaved ``LoadTestRun``;
    ``.save()`` it to list it in the admin. Its history gains p50/p99 per point from locust's CSV
    beside the report, when that file is there."""
    result = read_result(path)
    folder = path if path.is_dir() else path.parent
    _add_percentiles(result["stats"]["history"], folder / HISTORY_CSV)
    return run_from_result(result, report_path=str(folder / "report.md"))


def _add_percentiles(history: list[dict], csv_path: Path) -> None:
    """Fill ``p50_ms`` and ``p99_ms`` into history points that lack them, matched by elapsed
    second as the runner computed it (from the first aggregated row)."""
    if not history or all("p50_ms" in point and "p99_ms" in point for point in history):
        return
    try:
        with open(csv_path, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row.get("Name") == AGGREGATED]
    except FileNotFoundError:
        return
    if not rows:
        return
    start = int(rows[0]["Timestamp"])
    by_second = {int(row["Timestamp"]) - start: row for row in rows}
    for point in history:
        row = by_second.get(point["elapsed_s"])
        if row is not None:
            point.setdefault("p50_ms", _ms(row.get("50%")))
            point.setdefault("p99_ms", _ms(row.get("99%")))


def _ms(value: str | None) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):  # locust writes "N/A" before the first response
        return 0.0
