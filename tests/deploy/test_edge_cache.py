"""nginx's micro-cache (deploy/nginx.conf, README "Edge caching") in front of a real gunicorn on
the test database: anonymous repeats never reach gunicorn, a signed-in request is never answered
from the shared copy, a write shows to anonymous readers within the documented bound, and with
gunicorn down nginx keeps serving the public reads it holds, for the app's stale-if-error.

nginx comes from Debian's nginx-light, which `make test` installs (as root); without it these
tests fail, they never skip."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from contextlib import ExitStack

import pytest
import requests

from accounts.services import token_issue
from tests.conftest import gunicorn_server
from tests.deploy.test_scale import kill_instance, nginx_in_front
from tests.factories import bounty_data, funded_user, paid_bounty

pytestmark = pytest.mark.django_db(transaction=True)

EDGE_SECONDS, REVALIDATE_SECONDS, IF_ERROR_SECONDS = 2, 2, 4
SERVER_ENV = {
    "TRUSTED_PROXY_COUNT": "1",
    "GUNICORN_WORKERS": "1",
    "CACHE_PUBLIC_LAG_SECONDS": "0",  # the bound below is then the edge's alone
    "EDGE_CACHE_SECONDS": str(EDGE_SECONDS),
    "EDGE_STALE_WHILE_REVALIDATE_SECONDS": str(REVALIDATE_SECONDS),
    "EDGE_STALE_IF_ERROR_SECONDS": str(IF_ERROR_SECONDS),
}


def bearer(user) -> dict[str, str]:
    raw, _ = token_issue(user=user)
    return {"Authorization": f"Bearer {raw}"}


def ids(response) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


def reached_gunicorn(server, probe: str) -> int:
    """How many requests carrying ``probe`` gunicorn's access log shows."""
    return server.log.read_text().count(probe)


@pytest.fixture
def edge(tmp_path):
    """(nginx's URL, the gunicorn behind it)."""
    with ExitStack() as stack:
        server = stack.enter_context(gunicorn_server(tmp_path, **SERVER_ENV))
        url = stack.enter_context(nginx_in_front(tmp_path, [server.url[7:]]))
        yield url, server


def test_anonymous_repeats_are_served_by_nginx_without_reaching_gunicorn(edge):
    url, server = edge
    paid_bounty(title="Design a logo for a bakery", amount="40.00")
    probe = f"probe={uuid.uuid4().hex}"
    page = f"{url}/api/bounties?limit=5&{probe}"

    answers = [requests.get(page, timeout=5) for _ in range(4)]

    assert [answer.headers["X-Edge-Cache"] for answer in answers] == ["MISS", "HIT", "HIT", "HIT"]
    assert len({answer.content for answer in answers}) == 1
    assert reached_gunicorn(server, probe) == 1
    # Each answer carries its own request id; a kept copy replays no rate-limit figures.
    assert len({answer.headers["X-Request-ID"] for answer in answers}) == 4
    assert not any(name.startswith("X-RateLimit") for name in answers[1].headers)
    assert answers[1].headers["Cache-Control"].startswith("public, ")


def test_gzip_and_plain_bodies_are_kept_apart(edge):
    url, server = edge
    for index in range(12):
        paid_bounty(title=f"Write the documentation chapter {index:02d}", amount="5.00")
    probe = f"probe={uuid.uuid4().hex}"
    page = f"{url}/api/bounties?limit=12&{probe}"

    zipped = [
        requests.get(page, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=5) for _ in range(2)
    ]
    plain = [requests.get(page, headers={"Accept-Encoding": "identity"}, timeout=5) for _ in range(2)]

    assert [answer.headers["X-Edge-Cache"] for answer in zipped] == ["MISS", "HIT"]
    assert [answer.headers["X-Edge-Cache"] for answer in plain] == ["MISS", "HIT"]
    assert zipped[1].headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in plain[1].headers
    assert json.loads(gzip.decompress(zipped[1].raw.read())) == plain[1].json()
    assert reached_gunicorn(server, probe) == 2


