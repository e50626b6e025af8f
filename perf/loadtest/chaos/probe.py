"""The chaos run's own client: a fixed-rate request mix whose every answer (or connection
error) is recorded with its time, so each fault can be measured to the request.

Open loop: requests are sent on schedule whether or not earlier ones have finished (each on
a thread of a large pool), and latency counts from when a request was due. A closed-loop
client would slow down exactly when the server does and under-report the outage.
"""

from __future__ import annotations

import csv
import http.client
import itertools
import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

# The probe's own client address (the server trusts one proxy hop: TRUSTED_PROXY_COUNT=1).
PROBE_ADDRESS = "10.255.255.254"
SEARCH_TERMS = ["web", "mobile", "design", "data", "test", "logo", "django", "seo", "report", "app"]


@dataclass(frozen=True)
class ProbeRecord:
    at: float  # seconds since the run started, when the request was due
    endpoint: str
    status: int | None  # None: no HTTP answer (refused, reset, timed out)
    latency_ms: float  # from due to answer or error
    retry_after: bool  # a Retry-After header was present
    code: str  # the error shape's code for an HTTP error, the exception's name for no answer

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Probe(threading.Thread):
    """Sends ``rate`` requests a second to ``port`` until stopped: the bounty list, a bounty
    detail (cycling through ``bounty_ids``, so most miss the response cache and read
    PostgreSQL), a search and the signed-in wallet, in turn."""

    def __init__(
        self,
        *,
        port: int,
        rate: float,
        token: str,
        bounty_ids: Sequence[int],
        clock: Callable[[], float],
        timeout: float = 30,
    ) -> None:
        super().__init__(name="chaos-probe", daemon=True)
        self.port = port
        self.interval = 1 / rate
        self.clock = clock
        self.timeout = timeout
        self.records: list[ProbeRecord] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        ids = itertools.cycle(bounty_ids)
        terms = itertools.cycle(SEARCH_TERMS)
        auth = {"Authorization": f"Bearer {token}"}
        self._mix: list[tuple[str, Callable[[], str], dict[str, str]]] = [
            ("GET /api/bounties", lambda: "/api/bounties?limit=20", {}),
            ("GET /api/bounties/{id}", lambda: f"/api/bounties/{next(ids)}", {}),
            ("GET /api/bounties/search", lambda: f"/api/bounties/search?q={next(terms)}&limit=20", {}),
            ("GET /api/wallet", lambda: "/api/wallet", auth),
        ]

    def run(self) -> None:
        # A thread for every request that can be in flight (each ends within its timeout): the
        # probe never waits for a thread of its own, whatever the server does.
        threads = int(self.timeout / self.interval) + 16
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="probe") as pool:
            due = self.clock()
            for n in itertools.count():
                if self._halt.is_set():
                    break
                endpoint, path, headers = self._mix[n % len(self._mix)]
                pool.submit(self._send, due, endpoint, path(), headers)
                due += self.interval
                self._halt.wait(max(0.0, due - self.clock()))

    def stop(self) -> list[ProbeRecord]:
        """Stop sending, wait for the requests in flight (bounded by their timeout)."""
        self._halt.set()
        self.join(timeout=self.timeout + 10)
        return self.snapshot()

    def snapshot(self) -> list[ProbeRecord]:
        with self._lock:
            return sorted(self.records, key=lambda record: record.at)

    def _send(self, due: float, endpoint: str, path: str, headers: dict[str, str]) -> None:
        # A new connection per request, as a fresh client: a keep-alive connection would tie
        # the probe to one worker.
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        status: int | None = None
        retry_after = False
        code = ""
        try:
            connection.request(
                "GET", path, headers={"X-Forwarded-For": PROBE_ADDRESS, "Connection": "close", **headers}
            )
            response = connection.getresponse()
            body = response.read()
            status = response.status
            retry_after = response.getheader("Retry-After") is not None
            if status >= 400:
                code = _error_code(body)
        except (OSError, http.client.HTTPException) as exc:
            code = type(exc).__name__
        finally:
            connection.close()
        record = ProbeRecord(
            at=round(due, 3),
            endpoint=endpoint,
            status=status,
            latency_ms=round((self.clock() - due) * 1000, 1),
            retry_after=retry_after,
            code=code,
        )
        with self._lock:
            self.records.append(record)


def _error_code(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "non-json"


def write_csv(records: Sequence[ProbeRecord], path: Path) -> None:
    names = [f.name for f in fields(ProbeRecord)]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(asdict(record) for record in records)
