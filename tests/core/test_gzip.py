from __future__ import annotations

import gzip
import json

import pytest
from django.conf import settings

from tests.factories import funded_user, paid_bounty

pytestmark = pytest.mark.django_db


@pytest.fixture
def big_and_small():
    owner = funded_user("1000.00")
    for _ in range(10):
        paid_bounty(owner, amount="10.00")
    return "/api/bounties?limit=10", "/api/bounties?limit=1"


def test_responses_of_a_kilobyte_or_more_are_gzipped_when_accepted(api_client, big_and_small):
    big, _ = big_and_small
    plain = api_client.get(big).content
    assert len(plain) >= settings.GZIP_MIN_BYTES

    response = api_client.get(big, HTTP_ACCEPT_ENCODING="gzip, deflate, br")

    assert response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    assert len(response.content) < len(plain)
    assert json.loads(gzip.decompress(response.content)) == json.loads(plain)


def test_responses_under_a_kilobyte_are_never_compressed(api_client, big_and_small):
    _, small = big_and_small

    response = api_client.get(small, HTTP_ACCEPT_ENCODING="gzip")

    # Above Django's own 200-byte floor, below ours: proves the 1 KB threshold is in force.
    assert 200 < len(response.content) < settings.GZIP_MIN_BYTES
    assert not response.has_header("Content-Encoding")


def test_nothing_is_compressed_for_a_client_that_does_not_accept_gzip(api_client, big_and_small):
    big, _ = big_and_small

    response = api_client.get(big)

    assert not response.has_header("Content-Encoding")
    assert json.loads(response.content)["results"]
