"""The cache layer itself (core/response_cache.py): one recompute under a stampede, the
read-compute-store race, and Redis stopped in the middle of a test."""

from __future__ import annotations

import threading
import time
from unittest import mock

import pytest
import redis
from django.core.cache import caches
from prometheus_client import REGISTRY

from core import response_cache
from core.metrics import PLAIN_ALIASES
from core.response_cache import CachedKind, fetch
from tests.conftest import client_for
from tests.factories import UserFactory, paid_bounty

KIND = CachedKind("test-kind", "CACHE_TTL_BOUNTY_LIST", family="test-family")


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def response_cache_errors() -> float:
    """Redis failures of the response cache, over every kind and invalidation family."""
    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "cache_errors"
        for sample in family.samples
        if sample.name == "cache_errors_total" and sample.labels["cache_key_prefix"] != PLAIN_ALIASES
    )


class SlowCompute:
    """Counts its calls; each takes ``seconds`` so concurrent requests overlap."""

    def __init__(self, seconds: float = 0.3):
        self.seconds = seconds
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> dict:
        with self.lock:
            self.calls += 1
            call = self.calls
        time.sleep(self.seconds)
        return {"computed": call}


def concurrently(count: int, target) -> list:
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = target()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_a_stampede_on_an_expired_key_serves_stale_to_all_and_one_refreshes_after(settings):
    settings.CACHE_TTL_BOUNTY_LIST = 1
    first = fetch(KIND, ("hot",), SlowCompute(0))
    time.sleep(1.1)
    compute = SlowCompute(0.5)

    results = concurrently(20, lambda: fetch(KIND, ("hot",), compute))

    assert compute.calls == 0  # nobody waited on a recompute
    assert [result.state for result in results] == ["stale"] * 20
    assert {result.body for result in results} == {first.body}
    refreshers = [result.refresh for result in results if result.refresh is not None]
    assert len(refreshers) == 1  # the lock holder's, run once its response is sent
    refreshers[0]()
    assert compute.calls == 1
    assert fetch(KIND, ("hot",), compute).body == b'{"computed":1}'
    assert fetch(KIND, ("hot",), compute).state == "hit"
    assert compute.calls == 1


def test_a_stampede_on_a_cold_key_waits_for_one_recompute(settings):
    compute = SlowCompute(0.5)

    results = concurrently(20, lambda: fetch(KIND, ("cold",), compute))

    assert compute.calls == 1
    assert sorted(result.state for result in results) == ["hit"] * 19 + ["miss"]
    assert len({result.body for result in results}) == 1


def race_a_recompute_with_a_write(**waiter) -> tuple[response_cache.Lookup, float, SlowCompute]:
    """A cold key: one request takes the lock and computes for 0.5 s; a write moves the counter
    meanwhile (by user 7); then a second request (``waiter``: fetch's reader_id) reads the newer
    counter, finds no entry and the lock taken. Returns its answer, how long it took and the
    computation (counting its calls)."""
    compute = SlowCompute(0.5)
    holder = threading.Thread(target=lambda: fetch(KIND, ("cold",), compute))
    holder.start()
    time.sleep(0.1)  # the holder has the lock and is computing
    response_cache.bump([KIND.scope()], authors=[7])
    started = time.monotonic()
    answer = fetch(KIND, ("cold",), compute, **waiter)
    took = time.monotonic() - started
    holder.join(timeout=10)
    return answer, took, compute


def test_a_waiter_takes_the_entry_computed_under_the_counter_before_a_write_within_the_lag(settings):
    """Steady writes move the counter while the lock holder computes: the waiter is served the
    holder's result as the freshness contract allows (stale, within the lag), at once, instead
    of waiting out CACHE_LOCK_WAIT_SECONDS for an entry of its own counter and then computing."""
    settings.CACHE_PUBLIC_LAG_SECONDS = 5
    settings.CACHE_LOCK_WAIT_SECONDS = 3

    answer, took, compute = race_a_recompute_with_a_write()

    assert (answer.state, answer.body) == ("stale", b'{"computed":1}')
    assert compute.calls == 1
    assert took < 1.5  # the holder's 0.5 s, not the 3 s wait


def test_the_writes_author_never_takes_an_entry_computed_before_their_write(settings):
    settings.CACHE_PUBLIC_LAG_SECONDS = 5
    settings.CACHE_LOCK_WAIT_SECONDS = 1

    answer, _, compute = race_a_recompute_with_a_write(reader_id=7)

    assert (answer.state, answer.body) == ("miss", b'{"computed":2}')  # computed after the write
    assert compute.calls == 2


