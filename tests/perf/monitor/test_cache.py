"""The cache page: Redis's INFO, keys per prefix counted with SCAN, hit rates per cached kind
from the app's counters (summed over gunicorn workers), and invalidation of a family or kind."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.core.cache import caches
from django.test import Client
from django_redis import get_redis_connection

from bounties.caching import BOUNTY_LIST
from core import response_cache
from perf.monitor import cache
from perf.monitor.pages import Level
from tests.conftest import gunicorn_server
from tests.factories import UserFactory, paid_bounty

URL = "/admin/perf/cachestats/"


@pytest.fixture
def staff(db):
    return UserFactory(username="operator", is_staff=True)


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def page(client: Client):
    response = client.get(URL)
    assert response.status_code == 200, response.content[:2000]
    return response


def kind_rows(response) -> dict[str, dict]:
    return {row["name"]: row for row in response.context["kind_rows"]}


def key_counts(response) -> dict[str, int]:
    return {row["prefix"]: row["count"] for row in response.context["key_rows"]}


def counts(name: str) -> tuple[float, float, float]:
    kind = cache.read_counters().kinds.get(name, cache.KindStats(name))
    return kind.hits, kind.stale, kind.misses


def x_cache_of(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (our local http URL)
        return response.headers["X-Cache"]


def x_cache(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.content
    return response["X-Cache"]


@pytest.mark.django_db
def test_the_cache_page_is_refused_to_non_staff_and_sends_anonymous_users_to_login():
    member = Client()
    member.force_login(UserFactory(is_staff=False))
    anonymous = Client().get(URL)

    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    assert member.get(URL).status_code == 403
    assert member.post(URL + "invalidate/family-bounties/").status_code == 403
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_the_page_shows_redis_info_and_the_lookups_of_each_kind(staff_client, api_client):
    bounty = paid_bounty(title="Design a logo for a bakery", amount="40.00")
    list_before, detail_before = counts("bounty-list"), counts("bounty-detail")

    assert [x_cache(api_client, "/api/bounties?limit=5") for _ in range(3)] == ["miss", "hit", "hit"]
    assert [x_cache(api_client, f"/api/bounties/{bounty.pk}") for _ in range(2)] == ["miss", "hit"]
    response = page(staff_client)

    rows = kind_rows(response)
    assert (rows["bounty-list"]["hits"], rows["bounty-list"]["misses"]) == (
        list_before[0] + 2,
        list_before[2] + 1,
    )
    assert (rows["bounty-detail"]["hits"], rows["bounty-detail"]["misses"]) == (
        detail_before[0] + 1,
        detail_before[2] + 1,
    )
    kinds = {"bounty-list", "bounty-search", "bounty-detail", "user-stats", "profile", "conversation-list"}
    assert kinds <= set(rows)
    info = response.context["info"]
    server = get_redis_connection("default").info()
    assert info.version == server["redis_version"] and info.used_memory > 0
    assert info.max_memory == server["maxmemory"] and info.memory_level in set(Level)
    html = response.content.decode()
    assert f"Redis {server['redis_version']}" in html and 'data-kind="bounty-list"' in html
    assert response.context["redis_error"] is None


@pytest.mark.parametrize(
    ("hits", "stale", "misses", "served", "level"),
    [(80, 0, 20, 80.0, Level.OK), (60, 5, 35, 65.0, Level.WARNING), (40, 0, 60, 40.0, Level.CRITICAL)],
)
def test_answers_from_the_cache_count_fresh_and_stale_and_are_coloured_by_the_thresholds(
    hits, stale, misses, served, level
):
    kind = cache.KindStats("bounty-list", hits=hits, stale=stale, misses=misses)

    assert kind.served_pct == pytest.approx(served) and kind.level == level
    assert kind.hit_pct + kind.stale_pct + kind.miss_pct == pytest.approx(100)
    assert cache.KindStats("unused").level == Level.UNKNOWN


@pytest.mark.django_db
def test_invalidating_the_bounties_family_bumps_its_generation_and_the_next_read_misses(
    staff, staff_client, api_client, settings
):
    settings.CACHE_PUBLIC_LAG_SECONDS = 60  # an operator's invalidation does not wait for the lag
    paid_bounty(title="Translate a restaurant menu", amount="12.00")
    url, action = "/api/bounties?limit=5", URL + "invalidate/family-bounties/"
    assert [x_cache(api_client, url), x_cache(api_client, url)] == ["miss", "hit"]
    scope = BOUNTY_LIST.scope()
    before = cache.generation(scope)

    confirmation = staff_client.get(action)
    assert confirmation.status_code == 200 and 'value="Yes, I' in confirmation.content.decode()
    assert cache.generation(scope) == before and x_cache(api_client, url) == "hit"  # asking did nothing
    done = staff_client.post(action)

    assert done.status_code == 302 and done["Location"] == URL
    assert cache.generation(scope) == before + response_cache.HARD_STEP
    assert x_cache(api_client, url) == "miss"  # the old entry is no longer served
    assert x_cache(api_client, url) == "hit"
    entry = LogEntry.objects.get()
    assert (entry.user, entry.object_id, entry.object_repr) == (
        staff,
        "family-bounties",
        "cache: bounties family",
    )
    assert f"generation {before} → {before + response_cache.HARD_STEP}" in entry.change_message
    shown = page(staff_client)
    assert "generation" in str(next(iter(shown.context["messages"])))
    families = {family["target"].slug: family for family in shown.context["families"]}
    assert families["family-bounties"]["generation"] == before + response_cache.HARD_STEP


@pytest.mark.django_db
def test_invalidating_a_kind_cached_per_object_bumps_every_one_of_its_counters(
    staff_client, api_client, settings
):
    settings.CACHE_PUBLIC_LAG_SECONDS = 60
    bounties = [paid_bounty(amount="10.00") for _ in range(2)]
    urls = [f"/api/bounties/{bounty.pk}" for bounty in bounties]
    for url in urls:
        assert [x_cache(api_client, url), x_cache(api_client, url)] == ["miss", "hit"]

    staff_client.post(URL + "invalidate/kind-bounty-detail/")

    assert [x_cache(api_client, url) for url in urls] == ["miss", "miss"]
    assert "bumped 2 per-object generation counter(s)" in LogEntry.objects.get().change_message
    assert x_cache(api_client, "/api/bounties?limit=5") == "miss"  # first read ever: unaffected
    assert staff_client.get(URL + "invalidate/no-such-family/").status_code == 404


@pytest.mark.django_db
def test_keys_per_prefix_match_what_was_cached(staff_client, api_client):
    bounties = [paid_bounty(amount="10.00") for _ in range(3)]
    for bounty in bounties:
        api_client.get(f"/api/bounties/{bounty.pk}")
    for url in ("/api/bounties?limit=5", "/api/bounties?limit=7"):
        api_client.get(url)

    response = page(staff_client)
    found = key_counts(response)
    keys = response.context["keys"]

    assert found["resp:bounty-detail"] == 3 and found["gen:bounty-detail"] == 3
    assert found["resp:bounty-list"] == 2 and found["gen:bounties"] == 1  # the family's one counter
    assert not keys.partial and keys.walked == keys.total == sum(found.values())
    assert get_redis_connection("default").dbsize() == keys.total
    assert f"All {keys.total} keys counted" in response.content.decode()


@pytest.mark.django_db
def test_a_keyspace_larger_than_the_scan_cap_is_counted_in_part_and_says_so(staff_client, monkeypatch):
    caches["default"].set_many({f"filler:{i}": i for i in range(30)})
    monkeypatch.setattr(cache, "SCAN_BATCH", 5)
    monkeypatch.setattr(cache, "SCAN_MAX_KEYS", 10)

    response = page(staff_client)

    keys = response.context["keys"]
    assert keys.partial and 10 <= keys.walked < 30 and keys.total == 30
    assert "Partial count: stopped after the first 10 keys (SCAN_MAX_KEYS)" in response.content.decode()
    filler = next(row for row in response.context["key_rows"] if row["prefix"] == "filler")
    assert filler["count"] == keys.walked and filler["estimate"] == 30  # every key is a filler


def test_keys_are_grouped_by_their_family_not_by_their_identity():
    namespace = "bx:1:"
    assert cache.key_prefix("bx:1:resp:v1:bounty-list:ab12cd34:0f0f", namespace) == "resp:bounty-list"
    assert cache.key_prefix("bx:1:gen:v1:bounty-detail:42", namespace) == "gen:bounty-detail"
    assert (
        cache.key_prefix("bx:1:resp:v1:bounty-list:ab12cd34:0f0f:lock", namespace)
        == "resp:bounty-list (lock)"
    )
    assert cache.key_prefix("bx:1:auth-token:v1:9e8d7c", namespace) == "auth-token"
    assert cache.key_prefix("bx:1:rl:5f3a", namespace) == "rl"
    assert cache.key_prefix("celery-task-meta-1", namespace) == "celery-task-meta-1 (outside bx:1:)"


def _count_in_own_process(directory, hits: int, misses: int) -> None:
    """Count cache lookups in a separate process writing to the multiprocess directory, as a
    gunicorn worker does."""
    code = (
        "from core import metrics; "
        f"metrics.CACHE_HITS.labels('bounty-list').inc({hits}); "
        f"metrics.CACHE_MISSES.labels('bounty-list').inc({misses})"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(settings.BASE_DIR)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


@pytest.mark.django_db
def test_hit_rates_add_up_the_counters_of_every_worker_process(tmp_path, staff_client, monkeypatch):
    _count_in_own_process(tmp_path, hits=30, misses=5)
    _count_in_own_process(tmp_path, hits=6, misses=9)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    row = kind_rows(page(staff_client))["bounty-list"]

    assert len(list(tmp_path.glob("counter_*.db"))) == 2
    assert (row["hits"], row["misses"], row["lookups"]) == (36, 14, 50)
    assert (row["served_pct"], row["level"]) == ("72 %", Level.OK)


@pytest.mark.django_db(transaction=True)
def test_a_gunicorn_servers_lookups_show_on_the_page(tmp_path, staff_client, monkeypatch):
    with gunicorn_server(tmp_path) as server:
        answers = [x_cache_of(f"{server.url}/api/bounties?limit=3") for _ in range(12)]
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(server.log.parent / "metrics"))

    row = kind_rows(page(staff_client))["bounty-list"]

    assert answers == ["miss"] + ["hit"] * 11
    assert (row["hits"], row["misses"]) == (11, 1)  # whichever worker answered each
    assert row["served_pct"] == "91.7 %"


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_the_page_renders_says_so_and_invalidates_nothing(own_redis, staff_client):
    own_redis.stop()

    response = page(staff_client)
    refused = staff_client.post(URL + "invalidate/family-bounties/", follow=True)

    html = response.content.decode()
    assert "Redis is unreachable" in html and 'class="perf-section-error perf-cache-redis-down"' in html
    assert response.context["info"] is None and response.context["keys"] is None
    assert "bounty-list" in kind_rows(response)  # the app's counters do not live in Redis
    assert "Redis is unreachable, nothing invalidated" in refused.content.decode()
    assert not LogEntry.objects.exists()
    summary = cache.cache_summary()
    assert summary["redis_ok"] is False and summary["memory_level"] == Level.UNKNOWN
    assert summary["redis_error"].startswith("Redis is unreachable")


@pytest.mark.django_db
def test_the_summary_gives_the_overview_its_figures():
    summary = cache.cache_summary()
    info = get_redis_connection("default").info()

    assert set(summary) == {
        "hit_rate_pct", "level", "lookups", "redis_ok", "redis_error", "used_memory", "max_memory",
        "memory_pct", "memory_level", "evictions", "version", "uptime_seconds",
    }  # fmt: skip
    assert summary["redis_ok"] and summary["redis_error"] is None
    assert summary["version"] == info["redis_version"] and summary["evictions"] == info["evicted_keys"]
    assert summary["max_memory"] == (info["maxmemory"] or info["total_system_memory"])
    assert 0 < summary["memory_pct"] < 100 and summary["memory_level"] == Level.OK
