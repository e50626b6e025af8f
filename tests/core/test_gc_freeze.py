"""The workers' garbage-collector freeze (bountyexpo/gc_freeze.py, deploy/gunicorn.conf.py):
once loaded and again after GUNICORN_GC_FREEZE_AFTER requests, never garbage, and off with 0."""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.request

import pytest
from django.conf import settings

from bountyexpo.gc_freeze import counter
from tests.conftest import gunicorn_server


def test_the_nth_request_runs_the_freeze_once_whatever_the_threads():
    ran = []
    count = counter(1_000, lambda: ran.append(threading.get_ident()))
    threads = [threading.Thread(target=lambda: [count() for _ in range(250)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(ran) == 1  # 2,000 calls: the 1,000th only


def test_a_freeze_collects_garbage_first_and_keeps_what_lives():
    """In a child process: freezing the test run's own heap would change its collector."""
    script = """
import gc, weakref
from bountyexpo.gc_freeze import freeze

class Node:
    pass

garbage, kept = Node(), Node()
garbage.me = garbage  # a cycle nothing refers to: only the collector frees it
kept.me = kept
dead = weakref.ref(garbage)
del garbage
frozen = freeze()
print(dead() is None, frozen == gc.get_freeze_count() > 0, sum(gc.get_count()) < 50)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=settings.BASE_DIR, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "True", "True"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("after", "expected"), [("3", {"once loaded", "after 3 requests"}), ("0", set())])
def test_each_worker_freezes_once_loaded_and_after_its_first_requests(tmp_path, after, expected):
    with gunicorn_server(tmp_path, GUNICORN_WORKERS="1", GUNICORN_GC_FREEZE_AFTER=after) as server:
        for _ in range(5):
            urllib.request.urlopen(f"{server.url}/healthz", timeout=5).read()  # noqa: S310 (our server)
        log = server.log.read_text()

    found = {when for when in ("once loaded", "after 3 requests") if f"objects {when}" in log}
    assert found == expected
    assert log.count("gc: froze") == len(expected)  # the 4th and 5th requests froze nothing more
