"""The load-test report in the guide's template (SPEC section 1), its chart and comparisons."""

from __future__ import annotations

import re
from pathlib import Path

GENERATOR_SATURATED = 80.0  # % of one core: above this the generator, not the server, limits


def bottlenecks(result: dict) -> list[str]:
    """What the measurements point at, most telling first. Rules, not guesses: each line cites
    the figure that triggered it."""
    found: list[str] = []
    stats, resources, profile = result["stats"], result["resources"], result["profile"]
    checks = {check["metric"]: check for check in result["checks"]}
    server, database = _avg(resources, "server_cpu_percent"), _avg(resources, "database_cpu_percent")
    generator = _avg(resources, "generator_cpu_percent_of_core")
    machine = _avg(resources, "machine_cpu_percent")
    if machine >= 90:
        share = generator / resources["cpu_count"]
        found.append(
            f"Machine CPU saturated: {machine:.0f} % on average (server {server:.0f} %, PostgreSQL "
            f"{database:.0f} %, generator {share:.0f} % of the machine): "
            "latency here is queueing for the CPU."
        )
    elif server >= 70:
        found.append(f"Server CPU-bound: {server:.0f} % of the machine on average.")
    if database >= 30:
        found.append(f"PostgreSQL busy: {database:.0f} % of the machine on average.")
    if generator >= GENERATOR_SATURATED:
        found.append(
            f"Load generator saturated: {generator / resources['cpu_count']:.0f} % of the machine, "
            f"{generator:.0f} % of the one core it can use; throughput and latency figures include "
            "that contention."
        )
    if result["database"]["top_queries"]:
        top = result["database"]["top_queries"][0]
        found.append(
            f"Most database time: {top['total_ms']:.0f} ms over {top['calls']} calls "
            f"({top['mean_ms']:.2f} ms each): `{_short(top['query'])}`."
        )
    hit_ratio = result.get("response_cache", {}).get("hit_ratio")
    if hit_ratio is None:
        found.append("No cached responses counted during the run (the server exported no cache counters).")
    elif hit_ratio < 0.8:
        found.append(f"Response cache hit ratio {hit_ratio:.0%}, below the 80 % target.")
    churn = result.get("churn")
    if churn and churn["writes_per_second_requested"]:
        achieved, requested = churn["writes"]["per_second"], churn["writes_per_second_requested"]
        if achieved < 0.9 * requested:
            found.append(
                f"Writers fell behind: {achieved:.2f} posts/s of the {requested:g} requested "
                f"({churn['writes']['failures']:,} failed): the read figures are for a lighter churn."
            )
    if checks.get("Throughput", {}).get("status") == "fail" and profile["think_time"][1] > 0:
        users = stats["max_users"] or 1
        ceiling = users / (sum(profile["think_time"]) / 2)
        found.append(
            f"The RPS target is out of reach by design with think time: {users} users pausing "
            f"{sum(profile['think_time']) / 2:.1f} s on average send at most ~{ceiling:.0f} RPS; "
            "measure throughput with --think-time 0."
        )
    if stats["failures"]:
        worst = stats["failures"][0]
        found.append(
            # Request names already start with the method ("GET /api/bounties").
            f"Top error: {worst['Occurrences']} x {worst['Name']}: {failure_reason(worst['Error'])}."
        )
    slow = [e for e in stats["endpoints"] if e["requests"] and e["p95_ms"] >= 500]
    for endpoint in sorted(slow, key=lambda e: -e["p95_ms"])[:3]:
        found.append(f"Slow endpoint: {endpoint['name']} p95 {endpoint['p95_ms']:.0f} ms.")
    return found or ["None stood out: every threshold held with headroom."]


def _short(query: str, limit: int = 240, *, escape: bool = False) -> str:
    flat = " ".join(query.split())
    if len(flat) > limit and " FROM " in flat:
        # The column list says little; what a query reads and filters on identifies it.
        flat = "SELECT … " + flat[flat.index(" FROM ") + 1 :]  # noqa: S608 (display text, not SQL)
    flat = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return flat.replace("|", "/") if escape else flat  # a pipe would split a table cell


def _resource_row(label: str, figures: dict | None, unit: str) -> str:
    if figures is None:
        return f"| {label} | not measured | - |"
    return f"| {label} | {figures['avg']:.0f} {unit} | {figures['max']:.0f} {unit} |"


