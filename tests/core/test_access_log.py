"""bountyexpo.access_log.AccessLogger writes the access log line gunicorn's own logger writes,
for this project's format and for others, building only the atoms the format names."""

from __future__ import annotations

import datetime
import os
import runpy
from types import SimpleNamespace
from unittest import mock

import pytest
from django.conf import settings
from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms

from bountyexpo.access_log import AccessLogger


def gunicorn_conf() -> dict:
    """deploy/gunicorn.conf.py's settings (it sets PROMETHEUS_MULTIPROC_DIR: put back after)."""
    with mock.patch.dict(os.environ):
        return runpy.run_path(str(settings.BASE_DIR / "deploy" / "gunicorn.conf.py"))


OURS = gunicorn_conf()["access_log_format"]
FORMATS = [
    OURS,
    Config().access_log_format,  # gunicorn's default (has %(t)s and %(u)s: its own atoms)
    '%(h)s %(l)s "%(r)s" %(s)s %(b)s %(B)s %(m)s %(U)s %(q)s %(H)s %(f)s %(a)s %(T)s %(D)s %(M)s %(L)s %(p)s',
    "%({x-request-id}o)s %({X-Cache}o)s %({user-agent}i)s %({missing}i)s %({remote_addr}e)s %(nothing)s",
]


def line(logger_class, access_log_format: str, *, sent=6863) -> str:
    config = Config()
    config.set("access_log_format", access_log_format)
    logger = logger_class(config)
    resp = SimpleNamespace(
        status="200 OK",
        sent=sent,
        headers=[
            ("Content-Type", "application/json"),
            ("X-Request-ID", 'id-with-"quote"'),
            ("X-Cache", "hit"),
        ],
    )
    headers = [("USER-AGENT", "locust/2.47"), ("ACCEPT", "*/*"), ("USER-AGENT", "second")]
    req = SimpleNamespace(headers=headers)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/api/bounties?limit=20",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": "/api/bounties",
        "QUERY_STRING": "limit=20",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_USER_AGENT": "locust/2.47",
    }
    took = datetime.timedelta(seconds=1, microseconds=2500)
    return access_log_format % SafeAtoms(logger.atoms(resp, req, environ, took))


@pytest.mark.parametrize("access_log_format", FORMATS)
def test_each_line_is_gunicorns(access_log_format):
    assert line(AccessLogger, access_log_format) == line(Logger, access_log_format)
    assert line(AccessLogger, access_log_format, sent=None) == line(Logger, access_log_format, sent=None)


def test_it_builds_only_the_atoms_its_format_names():
    config = Config()
    config.set("access_log_format", OURS)
    logger = AccessLogger(config)
    resp = SimpleNamespace(status="200 OK", sent=10, headers=[("X-Request-ID", "abc"), ("X-Cache", "hit")])
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "::1"}

    atoms = logger.atoms(resp, SimpleNamespace(headers=[]), environ, datetime.timedelta(microseconds=1500))

    assert atoms == {"h": "::1", "r": "GET / HTTP/1.1", "s": "200", "B": 10, "M": 1, "{x-request-id}o": "abc"}


def test_the_server_uses_it():
    assert gunicorn_conf()["logger_class"] == "bountyexpo.access_log.AccessLogger"
