"""Locust users for `manage.py loadtest`. Runs only inside the locust process (it monkey-patches
with gevent): never imported by Django, and configured by environment variables:

LOADTEST_PROFILE  the profile as JSON (stages, think time, user mix; perf/loadtest/profiles.py)
LOADTEST_TOKENS   a file of "user_id token" lines (seed_data writes one); signed-in users are
                  spread over these tokens, so per-user limits behave as in production
LOADTEST_CHURN_FILE  (churn) where to write, at exit, every second's reads (exact percentiles)
                  and writes (perf/loadtest/churn.py)

Request names are route patterns ("GET /api/bounties/{id}"), never raw URLs. Each simulated
user is its own client: its own X-Forwarded-For address (counted per client by a server started
with TRUSTED_PROXY_COUNT=1), and, like a well-behaved app, it leaves an endpoint alone once the
server answers X-RateLimit-Remaining: 0, until X-RateLimit-Reset.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from pathlib import Path

import gevent
from locust import FastHttpUser, LoadTestShape, between, constant, constant_throughput, events, task

# The project root is on PYTHONPATH (runner.py); this module imports neither Django nor gevent.
from perf.loadtest.churn import CATEGORIES, WRITE_NAME, ReadSeconds

PROFILE = json.loads(os.environ["LOADTEST_PROFILE"])
THINK_MIN, THINK_MAX = PROFILE["think_time"]
WAIT = constant(0) if THINK_MAX == 0 else between(THINK_MIN, THINK_MAX)
SEARCH_TERMS = ["web", "mobile", "design", "data", "test"]
LOCATIONS = ["Lyon", "Lagos", "Toronto", "Berlin", "Austin"]
SEARCH = "GET /api/bounties/search"
LIST = "GET /api/bounties"
DETAIL = "GET /api/bounties/{id}"
# Users beside the stages' users (churn's writers), and their total pace.
FIXED_USERS = PROFILE.get("fixed_users", {})
FIXED_COUNT = sum(FIXED_USERS.values())


def _tokens() -> list[str]:
    path = os.environ.get("LOADTEST_TOKENS", "")
    if not path or not os.path.exists(path):
        return []
    with open(path) as handle:
        return [line.split()[1] for line in handle if line.strip()]


TOKENS = _tokens()
_next_token = itertools.count()


class StagesShape(LoadTestShape):
    """The profile's stages, then stop. Fixed-count users (churn's writers) come on top of each
    stage's users; locust starts them first, so the spawn rate grows with them to keep the
    stage's ramp-up as long as its own users need."""

    def tick(self):
        elapsed = self.get_run_time()
        for stage in PROFILE["stages"]:
            if elapsed < stage["seconds"]:
                users = stage["users"] + FIXED_COUNT
                return users, stage["spawn_rate"] * users / stage["users"]
            elapsed -= stage["seconds"]
        return None


_next_client = itertools.count(1)


