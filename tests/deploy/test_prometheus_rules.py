"""The Prometheus side (deploy/prometheus/): promtool checks the config and the rule files and
runs the rule unit tests (rules_test.yml); the rest reads the rule files for what promtool cannot
know: the guide's thresholds at each level, and an alert that tells its reader where to look.

promtool comes from Debian's prometheus package, which `make test` installs (as root); without
it these tests fail, they never skip."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.urls import Resolver404, resolve

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULE_FILES = ("recording.yml", "alerts.yml")

# The guide's alerts (SPEC section 1), each level: (alert, severity) -> (series, comparison,
# threshold, for). A `for` of None: the series' own 5-minute window is the duration.
GUIDE = {
    ("ApiLatencyHigh", "warning"): ("job:http_request_duration_ms:p95_5m", ">", 500, "5m"),
    ("ApiLatencyHigh", "critical"): ("job:http_request_duration_ms:p95_5m", ">", 1000, "2m"),
    ("ApiErrorRateHigh", "warning"): ("job:http_request_errors:ratio_5m", ">", 0.01, "5m"),
    ("ApiErrorRateHigh", "critical"): ("job:http_request_errors:ratio_5m", ">", 0.05, "2m"),
    ("DbPoolUtilisationHigh", "warning"): ("job:db_connection_pool:utilisation", ">", 0.80, "5m"),
    ("DbPoolUtilisationHigh", "critical"): ("job:db_connection_pool:utilisation", ">", 0.95, "2m"),
    ("DbQuerySlowerThan1s", "critical"): ("operation_table:db_queries_over_1s:increase5m", ">", 0, None),
    ("CacheHitRateLow", "warning"): ("job:cache_hit:ratio_5m", "<", 0.70, "10m"),
    ("RedisErrors", "warning"): ("job:cache_errors:rate5m", ">", 0, None),
    ("NodeCpuHigh", "warning"): ("instance:node_cpu:utilisation_5m", ">", 0.70, "5m"),
    ("NodeCpuHigh", "critical"): ("instance:node_cpu:utilisation_5m", ">", 0.90, "2m"),
    ("NodeMemoryHigh", "warning"): ("instance:node_memory:utilisation", ">", 0.80, "5m"),
    ("NodeMemoryHigh", "critical"): ("instance:node_memory:utilisation", ">", 0.95, "2m"),
}
PERF_PAGE = re.compile(r"/admin/perf/[a-z]+/")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is missing: `make promtool` installs Debian's prometheus package (as root), "
            "or put a promtool binary from https://prometheus.io/download/ on PATH."
        )
    return subprocess.run(
        [path, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    print(output)
    assert result.returncode == 0, f"{' '.join(result.args)} exited {result.returncode}:\n{output}"


def load(name: str) -> dict:
    return yaml.safe_load((PROMETHEUS / name).read_text())


def alerts() -> list[dict]:
    return [rule for group in load("alerts.yml")["groups"] for rule in group["rules"]]


def test_prometheus_config_and_the_rule_files_it_loads_pass_promtool_check_config():
    result = promtool("check", "config", "prometheus.yml")

    assert_ok(result)
    assert f"{len(RULE_FILES)} rule files found" in result.stdout


def test_rule_files_pass_promtool_check_rules():
    assert_ok(promtool("check", "rules", *RULE_FILES))


def test_rule_unit_tests_pass_promtool_test_rules():
    result = promtool("test", "rules", "rules_test.yml")

    assert_ok(result)
    assert "SUCCESS" in result.stdout


def test_prometheus_config_scrapes_the_app_and_node_exporter_and_loads_every_rule_file():
    config = load("prometheus.yml")

    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["bountyexpo"]["metrics_path"] == "/metrics"
    assert jobs["bountyexpo"]["static_configs"][0]["targets"] == ["127.0.0.1:8000"]
    assert jobs["node"]["static_configs"][0]["targets"] == ["127.0.0.1:9100"]
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == list(RULE_FILES)
    assert load("rules_test.yml")["rule_files"] == list(RULE_FILES)


def test_every_alert_has_a_severity_a_summary_with_its_value_and_a_runbook_naming_perf_pages():
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert "{{ $value" in rule["annotations"]["summary"], name
        runbook = rule["annotations"]["runbook"]
        assert "\n" not in runbook, name
        pages = PERF_PAGE.findall(runbook)
        assert pages, f"{name}: the runbook names no perf admin page"
        for page in pages:
            try:
                url_name = resolve(page).url_name or ""
            except Resolver404:
                url_name = ""
            assert url_name.startswith("perf_"), f"{name}: {page} is no perf admin page"


def test_every_guide_threshold_has_its_alert_at_each_level_and_no_alert_is_outside_the_guide():
    found = {}
    for rule in alerts():
        key = (rule["alert"], rule["labels"]["severity"])
        assert key not in found, f"{key} is defined twice"
        found[key] = rule

    assert set(found) == set(GUIDE)
    for key, (series, comparison, threshold, duration) in GUIDE.items():
        rule = found[key]
        match = re.search(rf"{re.escape(series)}\s*([<>])\s*([0-9.]+)", rule["expr"])
        assert match, f"{key}: {rule['expr']!r} does not compare {series}"
        assert (match[1], float(match[2])) == (comparison, threshold), key
        assert rule.get("for") == duration, key


def test_every_alert_level_has_a_firing_and_a_silent_case_in_the_rule_unit_tests():
    fires, silent = set(), set()
    for case in load("rules_test.yml")["tests"]:
        for check in case.get("alert_rule_test", []):
            expected = {alert["exp_labels"]["severity"] for alert in check["exp_alerts"]}
            for severity in ("warning", "critical"):
                (fires if severity in expected else silent).add((check["alertname"], severity))

    levels = {(rule["alert"], rule["labels"]["severity"]) for rule in alerts()}
    assert levels - fires == set(), "never seen firing"
    assert levels - silent == set(), "never seen silent"
