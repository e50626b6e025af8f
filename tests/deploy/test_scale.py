"""Several instances behind nginx: two real gunicorn instances on the test database and Debian's
nginx in front, with deploy/nginx.conf rendered for them (deploy/render_nginx.py, as `make
scale-demo` does). Requests spread over both; rate limits and cache invalidation hold across
them (both read Redis); an instance killed mid-run loses no GET (nginx passes it to the other)
and a write retried with its Idempotency-Key is applied once. The reads here carry a token, as
nginx would answer anonymous public reads from its micro-cache without asking an instance
(tests/deploy/test_edge_cache.py).

nginx comes from Debian's nginx-light, which `make test` installs (as root); without it these
tests fail, they never skip."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil
import pytest
import requests
from django.conf import settings

from accounts.services import token_issue
from bounties.models import Bounty
from perf.loadtest.chaos.harness import ChaosError, free_port, wait_until
from tests.conftest import gunicorn_server
from tests.factories import bounty_data, funded_user, paid_bounty

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(settings.BASE_DIR)
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@contextmanager
def nginx_in_front(tmp_path: Path, upstreams: list[str]):
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    render = [sys.executable, "deploy/render_nginx.py", "--listen", str(port), "--prefix", str(prefix)]
    for upstream in upstreams:
        render += ["--upstream", upstream]
    if os.geteuid() == 0:
        render += ["--user", "root"]
    config = prefix / "nginx.conf"
    config.write_text(subprocess.run(render, cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    checked = subprocess.run(
        [NGINX, "-e", "stderr", "-t", "-p", str(prefix), "-c", str(config)], capture_output=True
    )
    assert checked.returncode == 0, checked.stderr.decode()
    log = (prefix / "nginx.log").open("wb")
    server = subprocess.Popen(
        [NGINX, "-e", "stderr", "-p", str(prefix), "-c", str(config), "-g", "daemon off;"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until(lambda: requests.get(f"{url}/healthz", timeout=2), timeout=10, what="nginx answering")
        except ChaosError as exc:
            raise AssertionError(f"{exc}:\n{(prefix / 'nginx.log').read_text()}") from None
        yield url
    finally:
        server.send_signal(signal.SIGQUIT)
        server.wait(timeout=15)
        log.close()


@contextmanager
def two_instances_behind_nginx(tmp_path: Path, **env: str):
    env = {"TRUSTED_PROXY_COUNT": "1", "GUNICORN_WORKERS": "1", "CACHE_PUBLIC_LAG_SECONDS": "0", **env}
    with ExitStack() as stack:
        first = stack.enter_context(gunicorn_server(tmp_path, **env))
        second = stack.enter_context(gunicorn_server(tmp_path, **env))
        url = stack.enter_context(nginx_in_front(tmp_path, [first.url[7:], second.url[7:]]))
        yield url, first, second


def served(server, path: str) -> int:
    """Requests for ``path`` in an instance's access log."""
    return sum(f'"GET {path}' in line for line in server.log.read_text().splitlines())


def kill_instance(server) -> None:
    """SIGKILL the gunicorn master and its workers (orphaned workers would go on serving on the
    inherited socket): no goodbye, connections refused from now on."""
    master = psutil.Process(server.pid)
    processes = [master, *master.children(recursive=True)]
    for process in processes:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(processes, timeout=10)


def bearer(user) -> dict[str, str]:
    raw, _ = token_issue(user=user)
    return {"Authorization": f"Bearer {raw}"}


def test_requests_spread_over_both_instances_and_page_links_lead_back_through_nginx(tmp_path):
    owner = funded_user("100.00")
    for n in range(6):
        paid_bounty(owner, amount="1.00", title=f"Spread job {n}")
    reader = bearer(funded_user("0.00"))
    with two_instances_behind_nginx(tmp_path, RATELIMIT_ENABLE="0") as (url, first, second):
        pages = [
            requests.get(f"{url}/api/bounties", params={"limit": 5}, headers=reader, timeout=10)
            for _ in range(40)
        ]
        statuses = [page.status_code for page in pages]
        counts = served(first, "/api/bounties"), served(second, "/api/bounties")
        following = requests.get(pages[0].json()["next"], headers=reader, timeout=10)

    assert statuses == [200] * 40
    assert sum(counts) == 40 and min(counts) >= 5, counts
    # The Host the client used, port included, reaches the app: links point back at nginx.
    assert pages[0].json()["next"].startswith(f"{url}/api/bounties?")
    assert following.status_code == 200 and len(following.json()["results"]) == 1


def test_rate_limits_and_cache_invalidation_hold_across_instances(tmp_path):
    owner = funded_user("1000.00")
    reader = bearer(funded_user("0.00"))  # not the author: no read-your-writes mark helps

    def page():
        return requests.get(f"{url}/api/bounties", params={"limit": 3}, headers=reader, timeout=10)

    with two_instances_behind_nginx(tmp_path, RATELIMIT_LIST="10/m") as (url, first, second):
        pages = [page() for _ in range(4)]
        body = bounty_data(amount="5.00")
        created = requests.post(f"{url}/api/bounties", json=body, headers=bearer(owner), timeout=10)
        after = [page() for _ in range(4)]
        limited = [page() for _ in range(4)]
        both_served = served(first, "/api/bounties") > 0 and served(second, "/api/bounties") > 0

    assert both_served
    assert created.status_code == 201
    # One list bucket for the reader across both instances: 10 pages a minute, then 429.
    assert [page.status_code for page in pages + after] == [200] * 8
    assert [page.status_code for page in limited] == [200, 200, 429, 429]
    # Whichever instance answers, the page after the post shows it (one generation in Redis).
    assert all(page.json()["results"][0]["id"] == created.json()["id"] for page in after)
    assert all(page.headers["X-RateLimit-Limit"] == "10" for page in pages)


def test_an_instance_killed_mid_run_loses_no_read_and_applies_no_write_twice(tmp_path):
    owner = funded_user("1000.00")
    headers = bearer(owner)
    reads, writes = [], {}
    with two_instances_behind_nginx(tmp_path, RATELIMIT_ENABLE="0") as (url, first, _second):
        for n in range(30):
            if n == 10:
                kill_instance(first)
            page = requests.get(
                f"{url}/api/bounties", params={"limit": 1 + n % 7}, headers=headers, timeout=10
            )
            reads.append(page.status_code)
            if n % 3 == 0:
                key = str(uuid.uuid4())
                for _attempt in range(3):  # a client retries a failed write with the same key
                    response = requests.post(
                        f"{url}/api/bounties",
                        json=bounty_data(amount="1.00", title=f"Write number {n}"),
                        headers={**headers, "Idempotency-Key": key},
                        timeout=10,
                    )
                    if response.status_code < 500:
                        break
                writes[key] = response.status_code

    assert reads == [200] * 30
    assert set(writes.values()) == {201}
    assert Bounty.objects.filter(owner=owner).count() == len(writes) == 10
