"""CPU time per request of the cached bounty list, in-process (Django's test client, the whole
middleware stack), with the metrics off, on with their files on tmpfs, and on with their files on
a disk; each configuration in a fresh process, ROUNDS times alternately. CPU time
(``time.process_time``) moves far less than wall time on a shared machine.

    .venv/bin/python bench/metrics_cpu.py        (ROUNDS=3 REQUESTS=3000; DATABASE_URL, REDIS_URL
                                                  or .local/env, data loaded: make run or seed_data)
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/bounties?limit=20"


def child(metrics: str, folder: str) -> None:
    if metrics == "1":
        directory = tempfile.mkdtemp(dir=folder)
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    os.environ["METRICS_ENABLED"] = metrics
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bountyexpo.settings")
    import django

    django.setup()
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    for _ in range(300):  # warm: the cache entry, the pool, the code paths
        client.get(PATH)
    assert client.get(PATH)["X-Cache"] == "hit"
    requests = int(os.environ.get("REQUESTS", 3000))
    start = time.process_time()
    for _ in range(requests):
        client.get(PATH)
    print((time.process_time() - start) / requests * 1e6)


def main() -> None:
    configurations = {"metrics off": ("0", "/tmp"), "metrics on, tmpfs": ("1", "/dev/shm")}  # noqa: S108
    configurations["metrics on, disk"] = ("1", str(ROOT / ".local"))
    results: dict[str, list[float]] = {name: [] for name in configurations}
    env = {**os.environ, "RATELIMIT_ENABLE": "0", "PYTHONPATH": str(ROOT)}
    for _ in range(int(os.environ.get("ROUNDS", 3))):
        for name, (metrics, folder) in configurations.items():
            output = subprocess.run(  # noqa: S603 (this script, fixed arguments)
                [sys.executable, __file__, "--child", metrics, folder],
                cwd=ROOT, env=env, capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            results[name].append(float(output.strip().splitlines()[-1]))
    off = statistics.median(results["metrics off"])
    for name, values in results.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{value:.0f}" for value in values)
        print(f"{name:18} median {median:5.0f} us CPU/request ({median / off - 1:+.1%}); rounds {rounds}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:4])
    else:
        main()