def test_with_no_lag_a_waiter_never_takes_an_entry_behind_the_counter(settings):
    settings.CACHE_PUBLIC_LAG_SECONDS = 0
    settings.CACHE_LOCK_WAIT_SECONDS = 1

    answer, _, compute = race_a_recompute_with_a_write()

    assert (answer.state, answer.body) == ("miss", b'{"computed":2}')
    assert compute.calls == 2


def test_a_write_committed_while_a_reader_computes_is_not_hidden_by_the_readers_result():
    """The reader took the generation before computing; the write moved it on; the reader's
    (old) result is stored under the old generation and never served."""
    data = {"title": "old"}

    def compute_then_concurrent_write() -> dict:
        snapshot = dict(data)
        data["title"] = "new"
        response_cache.bump([KIND.scope()])  # the write commits while we compute
        return snapshot

    assert fetch(KIND, ("page",), compute_then_concurrent_write).body == b'{"title":"old"}'

    after = fetch(KIND, ("page",), lambda: dict(data))
    assert (after.state, after.body) == ("miss", b'{"title":"new"}')


def test_a_vanished_generation_counter_never_revives_old_entries():
    fetch(KIND, ("page",), lambda: {"n": 1})
    caches["responses"].delete(KIND.scope())  # evicted, or Redis restarted without it

    assert fetch(KIND, ("page",), lambda: {"n": 2}).state == "miss"


def test_invalidating_one_family_leaves_other_entries():
    other = CachedKind("other-kind", "CACHE_TTL_BOUNTY_LIST")
    fetch(KIND, ("page",), lambda: {"n": 1})
    fetch(other, (1,), lambda: {"n": 1})

    response_cache.bump([KIND.scope()])

    assert fetch(KIND, ("page",), lambda: {"n": 2}).state == "miss"
    assert fetch(other, (1,), lambda: {"n": 2}).state == "hit"


@pytest.mark.django_db(transaction=True)
def test_redis_stopped_mid_test_every_cached_endpoint_still_answers_and_errors_are_counted(
    own_redis, settings
):
    settings.CACHE_RETRY_SECONDS = 0  # try Redis on every request, to see it come back
    bounty = paid_bounty(title="Translate a restaurant menu", amount="12.00")
    client = client_for(UserFactory())
    urls = [
        f"/api/bounties/{bounty.pk}",
        "/api/bounties",
        "/api/bounties/search?q=menu",
        f"/api/profiles/{bounty.owner_id}",
        f"/api/profiles/{bounty.owner_id}/stats",
    ]
    for url in urls:
        assert client.get(url)["X-Cache"] == "miss"
        assert client.get(url)["X-Cache"] == "hit"
    errors_before = response_cache_errors()
    ignored_before = metric("cache_errors_total", cache_key_prefix=PLAIN_ALIASES)
    misses_before = metric("cache_misses_total", cache_key_prefix="bounty-detail")

    own_redis.stop()
    responses = [client.get(url) for url in urls]
    client_for(bounty.owner).patch(urls[0], {"title": "Translate a bistro menu"}, format="json")
    after_write = client.get(urls[0])

    assert [response.status_code for response in responses] == [200] * len(urls)
    assert {response["X-Cache"] for response in responses} == {"miss"}
    assert responses[2].json()["results"][0]["id"] == bounty.pk
    assert after_write.json()["title"] == "Translate a bistro menu"
    assert response_cache_errors() > errors_before
    assert (
        metric("cache_errors_total", cache_key_prefix=PLAIN_ALIASES) > ignored_before
    )  # tokens, rate limits
    assert (
        metric("cache_misses_total", cache_key_prefix="bounty-detail") == misses_before + 2
    )  # served from PostgreSQL
    assert "X-RateLimit-Limit" not in responses[0]  # limits fail open: nothing to count with

    own_redis.start()
    assert client.get(urls[0])["X-Cache"] == "miss"
    assert client.get(urls[0])["X-Cache"] == "hit"


@pytest.mark.django_db(transaction=True)
def test_after_a_failure_a_process_skips_redis_for_a_while(own_redis, settings):
    settings.CACHE_RETRY_SECONDS = 60
    bounty = paid_bounty(amount="12.00")
    url = f"/api/bounties/{bounty.pk}"
    own_redis.stop()
    client = client_for(UserFactory())
    client.get(url)
    errors = response_cache_errors()

    for _ in range(5):
        assert client.get(url).status_code == 200

    assert response_cache_errors() == errors  # not even tried