def _avg(resources: dict, key: str) -> float:
    """The average of a measure, 0 when it was not measured (for the rules below)."""
    return (resources.get(key) or {}).get("avg", 0.0)


def _per_machine(figures: dict | None, cores: int) -> dict | None:
    """Figures in % of one core as % of the whole machine."""
    return figures and {key: value / cores for key, value in figures.items()}


def render_markdown(result: dict) -> str:
    profile, stats, resources = result["profile"], result["stats"], result["resources"]
    cores = resources.get("cpu_count") or 1
    stages = ", ".join(
        f"{s['users']} users for {s['seconds']} s (+{s['spawn_rate']:g}/s)" for s in profile["stages"]
    )
    think = profile["think_time"]
    lines = [
        f"# Load test: {profile['name']} ({result['started_at'][:16].replace('T', ' ')} UTC)",
        "",
        f"- **Date**: {result['started_at']} to {result['finished_at']}",
        f"- **Environment**: {result['environment']}",
        f"- **Configuration**: profile `{profile['name']}` ({profile['description']}); stages: {stages}; "
        f"think time {think[0]:g}-{think[1]:g} s; user mix {profile['users_mix']}",
        f"- **Virtual users**: {stats['max_users']} at most",
        f"- **Duration**: {result['duration_s']:.0f} s",
        f"- **Ramp-up**: {result['ramp_up_s']:.0f} s to the first stage's users",
        f"- **Requests**: {stats['total']['requests']:,} ({stats['total']['failures']:,} failed)",
        f"- **Verdict**: {'PASS' if result['passed'] else 'FAIL'}",
        "",
        "| Metric | Value | Target | Status |",
        "|---|---|---|---|",
        *(f"| {c['metric']} | {c['value']} | {c['target']} | {c['status']} |" for c in result["checks"]),
        "",
        "Percentiles cover the whole run; throughput is the steady state at the most users.",
        "",
        "## Endpoints",
        "",
        "| Endpoint | Requests | Failures | p50 ms | p95 ms | p99 ms | RPS |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {e['name']} | {e['requests']:,} | {e['failures']:,} | {e['p50_ms']:.0f} | {e['p95_ms']:.0f} "
            f"| {e['p99_ms']:.0f} | {e['rps']:.1f} |"
            for e in stats["endpoints"]
        ),
        "",
        *_failure_lines(stats["failures"]),
        "## Server and generator",
        "",
        f"CPU is a share of the whole machine ({cores} cores): 100 % is every core busy.",
        "",
        "| Measure | Average | Peak |",
        "|---|---|---|",
        _resource_row("Server CPU", resources["server_cpu_percent"], "%"),
        _resource_row("Server memory (RSS, master + workers)", resources["server_rss_mb"], "MB"),
        _resource_row(
            "Load generator CPU", _per_machine(resources["generator_cpu_percent_of_core"], cores), "%"
        ),
        *(
            _resource_row(label, resources[key], "%")
            for label, key in [
                ("PostgreSQL CPU", "database_cpu_percent"),
                ("Redis CPU", "redis_cpu_percent"),
                ("Whole machine CPU", "machine_cpu_percent"),
            ]
            if key in resources
        ),
        "",
        "PostgreSQL connections by state (most seen at once): "
        f"{resources['max_connections_by_state'] or 'none'}",
        "",
        "## Database time during the run (pg_stat_statements delta)",
        "",
        "| Total ms | Calls | Mean ms | Query |",
        "|---|---|---|---|",
        *(
            f"| {q['total_ms']:.0f} | {q['calls']:,} | {q['mean_ms']:.2f} "
            f"| `{_short(q['query'], escape=True)}` |"
            for q in result["database"]["top_queries"]
        ),
        "",
        "## Redis",
        "",
        f"Keyspace hits {result['redis']['hits']:,}, misses {result['redis']['misses']:,}, hit ratio "
        + (
            f"{result['redis']['hit_ratio']:.1%}"
            if result["redis"]["hit_ratio"] is not None
            else "n/a (no reads)"
        )
        + ".",
        "",
        "## Response cache",
        "",
        *_response_cache_lines(result.get("response_cache")),
        "",
        *_churn_lines(result.get("churn")),
        "## Bottlenecks identified",
        "",
        *(f"- {line}" for line in result["bottlenecks"]),
        "",
        "## Actions taken",
        "",
        result.get("actions") or "None in this run.",
        "",
        "## Notes",
        "",
        result.get("notes") or "-",
        "",
    ]
    return "\n".join(lines)


