"""A real browser: headless Chromium signs in to a real gunicorn's admin and loads every perf
page; each must answer 200, draw its charts and log no JavaScript error. Screenshots are kept
under the test's output folder (printed with -s)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from perf.loadtest.stored import stored_run
from perf.monitor.browser import capture, perf_pages
from tests.conftest import gunicorn_server, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

RUNS = Path(settings.BASE_DIR) / "docs" / "loadtests"
PASSWORD = "browser-Staff-pw-2026"


def manage(*args: str, **env: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=subprocess_env(**env),
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def test_every_perf_page_loads_in_chromium_with_its_charts_and_no_console_error(tmp_path):
    before = stored_run(RUNS / "20261127-001705-peak")
    before.save()
    after = stored_run(RUNS / "20261127-022840-peak")
    after.save()
    # The server hashes passwords with its own hasher (the tests' MD5 is this process's only).
    manage("createsuperuser", "--noinput", "--username", "browser-admin", "--email", "b@example.com",
           DJANGO_SUPERUSER_PASSWORD=PASSWORD)  # fmt: skip
    manage("collectstatic", "--noinput", "-v0")  # the server's manifest storage needs it

    with gunicorn_server(tmp_path, PERF_POOL_PUBLISH_SECONDS="1") as server:
        for _ in range(5):
            urllib.request.urlopen(f"{server.url}/api/bounties", timeout=10).read()  # noqa: S310 (our server)
        time.sleep(2.5)  # every worker has published its pool at least twice
        pages = perf_pages(run_id=after.pk, compare=(before.pk, after.pk))
        shots = capture(server.url, username="browser-admin", password=PASSWORD, pages=pages,
                        out_dir=tmp_path / "screenshots")  # fmt: skip

    for shot, plan in zip(shots, pages, strict=True):
        print(f"{shot.name}: {shot.screenshot} ({shot.charts} charts)")
        assert shot.status == 200, (shot.name, shot.status)
        assert shot.errors == [], (shot.name, shot.errors)
        assert shot.charts >= plan.charts, (shot.name, shot.charts)
        assert shot.screenshot.stat().st_size > 10_000  # a rendered page, not a blank one
