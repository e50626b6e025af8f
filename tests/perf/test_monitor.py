"""The sampler measures for real: this process stands in for the server, PostgreSQL and Redis
are the ones the tests run against."""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest

from perf.loadtest.monitor import Sampler


def burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(i * i for i in range(10_000))


@pytest.mark.django_db(transaction=True)
def test_sampler_records_every_measure_it_reports():
    sampler = Sampler(server_pid=os.getpid(), generator=psutil.Process(os.getpid()))
    sampler.start()
    # Long enough for several samples even while this thread competes for the GIL.
    burner = threading.Thread(target=burn, args=(5,))
    burner.start()
    burner.join()

    summary = sampler.stop().summary()

    for measure in ("server_cpu_percent", "server_rss_mb", "generator_cpu_percent_of_core",
                    "database_cpu_percent", "redis_cpu_percent", "machine_cpu_percent"):  # fmt: skip
        assert summary[measure] is not None, measure
    assert summary["server_cpu_percent"]["max"] > 10  # the burning thread
    assert summary["machine_cpu_percent"]["max"] > 10
    assert summary["server_rss_mb"]["max"] > 10
    assert summary["max_connections_by_state"]


def test_nothing_sampled_reads_as_not_measured():
    sampler = Sampler(server_pid=None, generator=psutil.Process(os.getpid()))

    summary = sampler.samples.summary()

    assert summary["server_cpu_percent"] is None
    assert summary["database_cpu_percent"] is None
