"""What a chaos run does and for how long: the faults, their durations, the traffic and the
throwaway server's shape. Plain data; the command builds it from its options."""

from __future__ import annotations

import multiprocessing
from dataclasses import asdict, dataclass, fields, replace

# In the order they run; each name is a --fault choice.
FAULT_NAMES = ("redis-down", "postgres-restart", "pool-exhaustion", "worker-kill")

# "Full service within 5 s after it is back": every probe request sent later is answered 2xx.
RECOVERY_LIMIT_SECONDS = 5.0
# A request may wait for its statement to be cancelled by statement_timeout, plus this much
# (pool wait, queueing in gunicorn, the probe's own scheduling), before it counts as hanging.
HANG_MARGIN_SECONDS = 2.0


@dataclass(frozen=True)
class ChaosPlan:
    """Every duration is in seconds. ``quick`` is the test suite's short version."""

    faults: tuple[str, ...] = FAULT_NAMES
    warmup_seconds: float = 15
    baseline_seconds: float = 5  # quiet traffic right before each fault: what "normal" looked like
    recovery_seconds: float = 20  # the quiet period after each fault, measured as its recovery
    redis_down_seconds: float = 20
    pg_down_seconds: float = 10
    lock_seconds: float = 15
    # Traffic: locust's `normal` mix (anonymous and signed-in reads and writes) plus the probe.
    users: int = 20
    think_time: float | None = None  # None: the `normal` profile's 0.5-1.5 s
    probe_rate: float = 20  # probe requests per second, open loop
    # The throwaway server: gunicorn.conf.py's defaults unless told otherwise.
    workers: int = multiprocessing.cpu_count() * 2 + 1
    threads: int = 4
    statement_timeout_ms: int = 10_000  # settings.DATABASE_STATEMENT_TIMEOUT_MS's default
    # The pool fault's server: fewer pooled connections than threads, so the pool runs out.
    pool_max: int = 2
    pool_threads: int = 8
    # seed_data's size (ledger, messages and tokens scale with these).
    seed_users: int = 500
    seed_bounties: int = 5_000
    quick: bool = False

    @classmethod
    def quick_plan(cls) -> ChaosPlan:
        """A few seconds per fault and a small dataset: the whole run in about two minutes."""
        return cls(
            warmup_seconds=3,
            baseline_seconds=3,
            recovery_seconds=6,
            redis_down_seconds=4,
            pg_down_seconds=3,
            lock_seconds=5,
            users=8,
            workers=2,
            # Shorter than the lock, so the phase still shows statements being cancelled.
            statement_timeout_ms=3_000,
            seed_users=100,
            seed_bounties=1_000,
            quick=True,
        )

    def with_options(self, **options: object) -> ChaosPlan:
        """This plan with the options that were given (None means "not given")."""
        names = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in options.items() if k in names and v is not None})

    @property
    def seed_args(self) -> list[str]:
        """seed_data's options for this size: a small ledger, messages and token set."""
        return [
            "--users", str(self.seed_users),
            "--bounties", str(self.seed_bounties),
            "--transactions", str(self.seed_bounties * 4),
            "--messages", str(self.seed_bounties * 2),
            "--conversations", str(max(10, self.seed_bounties // 5)),
            "--tokens", str(min(self.seed_users, 200)),
        ]  # fmt: skip

    def planned_seconds(self) -> float:
        """The faults' phases alone (setup and server restarts come on top)."""
        per_fault = {
            "redis-down": self.redis_down_seconds,
            "postgres-restart": self.pg_down_seconds + 5,
            "pool-exhaustion": self.lock_seconds + self.recovery_seconds + 20,
            "worker-kill": 5,
        }
        return self.warmup_seconds + sum(
            self.baseline_seconds + per_fault[name] + self.recovery_seconds for name in self.faults
        )

    def as_json(self) -> dict:
        return asdict(self)
