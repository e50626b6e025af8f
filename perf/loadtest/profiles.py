"""Load profiles: the guide's baseline/normal/peak and SPEC section 4's scenarios.

A profile is stages (how many users for how long), think time, the user mix and thresholds
with k6's meaning. Plain data: the command passes it to the locust process as JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

# A churn writer posts at most this often, so a POST may take up to 1 / rate seconds before the
# writer falls behind its pace (locust's constant_throughput does not catch up on slow tasks).
MAX_WRITES_PER_WRITER = 0.5


def writer_plan(writes_per_second: float) -> tuple[int, float]:
    """(writer users, posts per second each) for a total of ``writes_per_second``; (0, 0) for none."""
    if writes_per_second <= 0:
        return 0, 0.0
    writers = math.ceil(writes_per_second / MAX_WRITES_PER_WRITER)
    return writers, writes_per_second / writers


@dataclass(frozen=True)
class Stage:
    seconds: int
    users: int
    spawn_rate: float  # users started (or stopped) per second to reach ``users``


@dataclass(frozen=True)
class Thresholds:
    """Each None is not checked. Defaults are the guide's targets."""

    p95_ms: float | None = 500
    p99_ms: float | None = 1000
    error_rate: float | None = 0.01
    min_rps: float | None = 500
    endpoint_p95_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    stages: tuple[Stage, ...]
    think_time: tuple[float, float]  # seconds between a user's requests (min, max)
    # locust user classes and their weights (perf/loadtest/locustfile.py)
    users_mix: dict[str, int]
    thresholds: Thresholds = Thresholds()
    # Users that run beside the stages' users, whatever their count (locust's fixed_count): the
    # churn profile's writers. The stages' users are the others (the readers).
    fixed_users: dict[str, int] = field(default_factory=dict)
    writes_per_second: float = 0.0  # total posts per second over the fixed users (churn)

    @property
    def duration(self) -> int:
        return sum(stage.seconds for stage in self.stages)

    @property
    def max_users(self) -> int:
        return max(stage.users for stage in self.stages)

    def ramp_up_seconds(self) -> float:
        return self.stages[0].users / self.stages[0].spawn_rate

    def overridden(
        self,
        *,
        users: int | None = None,
        duration: int | None = None,
        spawn_rate: float | None = None,
        think_time: float | None = None,
        thresholds: dict | None = None,
    ) -> Profile:
        """This profile with command-line overrides; users/duration/spawn-rate make it one stage."""
        profile = self
        if users is not None or duration is not None or spawn_rate is not None:
            stage = Stage(
                seconds=duration or profile.duration,
                users=users or profile.max_users,
                spawn_rate=spawn_rate or profile.stages[0].spawn_rate,
            )
            profile = replace(profile, stages=(stage,))
        if think_time is not None:
            profile = replace(profile, think_time=(think_time, think_time))
        if thresholds:
            profile = replace(profile, thresholds=replace(profile.thresholds, **thresholds))
        return profile

    def with_writes(self, writes_per_second: float) -> Profile:
        """This profile with writers posting bounties at ``writes_per_second`` in total; none at 0."""
        writers, _ = writer_plan(writes_per_second)
        return replace(
            self,
            writes_per_second=writes_per_second,
            fixed_users={"ChurnWriter": writers} if writers else {},
        )

    def as_json(self) -> dict:
        return asdict(self)


MIXED_TRAFFIC = {"BrowserUser": 7, "MemberUser": 3}

PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in [
        Profile(
            "baseline",
            "10 users, 1-3 s think time: 7 anonymous ones list open bounties, then read the first's "
            "detail; 3 signed-in ones also read their wallet, applications and messages, apply, "
            "write and deposit.",
            (Stage(60, 10, 2),),
            (1.0, 3.0),
            {"BaselineUser": 7, "MemberUser": 3},
            Thresholds(p95_ms=300, p99_ms=None, min_rps=None),
        ),
        Profile(
            "normal",
            "50 users of mixed anonymous and signed-in traffic, 0.5-1.5 s think time.",
            (Stage(120, 50, 5),),
            (0.5, 1.5),
            MIXED_TRAFFIC,
        ),
        Profile(
            "peak",
            "200 users of mixed anonymous and signed-in traffic, 0.5-1.5 s think time.",
            (Stage(180, 200, 10),),
            (0.5, 1.5),
            MIXED_TRAFFIC,
        ),
        Profile(
            "flow",
            "list, detail, search; 50 -> 100 -> 200 users, 1-2 s think time.",
            (Stage(60, 50, 10), Stage(60, 100, 10), Stage(60, 200, 10)),
            (1.0, 2.0),
            {"FlowUser": 7, "MemberUser": 3},
            Thresholds(
                p99_ms=None,
                min_rps=None,
                endpoint_p95_ms={
                    "GET /api/bounties": 500,
                    "GET /api/bounties/{id}": 200,
                    "GET /api/bounties/search": 1000,
                },
            ),
        ),
        Profile(
            "mixed",
            "50 % browsers, 30 % searchers, 20 % viewers; 30 -> 80 -> 150 users.",
            (Stage(60, 30, 10), Stage(60, 80, 10), Stage(60, 150, 10)),
            (1.0, 2.0),
            {"BrowserPagesUser": 35, "SearcherUser": 21, "ViewerUser": 14, "MemberUser": 30},
            Thresholds(p95_ms=600, p99_ms=None, min_rps=None),
        ),
        Profile(
            "spike",
            "10 users, then 200 within 10 s for 3 minutes.",
            (Stage(30, 10, 10), Stage(180, 200, 20)),
            (0.5, 1.5),
            MIXED_TRAFFIC,
            Thresholds(p95_ms=1000, p99_ms=None, min_rps=None),
        ),
        Profile(
            "churn",
            "50 readers with no think time (lists, half by category, details, searches) while "
            "writers post bounties at --writes-per-second in total; hit ratio and read percentiles "
            "per second.",
            (Stage(90, 50, 5),),
            (0.0, 0.0),
            {"ChurnReader": 1},
            # The targets are relative to the 0-posts run (--baseline), not an absolute RPS.
            Thresholds(min_rps=None),
        ),
        Profile(
            "stress",
            "100 to 500 users in steps of 100, one minute each.",
            tuple(Stage(60, users, 20) for users in (100, 200, 300, 400, 500)),
            (0.5, 1.5),
            MIXED_TRAFFIC,
            Thresholds(p95_ms=2000, p99_ms=None, min_rps=None),
        ),
    ]
}
