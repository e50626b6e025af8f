"""CPU time per cached request in-process, through the WSGI handler (no server, no network):
the minimal Django app (bench/minimal/app.py), this API's cached bounty list and detail through
the lean hit path (core/hit_path.py) and through the full stack (HIT_PATH_ENABLED=0), and
/healthz. Rate limits on, every request its own client (X-Forwarded-For, TRUSTED_PROXY_COUNT=1),
metrics on with their files on tmpfs; each configuration in a fresh process, ROUNDS times
alternately, medians printed with the ratio to the minimal app. CPU time moves far less than
wall time on a shared machine, and leaves out the server (gunicorn) both have to pay.

    .venv/bin/python bench/hit_path_cpu.py     (ROUNDS=3 REQUESTS=3000; DATABASE_URL, REDIS_URL
                                                or .local/env, data loaded: make run or seed_data)
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "minimal Django app": ("minimal", "/api/bounties", ""),
    "cached list, hit path": ("1", "/api/bounties", "limit=20"),
    "cached list, full stack": ("0", "/api/bounties", "limit=20"),
    "cached detail, hit path": ("1", "/api/bounties/{id}", ""),
    "cached detail, full stack": ("0", "/api/bounties/{id}", ""),
    "/healthz": ("1", "/healthz", ""),
}


def environ(path: str, query: str, n: int) -> dict:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_X_FORWARDED_FOR": f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }


def child(hit_path: str, path: str, query: str, requests: int) -> None:
    if hit_path == "minimal":
        sys.path.insert(0, str(ROOT / "bench" / "minimal"))
        from app import application
    else:
        os.environ["HIT_PATH_ENABLED"] = hit_path
        os.environ["TRUSTED_PROXY_COUNT"] = "1"
        shm = Path("/dev/shm")  # noqa: S108 (tmpfs, as deploy/gunicorn.conf.py puts the metrics files)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(dir=shm if shm.is_dir() else None)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bountyexpo.settings")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.handlers.wsgi import WSGIHandler

        from bounties.models import Bounty

        path = path.replace("{id}", str(Bounty.objects.order_by("-pk").values_list("pk", flat=True).first()))
        application = WSGIHandler()

    statuses = []

    def start_response(status, headers):
        statuses.append(status)

    def run(first: int, count: int) -> None:
        for n in range(first, first + count):
            body = application(environ(path, query, n), start_response)
            b"".join(body)
            body.close()

    run(0, 300)  # warm: the cache entry, the pool, the code paths
    statuses.clear()
    started = time.process_time()
    run(1000, requests)
    cpu = time.process_time() - started
    refused = [status for status in statuses if not status.startswith("200")]
    if refused:
        sys.exit(f"{len(refused)} requests answered {refused[0]}")
    print(cpu / requests * 1e6)


def main() -> None:
    rounds, requests = int(os.environ.get("ROUNDS", 3)), int(os.environ.get("REQUESTS", 3000))
    micros: dict[str, list[float]] = {name: [] for name in CASES}
    for round_ in range(rounds):
        for name, (hit_path, path, query) in CASES.items():
            out = subprocess.run(  # noqa: S603 (this script, as a child)
                [sys.executable, __file__, "--child", hit_path, path, query, str(requests)],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            ).stdout
            micros[name].append(float(out.split()[-1]))
        print(
            f"round {round_ + 1}: "
            + ", ".join(f"{name} {values[-1]:.0f} us" for name, values in micros.items())
        )
    minimal = statistics.median(micros["minimal Django app"])
    print(f"\nmedian CPU per request over {rounds} rounds of {requests}:")
    print("| request | CPU us | x minimal app |")
    print("|---|---|---|")
    for name, values in micros.items():
        value = statistics.median(values)
        print(f"| {name} | {value:.0f} | {value / minimal:.1f} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