def test_a_signed_in_request_never_gets_the_shared_copy_nor_leaves_one(edge):
    url, _ = edge
    owner = funded_user("75.00")
    profile = f"{url}/api/profiles/{owner.pk}"
    first_anonymous = [requests.get(profile, timeout=5) for _ in range(2)]

    own = [requests.get(profile, headers=bearer(owner), timeout=5) for _ in range(2)]
    anonymous_after = requests.get(profile, timeout=5)

    assert [answer.headers["X-Edge-Cache"] for answer in first_anonymous] == ["MISS", "HIT"]
    assert [answer.headers["X-Edge-Cache"] for answer in own] == ["BYPASS", "BYPASS"]
    assert all(answer.json()["wallet"]["available"] == "75.00" for answer in own)
    assert own[0].headers["Cache-Control"] == "private, no-cache"
    assert anonymous_after.headers["X-Edge-Cache"] == "HIT"
    assert "wallet" not in anonymous_after.json() and "email" not in anonymous_after.json()


def test_a_write_shows_to_anonymous_readers_within_the_documented_bound(edge):
    url, _ = edge
    author = funded_user("100.00")
    page = f"{url}/api/bounties?limit=5"
    requests.get(page, timeout=5)
    assert requests.get(page, timeout=5).headers["X-Edge-Cache"] == "HIT"

    created = requests.post(f"{url}/api/bounties", json=bounty_data(), headers=bearer(author), timeout=10)
    written = time.monotonic()
    assert created.status_code == 201, created.text
    new_id = created.json()["id"]
    # The author sees it at once (their requests bypass the shared copy).
    assert new_id in [
        row["id"] for row in requests.get(page, headers=bearer(author), timeout=5).json()["results"]
    ]
    while new_id not in [row["id"] for row in requests.get(page, timeout=5).json()["results"]]:
        assert time.monotonic() - written < EDGE_SECONDS + REVALIDATE_SECONDS + 3, (
            "not visible within the bound"
        )
        time.sleep(0.1)

    # README: lag (0 here) + EDGE_CACHE_SECONDS + EDGE_STALE_WHILE_REVALIDATE_SECONDS.
    assert time.monotonic() - written <= EDGE_SECONDS + REVALIDATE_SECONDS + 1


def test_with_gunicorn_down_nginx_serves_the_public_reads_it_holds_for_stale_if_error(edge):
    url, server = edge
    owner = funded_user("100.00")
    bounty = paid_bounty(owner, title="Paint the garden fence blue", amount="15.00")
    detail, page = f"{url}/api/bounties/{bounty.pk}", f"{url}/api/bounties?limit=5"
    before = {address: requests.get(address, timeout=5) for address in (detail, page)}
    kept = time.monotonic()

    kill_instance(server)
    seen = []  # (seconds since the copies were made, status, X-Edge-Cache) of the detail
    while time.monotonic() - kept < EDGE_SECONDS + IF_ERROR_SECONDS + 3:
        answer = requests.get(detail, timeout=10)
        seen.append((time.monotonic() - kept, answer.status_code, answer.headers.get("X-Edge-Cache")))
        if answer.status_code == 200:
            assert answer.content == before[detail].content
        time.sleep(0.25)
    signed_in = requests.get(detail, headers=bearer(owner), timeout=10)
    never_cached = requests.get(f"{url}/api/bounties?limit=7", timeout=10)

    # While the copy is within s-maxage + stale-if-error it is served; well past it, never.
    served = [(at, status, edge) for at, status, edge in seen if at < EDGE_SECONDS + IF_ERROR_SECONDS - 1]
    assert served and all(status == 200 for _, status, _ in served), seen
    assert any(edge == "STALE" for _, _, edge in served), seen
    assert all(status == 502 for at, status, _ in seen if at > EDGE_SECONDS + IF_ERROR_SECONDS + 1.5), seen
    assert signed_in.status_code == 502
    assert never_cached.status_code == 502
