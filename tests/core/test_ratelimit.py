"""Tiered rate limits: each tier refuses the request after its limit with 429, Retry-After and
the X-RateLimit headers; buckets per user or per client IP; probes exempt; Redis down fails
open (or closed when configured); and the counts hold across two gunicorn servers."""

from __future__ import annotations

import itertools
import time
import urllib.error
import urllib.request

import pytest
from django_ratelimit.core import _SIMPLE_KEYS, _make_cache_key, get_usage

from bountyexpo.settings import RATE_LIMIT_DEFAULTS
from core.ratelimit import _rate_of, ip_bucket, rate_limit_key
from tests.conftest import assert_error, client_for, gunicorn_server
from tests.factories import UserFactory, bounty_data, funded_user, paid_bounty

pytestmark = pytest.mark.django_db


def stretched(rate: str) -> str:
    """The same count over a period 60 times longer ("20/m" -> "20/60m"): django-ratelimit's
    windows are fixed, and a window ending in the middle of a test would reset its count."""
    count, period = rate.split("/")
    multiple = int(period[:-1] or 1) * 60
    return f"{count}/{multiple}{period[-1]}"


@pytest.fixture
def limits(settings):
    """The guide's counts per tier (stretched); a test may lower one: ``limits(read="2/m")``."""

    def set_limits(**overrides: str) -> None:
        settings.RATE_LIMITS = {
            tier: stretched(rate) for tier, rate in {**RATE_LIMIT_DEFAULTS, **overrides}.items()
        }

    set_limits()
    return set_limits


def test_the_defaults_are_the_guides_tiers():
    assert RATE_LIMIT_DEFAULTS == {
        "search": "20/m",
        "list": "60/m",
        "read": "100/m",
        "write": "30/m",
        "money": "10/m",
        "auth": "5/15m",
    }


def assert_limited(response, limit: int) -> None:
    error = assert_error(response, 429, "throttled")
    assert "Expected available in" in error["message"]
    assert int(response["Retry-After"]) >= 1
    assert response["X-RateLimit-Limit"] == str(limit)
    assert response["X-RateLimit-Remaining"] == "0"
    assert response["X-RateLimit-Reset"] == response["Retry-After"]


def exhaust(send, limit: int) -> None:
    """Send ``limit`` requests that must pass, with Remaining counting down."""
    for sent in range(1, limit + 1):
        response = send()
        assert response.status_code != 429, f"refused after {sent - 1} of {limit}"
        assert response["X-RateLimit-Limit"] == str(limit)
        assert response["X-RateLimit-Remaining"] == str(limit - sent)
        assert 1 <= int(response["X-RateLimit-Reset"]) <= 60 * 60 * 15


def test_search_tier_allows_20_a_minute(api_client, limits):
    exhaust(lambda: api_client.get("/api/bounties/search?q=logo"), 20)
    assert_limited(api_client.get("/api/bounties/search?q=logo"), 20)
    # other tiers keep their own buckets
    assert api_client.get("/api/bounties").status_code == 200


def test_list_tier_allows_60_a_minute(api_client, limits):
    exhaust(lambda: api_client.get("/api/bounties"), 60)
    assert_limited(api_client.get("/api/bounties?limit=5"), 60)


def test_read_tier_allows_100_a_minute(limits):
    bounty = paid_bounty(amount="5.00")
    client = client_for(UserFactory())
    urls = itertools.cycle(
        [f"/api/bounties/{bounty.pk}", "/api/wallet", f"/api/profiles/{bounty.owner_id}", "/api/me"]
    )
    exhaust(lambda: client.get(next(urls)), 100)
    assert_limited(client.get("/api/wallet"), 100)


def test_write_tier(limits):
    limits(write="3/m")
    owner = funded_user("100.00")
    client = client_for(owner)
    exhaust(lambda: client.post("/api/bounties", bounty_data(amount="1.00"), format="json"), 3)
    response = client.post("/api/bounties", bounty_data(amount="1.00"), format="json")
    assert_limited(response, 3)
    assert owner.bounties.count() == 3  # the refused one did nothing


def test_money_tier_covers_deposits_and_withdrawals_together(limits):
    client = client_for(funded_user("100.00"))

    def deposit(n):
        return client.post("/api/wallet/deposits", {"amount": "1.00", "reference": f"ref-{n}"}, format="json")

    def withdraw():
        return client.post("/api/wallet/withdrawals", {"amount": "10.00"}, format="json")

    assert [deposit(n).status_code for n in range(5)] == [201] * 5
    assert [withdraw().status_code for _ in range(5)] == [201] * 5

    assert_limited(withdraw(), 10)
    assert_limited(deposit(99), 10)


def test_auth_tier_is_5_per_15_minutes_per_ip_for_token_and_register(api_client, limits):
    for _ in range(5):
        response = api_client.post(
            "/api/auth/token", {"username": "nobody", "password": "wrong"}, format="json"
        )
        assert response.status_code == 400
    assert_limited(api_client.post("/api/auth/token", {"username": "a", "password": "b"}, format="json"), 5)
    body = {"username": "newcomer", "email": "n@example.com", "password": "a-Long-enough-passw0rd"}
    assert_limited(api_client.post("/api/auth/register", body, format="json"), 5)
    retry_after = int(api_client.post("/api/auth/token", {}, format="json")["Retry-After"])
    assert retry_after > 60  # a 15-minute window