# Locust's text for a status the locustfile did not expect, and for one it marked failed itself.
STATUS_CODE = re.compile(r"^(?:LocustBadStatusCode\(code=(\d{3})\)|CatchResponseError\('(\d{3})'\))$")


def failure_reason(error: str) -> str:
    """Locust's error text for people: "LocustBadStatusCode(code=502)" and
    "CatchResponseError('502')" -> "HTTP 502"; anything else as it is."""
    error = error.strip()
    found = STATUS_CODE.match(error)
    return f"HTTP {found.group(1) or found.group(2)}" if found else error


def _failure_lines(failures: list[dict]) -> list[str]:
    """The failed requests by endpoint and reason, most frequent first (none: no section)."""
    if not failures:
        return []
    rows = []
    for row in failures:
        reason = _short(failure_reason(row["Error"]), 160, escape=True)
        rows.append(f"| {row['Name']} | {reason} | {int(row['Occurrences']):,} |")
    return ["## Failures", "", "| Endpoint | Reason | Count |", "|---|---|---|", *rows, ""]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _churn_lines(churn: dict | None) -> list[str]:
    """The churn profile's summary and its per-second table (report.json and churn_seconds.csv
    hold the same series)."""
    if not churn:
        return []
    writes, cache, steady = churn["writes"], churn["cache"], churn["steady_seconds"]
    requested = churn["writes_per_second_requested"]
    writers = churn["writers"]
    lines = [
        "## Churn",
        "",
        "| Measure | Value |",
        "|---|---|",
        f"| Writes requested | {requested:g} posts/s"
        + (f" by {writers} writers ({requested / writers:g}/s each) |" if writers else " (no writers) |"),
        f"| Writes achieved (steady) | {writes['per_second']:.2f} posts/s; {writes['count']:,} posted, "
        f"{writes['failures']:,} failed |",
        f"| Read RPS (steady) | {churn['read_rps']:.0f} |",
        f"| Read p50 / p95 / p99 (steady) | {_ms(churn['read_p50_ms'])} / {_ms(churn['read_p95_ms'])} / "
        f"{_ms(churn['read_p99_ms'])} ms |",
        f"| Failed reads | {churn['read_failures']:,} |",
        f"| Response cache hit ratio (steady) | {_ratio(churn['hit_ratio'])} ({cache['hits']:,} hits, "
        f"{cache['stale']:,} stale, {cache['misses']:,} misses) |",
        f"| Steady seconds | {f'{steady[0]}-{steady[1]}' if steady else 'none'} |",
        "",
        "Reads are every GET. Steady: from the first second after every user was running to the "
        "second before the last. Read percentiles are exact (nearest rank) over the reads that "
        "completed in each second, or in the steady seconds, as the load generator timed them. "
        "Hits, stale serves and misses are the server's response-cache counters (/metrics, all "
        "workers) from the scrape at the start of a second to the next scrape; hit ratio = "
        "(hits + stale) / (hits + stale + misses).",
        "",
        "## Churn per second",
        "",
        "| s | Reads | p50 ms | p95 ms | p99 ms | Hits | Stale | Misses | Hit ratio | Writes | Failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in churn["seconds"]:
        counts = " | ".join(
            "-" if row[name] is None else f"{row[name]:,}" for name in ("hits", "stale", "misses")
        )
        lines.append(
            f"| {row['second']} | {row['reads']:,} | {_ms(row['read_p50_ms'])} | {_ms(row['read_p95_ms'])} "
            f"| {_ms(row['read_p99_ms'])} | {counts} | {_ratio(row['hit_ratio'])} | {row['writes']:,} "
            f"| {row['read_failures'] + row['write_failures']:,} |"
        )
    return [*lines, ""]


def render_chart(result: dict, path: Path) -> None:
    """The run over time as a PNG: p50, p95 and p99 against the profile's latency thresholds;
    requests/s against its throughput threshold, with failures/s and the user count; for a
    churn run, a third panel with the response-cache hit ratio and the read p99 of every second.

    matplotlib is a load-test tool (requirements-dev.txt), imported here only: the perf admin
    imports this module for its report helpers and runs without it.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    history = result["stats"]["history"]
    thresholds = result["profile"].get("thresholds") or {}
    seconds = [point["elapsed_s"] for point in history]
    churn = result.get("churn")
    panels = 3 if churn else 2
    figure, axes = plt.subplots(
        panels, 1, figsize=(10, 3.2 * panels + 0.6), dpi=100, sharex=True, squeeze=False
    )
    latency_axis, rps_axis = axes[0][0], axes[1][0]

    for key, label, color in (("p50_ms", "p50", "tab:green"), ("p95_ms", "p95", "tab:orange"),
                              ("p99_ms", "p99", "tab:red")):  # fmt: skip
        if any(key in point for point in history):
            latency_axis.plot(
                seconds, [point.get(key, float("nan")) for point in history], color=color, label=label
            )
    for key, label, color in (
        ("p95_ms", "p95 threshold", "tab:orange"),
        ("p99_ms", "p99 threshold", "tab:red"),
    ):
        if thresholds.get(key):
            latency_axis.axhline(thresholds[key], color=color, linestyle=":", linewidth=1.2, label=label)
    latency_axis.set_ylabel("ms (recent window)")
    latency_axis.set_ylim(bottom=0)
    latency_axis.legend(loc="upper right", fontsize="small", ncol=5)
    latency_axis.set_title(f"{result['profile']['name']}: {result['started_at'][:16]} UTC")

    rps_axis.plot(seconds, [p["rps"] for p in history], color="tab:blue", label="requests/s")
    rps_axis.bar(
        seconds, [p["failures_per_s"] for p in history], color="tab:red", width=1.0, label="failures/s"
    )
    if thresholds.get("min_rps"):
        rps_axis.axhline(
            thresholds["min_rps"], color="tab:blue", linestyle=":", linewidth=1.2, label="RPS threshold"
        )
    rps_axis.set_ylabel("per second")
    rps_axis.set_ylim(bottom=0)
    users_axis = rps_axis.twinx()
    users_axis.plot(seconds, [p["users"] for p in history], color="tab:gray", linestyle="--", label="users")
    users_axis.set_ylabel("users", color="tab:gray")
    users_axis.set_ylim(bottom=0)
    lines, labels = rps_axis.get_legend_handles_labels()
    more_lines, more_labels = users_axis.get_legend_handles_labels()
    rps_axis.legend(lines + more_lines, labels + more_labels, loc="lower right", fontsize="small", ncol=4)
    if churn:
        _churn_chart(axes[2][0], churn["seconds"])
    axes[-1][0].set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _churn_chart(axis, rows: list[dict]) -> None:
    seconds = [row["second"] for row in rows]
    ratios = [None if row["hit_ratio"] is None else row["hit_ratio"] * 100 for row in rows]
    axis.plot(seconds, [float("nan") if r is None else r for r in ratios], color="tab:green")
    axis.set_ylim(0, 105)
    axis.set_xlabel("seconds")
    axis.set_ylabel("cache hit ratio %", color="tab:green")
    latency_axis = axis.twinx()
    latency_axis.plot(
        seconds,
        [float("nan") if row["read_p99_ms"] is None else row["read_p99_ms"] for row in rows],
        color="tab:purple",
    )
    latency_axis.set_ylabel("read p99 ms (per second)", color="tab:purple")


COMPARED = [
    ("p95 ms", lambda r: r["stats"]["total"]["p95_ms"], "{:.0f}"),
    ("p99 ms", lambda r: r["stats"]["total"]["p99_ms"], "{:.0f}"),
    ("Error rate %", lambda r: r["stats"]["error_rate"] * 100, "{:.2f}"),
    ("Throughput RPS", lambda r: r["stats"]["steady_rps"], "{:.0f}"),
    ("Requests", lambda r: r["stats"]["total"]["requests"], "{:,.0f}"),
    ("Server CPU avg %", lambda r: _avg(r["resources"], "server_cpu_percent"), "{:.0f}"),
    ("PostgreSQL CPU avg %", lambda r: _avg(r["resources"], "database_cpu_percent"), "{:.0f}"),
    ("Server RSS max MB", lambda r: (r["resources"]["server_rss_mb"] or {}).get("max", 0.0), "{:.0f}"),
    ("Redis keyspace hit ratio %", lambda r: _percent(r["redis"].get("hit_ratio")), "{:.1f}"),
    (
        "Response cache hit ratio %",
        lambda r: _percent((r.get("response_cache") or {}).get("hit_ratio")),
        "{:.1f}",
    ),
]


def _percent(ratio: float | None) -> float | None:
    """A ratio as a percentage; None (not measured in that run) stays None."""
    return None if ratio is None else ratio * 100


def _change(old: float | None, new: float | None, shown: str) -> str:
    """The relative change as people read it: from the rounded figures the table shows, "-"
    when either is missing or the old one shows as zero, "0 %" rather than "-0 %"."""
    if old is None or new is None:
        return "-"
    old_shown, new_shown = (
        float(shown.format(old).replace(",", "")),
        float(shown.format(new).replace(",", "")),
    )
    if old_shown == 0:
        return "-"
    change = round((new_shown - old_shown) / old_shown * 100)
    return f"{change:+d} %" if change else "0 %"


def _shown(value: float | None, shown: str) -> str:
    return "n/a" if value is None else shown.format(value)


def _response_cache_lines(cache: dict | None) -> list[str]:
    """Per cached kind: fresh hits, stale serves, misses (from the server's /metrics)."""
    if not cache or not cache["by_prefix"]:
        return ["Not measured: the server exported no response-cache counters (/metrics)."]
    lines = [
        f"Served from cache: **{cache['hit_ratio']:.1%}** of cached-endpoint responses."
        if cache["hit_ratio"] is not None
        else "No cached-endpoint responses.",
        "",
        "| Cache | Hits | Stale | Misses | Hit ratio |",
        "|---|---|---|---|---|",
    ]
    for prefix, delta in sorted(cache["by_prefix"].items()):
        ratio = f"{delta['hit_ratio']:.1%}" if delta["hit_ratio"] is not None else "n/a"
        lines.append(f"| {prefix} | {delta['hits']:,} | {delta['stale']:,} | {delta['misses']:,} | {ratio} |")
    return lines


# For churn runs (a run without a churn section shows "-").
CHURN_COMPARED = [
    ("Writes/s requested", lambda c: c["writes_per_second_requested"], "{:g}"),
    ("Writes/s achieved (steady)", lambda c: c["writes"]["per_second"], "{:.2f}"),
    ("Read RPS (steady)", lambda c: c["read_rps"], "{:.0f}"),
    ("Read p95 ms (steady)", lambda c: c["read_p95_ms"], "{:.0f}"),
    ("Read p99 ms (steady)", lambda c: c["read_p99_ms"], "{:.0f}"),
    (
        "Churn hit ratio % (steady)",
        lambda c: None if c["hit_ratio"] is None else c["hit_ratio"] * 100,
        "{:.1f}",
    ),
]


def render_comparison(before: dict, after: dict, before_id: int | str, after_id: int | str) -> str:
    """Before/after table of two runs, overall, for churn runs their churn figures, and per
    endpoint p95."""
    lines = [
        f"# Comparison: run {before_id} ({before['profile']['name']}, {before['started_at'][:16]}) "
        f"-> run {after_id} ({after['profile']['name']}, {after['started_at'][:16]})",
        "",
        "| Metric | Before | After | Change |",
        "|---|---|---|---|",
    ]
    for label, value, shown in COMPARED:
        old, new = value(before), value(after)
        lines.append(
            f"| {label} | {_shown(old, shown)} | {_shown(new, shown)} | {_change(old, new, shown)} |"
        )
    if before.get("churn") or after.get("churn"):
        for label, value, shown in CHURN_COMPARED:
            old, new = (value(r["churn"]) if r.get("churn") else None for r in (before, after))
            lines.append(
                f"| {label} | {'-' if old is None else shown.format(old)} "
                f"| {'-' if new is None else shown.format(new)} | {_change(old, new, shown)} |"
            )
    old_endpoints = {e["name"]: e for e in before["stats"]["endpoints"]}
    for endpoint in after["stats"]["endpoints"]:
        old = old_endpoints.get(endpoint["name"])
        if old:
            change = _change(old["p95_ms"], endpoint["p95_ms"], "{:.0f}")
            lines.append(
                f"| p95 {endpoint['name']} | {old['p95_ms']:.0f} | {endpoint['p95_ms']:.0f} | {change} |"
            )
    return "\n".join([*lines, ""])
