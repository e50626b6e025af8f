"""Shared fixtures. Tests run against the real PostgreSQL and Redis started by `make test`.

PostgreSQL: pytest-django creates and migrates `test_<name>`. Redis: the tests use their own
database number (TEST_REDIS_DB, default 15), emptied after every test, so a developer's
cache in database 0 is never touched.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.test.utils import override_settings
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from accounts.services import token_issue
from tests.factories import UserFactory


def _redis_url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture(scope="session", autouse=True)
def _test_settings():
    test_caches = {
        alias: {
            **config,
            "LOCATION": _redis_url_with_db(config["LOCATION"], int(os.environ.get("TEST_REDIS_DB", 15))),
        }
        for alias, config in settings.CACHES.items()
    }
    # A fast hasher: real PBKDF2 costs ~0.3 s per password and adds nothing to these tests.
    with override_settings(
        CACHES=test_caches,
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    ):
        yield


@pytest.fixture(autouse=True)
def _empty_redis():
    yield
    get_redis_connection("default").flushdb()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


def client_for(user) -> APIClient:
    """An API client authenticated as ``user`` with a fresh bearer token."""
    raw, _ = token_issue(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.token = raw
    return client


@pytest.fixture
def user_client(user) -> APIClient:
    return client_for(user)
