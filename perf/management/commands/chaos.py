from __future__ import annotations

import argparse
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from perf.loadtest.chaos.harness import ChaosError
from perf.loadtest.chaos.plan import FAULT_NAMES, ChaosPlan
from perf.loadtest.chaos.runner import default_report_dir, run_chaos

DEFAULTS = ChaosPlan()


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


class Command(BaseCommand):
    help = (
        "Inject faults under load into a throwaway copy of the stack (its own PostgreSQL cluster, "
        "Redis and gunicorn on free loopback ports; the developer's databases are never touched) "
        f"and measure them: {', '.join(FAULT_NAMES)}. Writes report.md and report.json; exits "
        "non-zero when an expectation fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fault",
            action="append",
            choices=FAULT_NAMES,
            help="run only this fault (repeatable; default: all four, in the order listed above)",
        )
        parser.add_argument(
            "--quick",
            action="store_true",
            help="the test suite's short version: small data, each fault a few seconds, about two minutes",
        )
        seconds = [
            ("--redis-down-seconds", "how long Redis stays down", DEFAULTS.redis_down_seconds),
            ("--pg-down-seconds", "how long PostgreSQL stays stopped", DEFAULTS.pg_down_seconds),
            ("--lock-seconds", "how long the bounties table stays locked", DEFAULTS.lock_seconds),
            ("--recovery-seconds", "quiet period measured after each fault", DEFAULTS.recovery_seconds),
            ("--warmup-seconds", "traffic before the first fault", DEFAULTS.warmup_seconds),
            (
                "--baseline-seconds",
                "quiet traffic measured right before each fault",
                DEFAULTS.baseline_seconds,
            ),
        ]
        for flag, what, default in seconds:
            parser.add_argument(flag, type=_positive, help=f"{what} (default {default:g} s)")
        parser.add_argument("--users", type=_count, help=f"locust users (default {DEFAULTS.users})")
        parser.add_argument(
            "--think-time",
            type=float,
            help="fixed seconds between a locust user's requests (default: the normal profile's 0.5-1.5 s)",
        )
        parser.add_argument(
            "--probe-rate",
            type=_positive,
            help=f"probe requests per second (default {DEFAULTS.probe_rate:g})",
        )
        parser.add_argument(
            "--workers",
            type=_count,
            help=f"gunicorn workers (default {DEFAULTS.workers}, as gunicorn.conf.py)",
        )
        parser.add_argument(
            "--threads", type=_count, help=f"threads per gunicorn worker (default {DEFAULTS.threads})"
        )
        parser.add_argument(
            "--statement-timeout-ms",
            type=_count,
            help=f"the server's DATABASE_STATEMENT_TIMEOUT_MS (default {DEFAULTS.statement_timeout_ms})",
        )
        parser.add_argument(
            "--pool-max",
            type=_count,
            help=f"pool size of the pool-exhaustion fault's server (default {DEFAULTS.pool_max})",
        )
        parser.add_argument(
            "--pool-threads",
            type=_count,
            help=f"threads of the pool-exhaustion fault's server (default {DEFAULTS.pool_threads})",
        )
        parser.add_argument(
            "--seed-users", type=_count, help=f"seed_data users (default {DEFAULTS.seed_users})"
        )
        parser.add_argument(
            "--seed-bounties", type=_count, help=f"seed_data bounties (default {DEFAULTS.seed_bounties})"
        )
        parser.add_argument(
            "--report-dir",
            type=Path,
            default=default_report_dir(),
            help="each run writes a <time>/ folder here (default %(default)s)",
        )
        parser.add_argument(
            "--keep",
            action="store_true",
            help="keep the throwaway cluster's folder (.local/chaos/<time>/) after the run, to investigate",
        )

    def handle(self, *args, **options) -> None:
        base = ChaosPlan.quick_plan() if options["quick"] else ChaosPlan()
        faults = tuple(name for name in FAULT_NAMES if name in (options["fault"] or FAULT_NAMES))
        given = {name: value for name, value in options.items() if name != "quick"}
        plan = base.with_options(**given, faults=faults)
        if "pool-exhaustion" in plan.faults and plan.pool_max >= plan.pool_threads:
            raise CommandError(
                f"--pool-max ({plan.pool_max}) must be smaller than --pool-threads ({plan.pool_threads}), "
                "or the pool cannot run out."
            )
        if plan.seed_users < 2 or plan.seed_bounties < 2:
            raise CommandError("--seed-users and --seed-bounties must be at least 2.")
        if options["think_time"] is not None and options["think_time"] < 0:
            raise CommandError("--think-time cannot be negative.")
        self.stdout.write(
            f"chaos: {', '.join(plan.faults)}; {plan.users} locust users, probe {plan.probe_rate:g}/s"
            + (" (quick)" if plan.quick else "")
        )
        try:
            run = run_chaos(plan=plan, report_dir=options["report_dir"], keep=options["keep"], say=self._say)
        except ChaosError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(run.result["markdown"].split("\n## ", 3)[2].removeprefix("Summary\n"))
        self.stdout.write(f"report: {run.folder / 'report.md'}")
        if not run.passed:
            failed = [fault["name"] for fault in run.result["faults"] if not fault["passed"]]
            raise CommandError(f"expectations failed: {', '.join(failed)}")

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
