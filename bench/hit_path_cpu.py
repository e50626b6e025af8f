"""CPU time per cached request in-process, through the WSGI handler (no server, no network):
the minimal Django app (bench/minimal/app.py), this API's cached bounty list and detail through
the hit path as served (bountyexpo.wsgi: its WSGI front, core/hit_front.py), through the hit
path middleware alone (HIT_PATH_FRONT=0) and through the full stack (HIT_PATH_ENABLED=0), and
/healthz. Rate limits on, every
request its own client (X-Forwarded-For, TRUSTED_PROXY_COUNT=1), metrics on with their files on
tmpfs; each configuration in a fresh process, ROUNDS times alternately, medians printed with the
ratio to the minimal app. CPU time moves far less than wall time on a shared machine, and leaves
out the server (gunicorn) both have to pay.

    .venv/bin/python bench/hit_path_cpu.py     (ROUNDS=3 REQUESTS=3000; DATABASE_URL, REDIS_URL
                                                or .local/env, data loaded: make run or seed_data)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_rounds import cpu_rounds, print_cpu_per_request, wsgi_environ

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "minimal Django app": ("minimal", "/api/bounties", ""),
    "cached list, hit path": ("1", "/api/bounties", "limit=20"),
    "cached list, full stack": ("0", "/api/bounties", "limit=20"),
    "cached list, hit path middleware only": ("middleware", "/api/bounties", "limit=20"),
    "cached detail, hit path": ("1", "/api/bounties/{id}", ""),
    "cached detail, hit path middleware only": ("middleware", "/api/bounties/{id}", ""),
    "cached detail, full stack": ("0", "/api/bounties/{id}", ""),
    "/healthz": ("1", "/healthz", ""),
}


def child(hit_path: str, path: str, query: str, requests: int) -> None:
    if hit_path == "minimal":
        sys.path.insert(0, str(ROOT / "bench" / "minimal"))
        from app import application
    else:
        os.environ["HIT_PATH_ENABLED"] = "0" if hit_path == "0" else "1"
        os.environ["HIT_PATH_FRONT"] = "0" if hit_path == "middleware" else "1"
        os.environ["TRUSTED_PROXY_COUNT"] = "1"
        shm = Path("/dev/shm")  # noqa: S108 (tmpfs, as deploy/gunicorn.conf.py puts the metrics files)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(dir=shm if shm.is_dir() else None)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bountyexpo.settings")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from bounties.models import Bounty
        from bountyexpo.wsgi import application  # the hit path's WSGI front around Django's handler

        path = path.replace("{id}", str(Bounty.objects.order_by("-pk").values_list("pk", flat=True).first()))

    def environ_for(n: int) -> dict:  # every request its own client
        return wsgi_environ(
            "GET", path, query, HTTP_X_FORWARDED_FOR=f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
        )

    # Warm: the cache entry, the pool, the code paths.
    print_cpu_per_request(application, environ_for, warm=300, requests=requests, ok=("200",))


def main() -> None:
    rounds, requests = int(os.environ.get("ROUNDS", 3)), int(os.environ.get("REQUESTS", 3000))
    micros = cpu_rounds(__file__, CASES, rounds, requests)
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