def test_hits_and_misses_are_counted_per_kind():
    before = {
        name: metric(name, cache_key_prefix="test-kind")
        for name in ("cache_hits_total", "cache_misses_total")
    }

    fetch(KIND, ("counted",), lambda: {})
    fetch(KIND, ("counted",), lambda: {})

    assert metric("cache_misses_total", cache_key_prefix="test-kind") == before["cache_misses_total"] + 1
    assert metric("cache_hits_total", cache_key_prefix="test-kind") == before["cache_hits_total"] + 1


@pytest.mark.django_db
def test_metrics_endpoint_shows_the_cache_counters(api_client):
    paid_bounty(amount="5.00")
    api_client.get("/api/bounties")
    api_client.get("/api/bounties")

    body = api_client.get("/metrics").content.decode()

    assert 'cache_hits_total{cache_key_prefix="bounty-list"}' in body
    assert 'cache_misses_total{cache_key_prefix="bounty-list"}' in body
    assert "cache_errors_total" in body


@pytest.mark.django_db
def test_an_invalidation_redis_missed_is_applied_before_the_cache_is_read_again(
    own_redis, settings, committed
):
    """Redis refuses writes for a moment (CLIENT PAUSE WRITE) just as a write commits: the bump
    fails, is kept, and is applied before the next read, so the old entry is never served."""
    settings.CACHE_RETRY_SECONDS = 0
    bounty = paid_bounty(title="Tune the piano in the hall", amount="12.00")
    client = client_for(UserFactory())
    url = f"/api/bounties/{bounty.pk}"
    assert client.get(url)["X-Cache"] == "miss"
    assert client.get(url)["X-Cache"] == "hit"
    raw = redis.Redis(port=own_redis.port)
    errors = response_cache_errors()

    raw.execute_command("CLIENT", "PAUSE", 2500, "WRITE")
    with committed():
        bounty.title = "Tune the grand piano in the hall"
        bounty.save()
    assert response_cache_errors() > errors  # the bump timed out
    time.sleep(2.6)  # writes flow again; the entry with the old title is still in Redis

    response = client.get(url)
    assert (response["X-Cache"], response.json()["title"]) == ("miss", "Tune the grand piano in the hall")


def test_a_failed_get_on_a_plain_alias_is_counted_like_every_other_ignored_failure(own_redis):
    """The plain aliases go through django-prometheus's get(), which catches the failure and
    logs it at ERROR instead of django-redis's "Exception ignored": still counted."""
    own_redis.stop()
    before = metric("cache_errors_total", cache_key_prefix=PLAIN_ALIASES)

    assert caches["default"].get("some-token-key") is None
    caches["default"].get("some-token-key")

    # At least: another Redis call of this process (a leftover connection's reconnect) may fail
    # in the same moment; without the count these two add nothing.
    assert metric("cache_errors_total", cache_key_prefix=PLAIN_ALIASES) >= before + 2


def test_a_write_moves_its_counters_and_marks_its_authors_in_one_round_trip(settings):
    """A write moves several counters (a post three) and marks each for its authors: one
    EVALSHA, not a round trip per counter and another for the marks. An existing counter moves
    by one (a hard bump by HARD_STEP); a missing one starts at the clock; each mark holds its
    counter's new value for the lag (rounded up) plus a second."""
    settings.CACHE_PUBLIC_LAG_SECONDS = 5
    cache = caches[response_cache.CACHE_ALIAS]
    other = CachedKind("test-other", "CACHE_TTL_BOUNTY_DETAIL")
    family, missing = KIND.scope(), other.scope(42)
    cache.set(family, 1_000, timeout=None)
    response_cache.bump(["warm-up"])  # the script's first use also loads it into Redis
    sent = []
    real_send = redis.connection.Connection.send_packed_command

    def counting_send(connection, command, *args, **kwargs):
        sent.append(command)
        return real_send(connection, command, *args, **kwargs)

    started = time.time_ns() // 1000
    with mock.patch.object(redis.connection.Connection, "send_packed_command", counting_send):
        moved = response_cache.bump([family, missing], authors=[7, 8])

    assert moved == {family, missing}
    assert len(sent) == 1
    assert cache.get(family) == 1_001
    assert started <= cache.get(missing) <= time.time_ns() // 1000
    marks = {
        (author, scope): cache.get(response_cache.mark_key(author, scope))
        for author in (7, 8)
        for scope in (family, missing)
    }
    assert marks == {(author, scope): cache.get(scope) for author, scope in marks}
    assert 0 < cache.ttl(response_cache.mark_key(8, missing)) <= 7

    response_cache.bump([family], hard=True)
    assert cache.get(family) == 1_001 + response_cache.HARD_STEP
