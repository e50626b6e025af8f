"""Schemathesis against a live server: the API answers as its OpenAPI schema says.

Every operation of ``/api/schema`` is exercised with generated requests (valid and invalid),
as a user who owns bounties in every status, applications, conversations with messages and a
funded wallet; path ids are real objects about half of the time. Each response is checked
for: no server error, a documented status code, the documented content type, a body that
matches the documented schema, and the documented headers.

Size: without ``FUZZ_EXAMPLES`` the normal suite's bounded run, 10 generated examples per
operation (about 300 requests). With it (``make fuzz``), that many examples per operation plus
schemathesis' coverage phase: with 100, over 4,000 requests. Failures are reported with a
reproducer (and the server's traceback for a 5xx); ``-s`` prints the counts of every run.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass

import pytest
import requests
import schemathesis
from django.conf import settings as django_settings
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.errors import FailureGroup

from tests.conftest import gunicorn_server
from tests.fuzz.conftest import LiveServer
from tests.fuzz.world import PITCH, World, world_build

# Unset: the bounded run of the normal suite (generated examples only). Set: the long run,
# which adds schemathesis' coverage phase (every boundary and wrong type the schema implies).
LONG_RUN = "FUZZ_EXAMPLES" in os.environ
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
# Printed with the results; set it to generate the same requests again (the server's state,
# and so some answers, may still differ).
FUZZ_SEED = int(os.environ.get("FUZZ_SEED") or random.getrandbits(64))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# New objects every this many requests, so later requests still meet open bounties.
REPLENISH_EVERY = 250
# One request in this many goes without a token, one with an invalid token (401 paths).
CREDENTIAL_CYCLE = 20
INVALID_TOKEN = "Bearer fuzz-not-a-token"
REVOKING = "DELETE /api/auth/token"


@dataclass
class Finding:
    check: str
    title: str
    operation: str
    status: int
    reproducer: str
    traceback: str
    count: int = 1


class FuzzRun:
    """Sends the generated cases, counts them, and records every failed check."""

    def __init__(self, server: LiveServer, world: World):
        self.server = server
        self.world = world
        self.session = requests.Session()
        self.sent = 0
        self.started = time.monotonic()
        self.statuses: dict[str, Counter[int]] = {}
        self.findings: dict[tuple, Finding] = {}

    @property
    def failures(self) -> list[Finding]:
        return list(self.findings.values())

    def send(self, case) -> None:
        headers = self._credentials(case)
        response = case.call(base_url=self.server.url, session=self.session, headers=headers, timeout=30)
        self.sent += 1
        self.statuses.setdefault(case.operation.label, Counter())[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                self._record(failure, case, response)
        if self.sent % REPLENISH_EVERY == 0:
            self.world.replenish()

    def _credentials(self, case) -> dict[str, str]:
        turn = self.sent % CREDENTIAL_CYCLE
        if turn == CREDENTIAL_CYCLE // 3:
            # Anonymous: drop any Authorization schemathesis generated for the bearer scheme.
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            return {}
        if turn == 2 * CREDENTIAL_CYCLE // 3:
            return {"Authorization": INVALID_TOKEN}
        # Logging out revokes the token it carries: give it one of its own.
        token = self.world.fresh_token() if case.operation.label == REVOKING else self.world.token
        return {"Authorization": f"Bearer {token}"}

    def _record(self, failure, case, response) -> None:
        check = failure.checks[0] if failure.checks else type(failure).__name__
        key = (check, case.operation.label, response.status_code, failure.title)
        if key in self.findings:
            self.findings[key].count += 1
            return
        request = response.request
        body = request.body.decode(errors="replace") if isinstance(request.body, bytes) else request.body
        reproducer = f"{request.method} {request.url}\nbody: {body!r}\n{failure.message}".strip()
        request_id = response.headers.get("X-Request-ID", "")
        traceback = self.server.traceback_for(request_id) if response.status_code >= 500 else ""
        self.findings[key] = Finding(
            check, failure.title, case.operation.label, response.status_code, reproducer, traceback
        )

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        total: Counter[int] = sum(self.statuses.values(), Counter())
        failed: Counter[str] = Counter()
        for finding in self.findings.values():
            failed[finding.check] += finding.count
        phases = f"{FUZZ_EXAMPLES} examples per operation" + (", coverage phase" if LONG_RUN else "")
        lines = [
            f"\nschemathesis: {self.sent} requests to {len(self.statuses)} operations in {elapsed:.0f} s "
            f"({phases}; FUZZ_SEED={FUZZ_SEED})",
            f"  statuses: {_counts(total)}",
            f"  failed checks: {json.dumps(failed) if failed else 'none'}",
        ]
        lines += [f"  {label}: {_counts(counts)}" for label, counts in sorted(self.statuses.items())]
        return "\n".join(lines)

    def failure_report(self) -> str:
        parts = [f"{len(self.findings)} distinct failures:"]
        for finding in sorted(self.findings.values(), key=lambda f: (f.check, f.operation, f.status)):
            parts.append(
                f"\n[{finding.check}] {finding.operation} -> {finding.status} ({finding.count}x): "
                f"{finding.title}\n{finding.reproducer}"
            )
            if finding.traceback:
                parts.append(finding.traceback)
        return "\n".join(parts)


def _counts(counter: Counter[int]) -> str:
    return ", ".join(f"{code}: {count}" for code, count in sorted(counter.items()))


def _id_pool(world: World, path: str, name: str) -> list[int] | None:
    """Which real objects a path parameter can name."""
    if name == "bounty_pk" or path.startswith("/api/bounties/{id}"):
        return world.bounty_ids
    if name == "conversation_pk" or path.startswith("/api/conversations/{id}"):
        return world.conversation_ids
    if path.startswith("/api/requests/{id}"):
        return world.request_ids
    if path.startswith("/api/profiles/{id}"):
        return world.user_ids
    return None


# Bodies that pass validation, for operations whose generated bodies almost never do (a
# 50-character description, an amount the wallet covers): without them the run would see
# these operations succeed only by luck. Used as they are, or over a generated body.
VALID_BODIES = {
    "POST /api/bounties": {
        "title": "Fuzz the marketplace API",
        "description": "Send generated requests to every operation and compare the answers with the schema.",
        "amount": "15.00",
        "category": "testing",
        "work_type": "online",
    },
    "POST /api/bounties/{bounty_pk}/requests": {"message": PITCH},
    "POST /api/wallet/withdrawals": {"amount": "10.00"},
    "POST /api/wallet/deposits": {"amount": "50.00", "reference": "fuzz-deposit"},
}


def _register_hooks(schema, world: World) -> None:
    """Real ids, participants and valid bodies about half of the time; generated values
    otherwise. The id pools grow while the run replenishes them, so a drawn index is resolved
    when it is used."""

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        if not isinstance(path_parameters, dict):
            return st.just(path_parameters)
        pools = {
            name: pool for name in path_parameters if (pool := _id_pool(world, context.operation.path, name))
        }
        if not pools:
            return st.just(path_parameters)

        def real(index: int) -> dict:
            chosen = {}
            for name, pool in pools.items():
                value = pool[index % len(pool)]
                chosen[name] = str(value) if isinstance(path_parameters[name], str) else value
            return {**path_parameters, **chosen}

        return st.one_of(st.just(path_parameters), st.integers(0, 10_000).map(real))

    @schema.hook
    def flatmap_body(context, body):
        valid = VALID_BODIES.get(context.operation.label)
        if valid is not None:
            merged = {**body, **valid} if isinstance(body, dict) else valid
            return st.sampled_from([body, valid, merged])
        if context.operation.label != "POST /api/conversations" or not isinstance(body, dict):
            return st.just(body)
        others = [[world.hunter.pk], [world.third.pk], [world.hunter.pk, world.third.pk]]

        def real(choice: tuple[list[int], int | None]) -> dict:
            participants, index = choice
            bounty = None if index is None else world.bounty_ids[index % len(world.bounty_ids)]
            return {**body, "participant_ids": participants, "bounty": bounty}

        chosen = st.tuples(st.sampled_from(others), st.none() | st.integers(0, 10_000)).map(real)
        return st.one_of(st.just(body), chosen)


@pytest.fixture
def fuzz_run(request, transactional_db, tmp_path):
    """The server over committed data (it is another process), with rate limits out of reach."""
    world = world_build()
    limits = {f"RATELIMIT_{tier.upper()}": "1000000/m" for tier in django_settings.RATE_LIMITS}
    with gunicorn_server(tmp_path, **limits) as server:
        run = FuzzRun(LiveServer(server.url, server.log), world)
        request.node.fuzz_run = run  # read by conftest.pytest_runtest_call
        yield run


@pytest.fixture
def api_schema(request, fuzz_run):
    # schemathesis' lazy loader labels its per-operation reports through Node._nodeid, which
    # pytest 9.2 no longer has (it keeps Node._id); give it the attribute it reads and writes.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    config = schemathesis.Config.from_dict({"seed": FUZZ_SEED, "phases": {"coverage": {"enabled": LONG_RUN}}})
    schema = schemathesis.openapi.from_url(f"{fuzz_run.server.url}/api/schema", config=config)
    _register_hooks(schema, fuzz_run.world)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.timeout(0 if LONG_RUN else 170)
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,  # nothing to replay from earlier runs: each starts from new data
    # Failures are recorded, not raised (see conftest): nothing to shrink or replay.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@schema.parametrize()
def test_api_answers_as_its_schema_says(case, fuzz_run):
    fuzz_run.send(case)
