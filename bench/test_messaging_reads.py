"""Server-side latency of the conversation list for a user with 50 conversations (and of a
messages page), among 2,000 conversations and 200,000 messages, warm database. In-process
through the full stack; prints a table and the queries per request."""

from __future__ import annotations

import statistics

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench.timing import percentile, timed
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.synthetic import insert_conversations

ROUNDS = 300


@pytest.mark.django_db
def test_conversation_list_for_a_user_with_50_conversations():
    users = UserFactory.create_batch(200)
    me = UserFactory()
    background = [(users[i].pk, users[(i + k) % 200].pk) for i in range(200) for k in range(1, 10)]
    insert_conversations(pairs=background, messages_each=100)
    mine = insert_conversations(pairs=[(me.pk, users[i].pk) for i in range(50)], messages_each=100)
    client = client_for(me)
    client.get("/api/me")

    endpoints = {
        "conversation list (50 of 50)": "/api/conversations?limit=50",
        "conversation list (first 20)": "/api/conversations?limit=20",
        "messages page (limit 20)": f"/api/conversations/{mine[0]}/messages?limit=20",
    }
    print("\n\nuser with 50 conversations among 1,850; 185,000 messages; warm database")
    print(f"{'endpoint':<32}{'queries':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for name, url in endpoints.items():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        queries = len(captured)  # now: the next request resets Django's query log
        samples = timed(client, [url] * ROUNDS, warmup=30)
        figures = [
            percentile(samples, 50),
            percentile(samples, 95),
            percentile(samples, 99),
            statistics.fmean(samples),
        ]
        print(f"{name:<32}{queries:>8}" + "".join(f"{value:>9.2f}" for value in figures))