class ApiUser(FastHttpUser):
    abstract = True
    wait_time = WAIT

    def __init__(self, environment):
        # Each simulated user is its own client: a distinct address in X-Forwarded-For, which
        # the server uses for per-IP rate limits when started with TRUSTED_PROXY_COUNT=1.
        n = next(_next_client)
        self.default_headers = {"X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}
        self.paused_until: dict[str, float] = {}
        super().__init__(environment)

    def allowed(self, name: str) -> bool:
        return time.monotonic() >= self.paused_until.get(name, 0.0)

    def respect_limits(self, name: str, response) -> None:
        """As a well-behaved app does: when the server says nothing is left in this window
        (X-RateLimit-Remaining: 0), leave that endpoint alone until X-RateLimit-Reset."""
        headers = response.headers or {}  # None when the connection was refused
        if headers.get("X-RateLimit-Remaining") == "0":
            reset = float(headers.get("X-RateLimit-Reset") or 60)
            self.paused_until[name] = time.monotonic() + reset

    def bounty_ids(self, url: str, name: str, **params) -> list[int]:
        if not self.allowed(name):
            return []
        with self.client.get(url, name=name, catch_response=True, params=params) as response:
            self.respect_limits(name, response)
            if response.status_code != 200:
                response.failure(f"{response.status_code}")
                return []
            body = response.json()
            self.next_page = body.get("next")
            return [row["id"] for row in body["results"]]

    def list_page(self, **params) -> list[int]:
        return self.bounty_ids("/api/bounties", LIST, limit=20, **params)

    def search(self, **params) -> list[int]:
        return self.bounty_ids(
            "/api/bounties/search",
            SEARCH,
            q=random.choice(SEARCH_TERMS),
            limit=20,
            **params,
        )

    def detail(self, bounty_id: int) -> None:
        if self.allowed(DETAIL):
            self.respect_limits(DETAIL, self.client.get(f"/api/bounties/{bounty_id}", name=DETAIL))


class BaselineUser(ApiUser):
    """SPEC baseline: list open bounties (limit 20), sleep 1 s, detail of the first, sleep 2 s."""

    wait_time = constant(0)

    @task
    def browse(self):
        ids = self.list_page()
        self.wait_seconds(1)
        if ids:
            self.detail(ids[0])
        self.wait_seconds(2)

    def wait_seconds(self, seconds: float) -> None:
        if THINK_MAX:  # a --think-time 0 run measures throughput: no sleeps at all
            gevent.sleep(seconds)


class FlowUser(ApiUser):
    """SPEC bounty flow: list, detail, full-text search."""

    @task
    def flow(self):
        ids = self.list_page()
        self.wait()
        if ids:
            self.detail(random.choice(ids))
        self.wait()
        self.search()


class BrowserUser(ApiUser):
    """Anonymous browsing: lists (and their second page), details, searches."""

    ids: list[int] = []

    @task(5)
    def browse(self):
        self.ids = self.list_page() or self.ids

    @task(1)
    def second_page(self):
        """The next page of the last list or search (each named, and limited, as its own kind)."""
        if getattr(self, "next_page", None):
            self.bounty_ids(self.next_page, SEARCH if "/search" in self.next_page else LIST)

    @task(4)
    def view(self):
        if self.ids:
            self.detail(random.choice(self.ids))

    @task(3)
    def find(self):
        if not self.allowed(SEARCH):  # out of searches for this minute: browse instead
            self.browse()
            return
        self.ids = self.search() or self.ids


class BrowserPagesUser(ApiUser):
    """SPEC mixed, browsers: list page 1, then page 2."""

    @task
    def pages(self):
        self.list_page()
        if getattr(self, "next_page", None):
            self.wait()
            self.bounty_ids(self.next_page, LIST)


class SearcherUser(ApiUser):
    """SPEC mixed, searchers: a search, then the same kind with a location filter."""

    @task
    def searches(self):
        self.search()
        self.wait()
        self.search(location=random.choice(LOCATIONS))


class ViewerUser(ApiUser):
    """SPEC mixed, viewers: a short list, then up to three details."""

    @task
    def views(self):
        ids = self.list_page()[:5]
        for bounty_id in random.sample(ids, min(3, len(ids))):
            self.wait()
            self.detail(bounty_id)


class MemberUser(ApiUser):
    """A signed-in user (one seeded token each): wallet, conversations and applications, and
    the writes: applying, messaging, depositing (about a third of this user's requests)."""

    def on_start(self):
        if not TOKENS:
            raise RuntimeError("no tokens: run `manage.py seed_data` or pass --tokens-file")
        token = TOKENS[next(_next_token) % len(TOKENS)]
        self.auth = {"Authorization": f"Bearer {token}"}
        self.conversations: list[int] = []
        self.open_ids: list[int] = []

    @task(3)
    def wallet(self):
        self.client.get("/api/wallet", name="GET /api/wallet", headers=self.auth)

    @task(1)
    def transactions(self):
        self.client.get(
            "/api/wallet/transactions?limit=20", name="GET /api/wallet/transactions", headers=self.auth
        )

    @task(2)
    def conversations_list(self):
        with self.client.get(
            "/api/conversations?limit=20",
            name="GET /api/conversations",
            headers=self.auth,
            catch_response=True,
        ) as r:
            if r.status_code == 200:
                self.conversations = [c["id"] for c in r.json()["results"]]

    @task(1)
    def my_requests(self):
        self.client.get("/api/requests?limit=20", name="GET /api/requests", headers=self.auth)

    @task(1)
    def messages(self):
        if self.conversations:
            conversation = random.choice(self.conversations)
            self.client.get(
                f"/api/conversations/{conversation}/messages?limit=20",
                name="GET /api/conversations/{id}/messages",
                headers=self.auth,
            )

    @task(2)
    def apply(self):
        self.open_ids = self.list_page() or self.open_ids
        if not self.open_ids:
            return
        bounty_id = random.choice(self.open_ids)
        body = {"message": "Load test application: I can do this work this week, details on request."}
        with self.client.post(
            f"/api/bounties/{bounty_id}/requests",
            json=body,
            name="POST /api/bounties/{id}/requests",
            headers=self.auth,
            catch_response=True,
        ) as response:
            # Refusals by the rules (already applied, 10 pending, own bounty) are correct answers.
            if response.status_code in (201, 403, 409):
                response.success()

    @task(1)
    def message(self):
        if self.conversations:
            conversation = random.choice(self.conversations)
            self.client.post(
                f"/api/conversations/{conversation}/messages",
                json={"text": "Quick update from the load test."},
                name="POST /api/conversations/{id}/messages",
                headers=self.auth,
            )

    @task(1)
    def deposit(self):
        name = "POST /api/wallet/deposits"
        if not self.allowed(name):
            return
        body = {"amount": "25.00", "reference": f"lt-{uuid.uuid4().hex}"}
        self.respect_limits(
            name, self.client.post("/api/wallet/deposits", json=body, name=name, headers=self.auth)
        )


class ChurnReader(ApiUser):
    """churn's readers: list pages (half of them filtered by a category), details of bounties
    they saw, full-text searches."""

    ids: list[int] = []

    def wait_time(self) -> float:
        """The profile's think time (none by default), but when the server has paused every kind
        this user reads (rate limits on), sleep until the first pause ends instead of spinning."""
        resumes = min(self.paused_until.get(name, 0.0) for name in (LIST, DETAIL, SEARCH))
        return max(WAIT(self), resumes - time.monotonic())

    @task(5)
    def browse(self):
        filters = {"category": random.choice(CATEGORIES)} if random.random() < 0.5 else {}
        self.ids = self.list_page(**filters) or self.ids

    @task(4)
    def view(self):
        if self.ids and self.allowed(DETAIL):
            self.detail(random.choice(self.ids))
        else:
            self.browse()

    @task(3)
    def find(self):
        if self.allowed(SEARCH):
            self.ids = self.search() or self.ids
        else:
            self.browse()


class ChurnWriter(ApiUser):
    """churn's writers: signed-in users posting paid bounties at a fixed pace (the profile's
    writes_per_second shared by its fixed count of writers). Each post goes out under the next
    token of the file, so the seeded users share the writes: no user's write limit is reached
    and no wallet runs dry (a post escrows 5.00; seed_data leaves every user 20.00 or more)."""

    def on_start(self):
        if not TOKENS:
            raise RuntimeError("no tokens: run `manage.py seed_data` or pass --tokens-file")
        # Writers start together: a random phase within one pace spreads their posts over each
        # second instead of bunching them into the same one.
        gevent.sleep(random.uniform(0, FIXED_COUNT / PROFILE["writes_per_second"]))

    @task
    def post(self):
        category = random.choice(CATEGORIES)
        body = {
            "title": f"{category.title()} work posted by the churn run {uuid.uuid4().hex[:8]}",
            "description": "Posted by the churn load test to measure caching while bounties are posted.",
            "amount": "5.00",
            "category": category,
        }
        token = TOKENS[next(_next_token) % len(TOKENS)]
        # Any answer but 201 is a failed write (a 429 with limits on included): recorded, not retried.
        self.client.post(
            "/api/bounties", json=body, name=WRITE_NAME, headers={"Authorization": f"Bearer {token}"}
        )


for _name, _weight in PROFILE["users_mix"].items():
    globals()[_name].weight = _weight
for _name, _count in FIXED_USERS.items():
    globals()[_name].fixed_count = _count
    globals()[_name].wait_time = constant_throughput(PROFILE["writes_per_second"] / FIXED_COUNT)

if os.environ.get("LOADTEST_CHURN_FILE"):
    _seconds = ReadSeconds()

    @events.request.add_listener
    def _record_second(request_type, name, response_time, exception, **kwargs):
        _seconds.record(
            method=request_type, name=name, response_time=response_time, failed=exception is not None,
            at=time.time(),
        )  # fmt: skip

    @events.spawning_complete.add_listener
    def _record_spawned(user_count, **kwargs):
        if _seconds.spawned_at is None:
            _seconds.spawned_at = time.time()

    @events.quitting.add_listener
    def _write_seconds(environment, **kwargs):
        Path(os.environ["LOADTEST_CHURN_FILE"]).write_text(json.dumps(_seconds.as_json()))
