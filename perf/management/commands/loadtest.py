from __future__ import annotations

import math
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.management.base import require_migrated_database
from perf.loadtest.profiles import PROFILES
from perf.loadtest.runner import LoadTestError, RunRequest, default_report_dir, run_loadtest
from perf.loadtest.seed import TOKENS_FILE
from perf.loadtest.stored import StoredRunError, stored_run
from perf.models import LoadTestRun


class Command(BaseCommand):
    help = (
        "Run a locust load test against a running server and write a report in the guide's form. "
        f"Profiles: {', '.join(PROFILES)}. Exits non-zero when a threshold fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("profile", help=f"one of: {', '.join(PROFILES)}")
        parser.add_argument("--host", default="http://127.0.0.1:8000", help="server (default %(default)s)")
        parser.add_argument("--users", type=int, help="run one stage with this many users")
        parser.add_argument("--duration", type=int, help="run one stage of this many seconds")
        parser.add_argument("--spawn-rate", type=float, help="users started per second")
        parser.add_argument(
            "--think-time", type=float, help="fixed seconds between a user's requests (0: throughput)"
        )
        parser.add_argument("--p95", type=float, help="override the p95 threshold (ms)")
        parser.add_argument("--p99", type=float, help="override the p99 threshold (ms)")
        parser.add_argument(
            "--max-error-rate", type=float, help="override the error-rate threshold (0.01 = 1 %%)"
        )
        parser.add_argument("--min-rps", type=float, help="override the throughput threshold (requests/s)")
        parser.add_argument(
            "--server-pid", type=int, help="gunicorn master pid (default: make run's pidfile)"
        )
        parser.add_argument(
            "--tokens-file", type=Path, default=TOKENS_FILE, help="seed_data's tokens (default %(default)s)"
        )
        parser.add_argument(
            "--report-dir",
            type=Path,
            default=default_report_dir(),
            help="where reports go (default %(default)s)",
        )
        parser.add_argument(
            "--compare",
            metavar="RUN",
            help="also write a before/after table against RUN: a run's id, a run folder "
            "(e.g. docs/loadtests/20261128-080151-mixed) or its report.json",
        )
        parser.add_argument(
            "--writes-per-second",
            metavar="N",
            help="churn: bounties posted per second in total by signed-in writers (default 0: readers only)",
        )
        parser.add_argument(
            "--baseline",
            type=int,
            metavar="RUN",
            help="churn: also judge issue 13's targets against churn run RUN (usually 0 posts/s): "
            "read RPS >= 90 %%, hit ratio >= 97 %%, read p99 <= 1.5x, no failed request",
        )
        parser.add_argument("--notes", default="", help="notes for the report")
        parser.add_argument("--actions", default="", help="'actions taken' for the report")

    def handle(self, *args, **options):
        if options["profile"] not in PROFILES:
            raise CommandError(
                f"unknown profile {options['profile']!r}; choose one of: {', '.join(PROFILES)}"
            )
        if options["users"] is not None and options["users"] < 1:
            raise CommandError("--users must be at least 1.")
        overrides = {
            name: options[option]
            for name, option in [
                ("p95_ms", "p95"),
                ("p99_ms", "p99"),
                ("error_rate", "max_error_rate"),
                ("min_rps", "min_rps"),
            ]
            if options[option] is not None
        }
        profile = PROFILES[options["profile"]].overridden(
            users=options["users"],
            duration=options["duration"],
            spawn_rate=options["spawn_rate"],
            think_time=options["think_time"],
            thresholds=overrides,
        )
        if options["profile"] == "churn":
            profile = profile.with_writes(self._writes_per_second(options["writes_per_second"]))
        elif options["writes_per_second"] is not None or options["baseline"] is not None:
            raise CommandError("--writes-per-second and --baseline are for the churn profile only.")
        # Each mistake is one line: the options first, then (run_loadtest) the server and the
        # database; a run named by id needs the database already.
        if options["baseline"] is not None or (options["compare"] or "").isdigit():
            require_migrated_database()
        baseline = None
        if options["baseline"] is not None:
            baseline = LoadTestRun.objects.filter(pk=options["baseline"]).first()
            if baseline is None or "churn" not in baseline.data:
                raise CommandError(f"no churn run {options['baseline']} to use as --baseline.")
        compare_with = None
        if options["compare"] is not None:
            compare_with = self._comparison_base(options["compare"])
        writers = sum(profile.fixed_users.values())
        self.stdout.write(
            f"{profile.name}: {profile.max_users} users, {profile.duration} s against {options['host']}"
            + (f"; {writers} writers posting {profile.writes_per_second:g} bounties/s" if writers else "")
        )
        try:
            request = RunRequest(
                profile=profile,
                host=options["host"],
                report_dir=options["report_dir"],
                tokens_file=options["tokens_file"],
                server_pid=options["server_pid"],
                notes=options["notes"],
                actions=options["actions"],
                compare_with=compare_with,
                baseline=baseline,
            )
            run = run_loadtest(request, progress=self._progress)
        except LoadTestError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(run.data["markdown"].split("## Endpoints")[0])
        if "comparison" in run.data:
            self.stdout.write(run.data["comparison"])
        self.stdout.write(f"run #{run.pk}; report: {run.report_path}")
        if not run.passed:
            failed = [c["metric"] for c in run.data["checks"] if c["status"] == "fail"]
            raise CommandError(f"thresholds failed: {', '.join(failed)}")

    @staticmethod
    def _comparison_base(value: str) -> LoadTestRun:
        """The run ``--compare`` names: a stored run's id, else a run folder or its report.json
        (an unsaved run: the committed runs compare on a fresh clone's empty database)."""
        if value.isdigit():
            run = LoadTestRun.objects.filter(pk=int(value)).first()
            if run is None:
                raise CommandError(f"no load-test run {value} to compare with.")
            return run
        try:
            return stored_run(Path(value))
        except StoredRunError as exc:
            raise CommandError(f"--compare {value}: {exc}") from None

    @staticmethod
    def _writes_per_second(value: str | None) -> float:
        if value is None:
            return 0.0
        try:
            rate = float(value)
        except ValueError:
            rate = math.nan
        if not math.isfinite(rate) or rate < 0:
            raise CommandError(
                f"--writes-per-second {value!r}: give the bounties to post per second, "
                "a number >= 0 (e.g. 10; 0 for readers only)."
            )
        return rate

    def _progress(self, line: str, final: bool) -> None:
        # One live line on a terminal; a line every 10 s in a log.
        if sys.stdout.isatty():
            self.stdout.write(f"\r{line}", ending="\n" if final else "")
            self.stdout.flush()
        elif final or line.lstrip().split()[0].endswith("0"):
            self.stdout.write(line)
