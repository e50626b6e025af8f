"""The in-process CPU benchmarks' runner (bench/hit_path_cpu.py, bench/write_path_cpu.py): each
case in a fresh child process of the script, every case once per round, rounds taking turns."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def cpu_rounds(
    script: str, cases: dict[str, tuple[str, ...]], rounds: int, requests: int
) -> dict[str, list[float]]:
    """``script --child *case requests`` for every case, ``rounds`` times; each child prints its
    CPU microseconds per request last. Prints each round as it ends; returns the figures per case."""
    micros: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(rounds):
        for name, args in cases.items():
            out = subprocess.run(  # noqa: S603 (the benchmark script itself, as a child)
                [sys.executable, script, "--child", *args, str(requests)],
                check=True,
                capture_output=True,
                text=True,
                cwd=Path(script).resolve().parent.parent,
            ).stdout
            micros[name].append(float(out.split()[-1]))
        print(
            f"round {round_ + 1}: "
            + ", ".join(f"{name} {values[-1]:.0f} us" for name, values in micros.items())
        )
    return micros


def wsgi_environ(method: str, path: str, query: str, body: bytes = b"", **headers: str) -> dict:
    """A WSGI environ for a request to 127.0.0.1:8000; ``headers`` as environ keys (HTTP_...)."""
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        **headers,
    }


def print_cpu_per_request(
    application: Callable,
    environ_for: Callable[[int], dict],
    *,
    warm: int,
    requests: int,
    ok: tuple[str, ...],
) -> None:
    """Calls ``application`` with ``environ_for(n)``: ``warm`` requests untimed, then ``requests``
    timed; prints this process's CPU microseconds per timed request (exits if any status is not
    in ``ok``)."""
    statuses = []

    def start_response(status, headers):
        statuses.append(status)

    def run(first: int, count: int) -> None:
        for n in range(first, first + count):
            body = application(environ_for(n), start_response)
            b"".join(body)
            if hasattr(body, "close"):  # WSGI: a body may be a plain list
                body.close()

    run(0, warm)
    statuses.clear()
    started = time.process_time()
    run(warm, requests)
    cpu = time.process_time() - started
    refused = [status for status in statuses if not status.startswith(ok)]
    if refused:
        sys.exit(f"{len(refused)} requests answered {refused[0]}")
    print(cpu / requests * 1e6)
