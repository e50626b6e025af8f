"""A live server over the test database, the fuzzing user's data, and the run's bookkeeping.

The server is ``tests.conftest.gunicorn_server``, whose output is kept in a file: a 500 found
by the fuzzer is reported with the server's traceback, found by the request id the response
carries.
"""

from __future__ import annotations

from pathlib import Path

import pytest


class LiveServer:
    def __init__(self, url: str, log: Path):
        self.url = url
        self.log = log

    def traceback_for(self, request_id: str) -> str:
        """The log record of ``request_id`` that carries a traceback, if the server wrote one."""
        lines = self.log.read_text(errors="replace").splitlines()
        for start, line in enumerate(lines[:-1]):
            if f"[{request_id}]" in line and lines[start + 1].startswith("Traceback"):
                end = start + 1
                while end < len(lines) and not lines[end][:4].isdigit():
                    end += 1
                return "\n".join(lines[start:end])
        return ""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After a fuzzing test has sent everything, print the run and fail on what it found.

    The fuzzing test records failures instead of raising them: a stateful live server does
    not replay an example the same way twice (Hypothesis would call that flaky), and every
    failure of the run, not only the first per operation, belongs in the report."""
    result = yield
    run = getattr(item, "fuzz_run", None)
    if run is not None:
        print(run.summary())
        if run.failures:
            raise AssertionError(run.failure_report())
    return result
