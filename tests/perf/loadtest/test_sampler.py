"""The sampler measures for real: this process stands in for the server, PostgreSQL and Redis
are the ones the tests run against."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from perf.loadtest.sampler import Sampler

BURN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


@pytest.mark.django_db(transaction=True)
def test_sampler_records_every_measure_it_reports():
    sampler = Sampler(server_pid=os.getpid(), generator=psutil.Process(os.getpid()))
    sampler.start()
    # A child process burns, as a gunicorn worker under this "master" would: a thread of this
    # process would fight the sampler for the GIL and starve its walks of the process table.
    subprocess.run([sys.executable, "-c", BURN.format(seconds=5)], check=True, timeout=30)

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