def test_one_user_is_limited_while_another_is_not(limits):
    limits(read="2/m")
    first, second = client_for(UserFactory()), client_for(UserFactory())
    exhaust(lambda: first.get("/api/wallet"), 2)

    assert_limited(first.get("/api/wallet"), 2)
    assert second.get("/api/wallet").status_code == 200


def test_anonymous_clients_are_limited_per_ip(api_client, limits):
    limits(list="2/m")
    exhaust(lambda: api_client.get("/api/bounties", REMOTE_ADDR="192.0.2.1"), 2)

    assert_limited(api_client.get("/api/bounties", REMOTE_ADDR="192.0.2.1"), 2)
    assert api_client.get("/api/bounties", REMOTE_ADDR="192.0.2.2").status_code == 200


def test_forwarded_for_is_ignored_unless_a_proxy_is_trusted(api_client, limits, settings):
    limits(list="2/m")
    exhaust(lambda: api_client.get("/api/bounties", HTTP_X_FORWARDED_FOR="198.51.100.1"), 2)

    # Without TRUSTED_PROXY_COUNT a client cannot escape its limit by inventing addresses.
    assert_limited(api_client.get("/api/bounties", HTTP_X_FORWARDED_FOR="198.51.100.2"), 2)


def test_behind_one_trusted_proxy_the_address_it_saw_is_the_client(api_client, limits, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    limits(list="2/m")

    # The proxy appends the address it saw; anything further left was written by the client.
    def send(spoof):
        return api_client.get("/api/bounties", HTTP_X_FORWARDED_FOR=f"{spoof}, 203.0.113.7")

    exhaust(lambda: send("1.1.1.1"), 2)

    assert_limited(send("2.2.2.2"), 2)
    assert api_client.get("/api/bounties", HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 200
    assert api_client.get("/api/bounties", HTTP_X_FORWARDED_FOR="not-an-ip").status_code == 200


@pytest.mark.parametrize("url", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_metrics_are_exempt(api_client, limits, url):
    limits(**dict.fromkeys(RATE_LIMIT_DEFAULTS, "1/m"))
    for _ in range(5):
        response = api_client.get(url)
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response


@pytest.mark.django_db(transaction=True)
def test_redis_down_fails_open_by_default_and_closed_when_configured(own_redis, api_client, limits, settings):
    limits(list="2/m")
    own_redis.stop()

    for _ in range(5):
        response = api_client.get("/api/bounties")
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response

    settings.RATELIMIT_FAIL_OPEN = False
    assert_error(api_client.get("/api/bounties"), 429, "throttled")


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (our http URL)
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


@pytest.mark.django_db(transaction=True)
def test_limits_hold_across_workers_and_two_server_processes(tmp_path):
    env = {"RATELIMIT_LIST": "6/h", "GUNICORN_ACCESSLOG": "/dev/null"}
    with gunicorn_server(tmp_path, **env) as first, gunicorn_server(tmp_path, **env) as second:
        answers = [_get(f"{server.url}/api/bounties") for server in (first, second) * 3]
        refused = [_get(f"{server.url}/api/bounties") for server in (first, second)]

    assert [status for status, _ in answers] == [200] * 6
    assert [int(headers["X-RateLimit-Remaining"]) for _, headers in answers] == [5, 4, 3, 2, 1, 0]
    assert [status for status, _ in refused] == [429, 429]
    assert all(int(headers["Retry-After"]) >= 1 for _, headers in refused)


def test_retry_after_is_when_the_count_starts_again(settings):
    """A short window: waiting exactly Retry-After (= X-RateLimit-Reset) seconds is enough."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "read": "1/2s"}
    client = client_for(UserFactory())
    # Start at the beginning of a window: two requests at an arbitrary moment may straddle a
    # window's end (a busy CI machine did), and the second then counts in the next window.
    time.sleep(int(client.get("/api/wallet")["X-RateLimit-Reset"]))
    for _ in range(3):
        assert client.get("/api/wallet").status_code == 200
        refused = client.get("/api/wallet")
        assert_limited(refused, 1)
        time.sleep(int(refused["Retry-After"]))


@pytest.mark.parametrize(
    "forwarded",
    [
        "10.1.2.3",
        "0.0.0.0",  # noqa: S104 (an address a client may send, not a bind)
        "255.255.255.255",
        "010.1.2.3",  # not canonical: ipaddress decides
        "10.1.2",  # not an address: REMOTE_ADDR
        "256.1.1.1",
        "2001:db8::1",
        "::ffff:10.0.0.1",
    ],
)
def test_the_hit_paths_bucket_is_django_ratelimits_for_any_address(forwarded, rf, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    request = rf.get("/api/bounties", HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR="192.0.2.7")

    assert ip_bucket(request) == _SIMPLE_KEYS["ip"](request)
    for tier, rate in (("list", "60/m"), ("auth", "5/15m"), ("read", "100/1h")):
        _limit, _period, head = _rate_of(tier, rate)
        expected = _make_cache_key(f"tier-{tier}", 1764300000, rate, ip_bucket(request), get_usage.ALL)
        assert rate_limit_key(head, ip_bucket(request), 1764300000) == expected
