"""Messaging at scale: constant queries per page, index use, and one 1:1 under a race."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging import selectors
from messaging.models import Conversation
from messaging.services import conversation_open
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.synthetic import insert_conversations


def queries_for(client, url: str) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured), response.json()


@pytest.mark.django_db
def test_conversation_list_and_messages_page_cost_the_same_with_1_or_30_conversations(settings):
    settings.CACHE_TTL_CONVERSATIONS = 0  # the page's own queries (the rows are inserted by SQL)
    me = UserFactory()
    partners = UserFactory.create_batch(30)
    insert_conversations(pairs=[(me.pk, partners[0].pk)], messages_each=20)
    client = client_for(me)
    client.get("/api/me")  # caches the token: every measured request authenticates from Redis

    one_list, one_body = queries_for(client, "/api/conversations?limit=50")
    first_id = one_body["results"][0]["id"]
    one_page, _ = queries_for(client, f"/api/conversations/{first_id}/messages?limit=1")

    insert_conversations(pairs=[(me.pk, p.pk) for p in partners[1:]], messages_each=20)
    many_list, many_body = queries_for(client, "/api/conversations?limit=50")
    many_page, page_body = queries_for(client, f"/api/conversations/{first_id}/messages?limit=20")

    assert len(one_body["results"]) == 1
    assert len(many_body["results"]) == 30
    assert all(len(c["participants"]) == 2 and c["unread_count"] == 10 for c in many_body["results"])
    assert len(page_body["results"]) == 20
    assert many_list == one_list == 1  # one statement: the page with its participants (ConversationPage)
    assert many_page == one_page == 2  # the participant check, the page


@pytest.mark.django_db
def test_messages_page_uses_the_conversation_created_index_among_200k_messages():
    users = UserFactory.create_batch(200)
    pairs = [(users[i].pk, users[(i + k) % 200].pk) for i in range(200) for k in range(1, 11)]
    ids = insert_conversations(pairs=pairs, messages_each=100)

    page = selectors.messages_of(conversation_id=ids[1234]).order_by("-created_at")[:21]
    plan = json.loads(page.explain(format="json"))[0]["Plan"]

    nodes, stack = [], [plan]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    message_nodes = [n for n in nodes if n.get("Relation Name") == "messaging_message"]
    assert "Seq Scan" not in {n["Node Type"] for n in message_nodes}
    assert "message_conv_created_idx" in {n.get("Index Name") for n in message_nodes}
    assert len(list(page)) == 21


@pytest.mark.django_db(transaction=True)
def test_concurrent_creation_of_the_same_one_to_one_yields_one_conversation():
    ann, ben = UserFactory(), UserFactory()
    barrier = threading.Barrier(8)

    def create(i: int) -> int:
        barrier.wait()
        try:
            creator, other = (ann, ben) if i % 2 else (ben, ann)
            conversation, _ = conversation_open(created_by=creator.pk, participant_ids={other.pk})
            return conversation.pk
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as executor:
        ids = set(executor.map(create, range(8)))

    assert len(ids) == 1
    assert Conversation.objects.count() == 1
    assert Conversation.objects.get().participants.count() == 2
