"""Each user's conversation list is cached for that user alone (messaging/caching.py): a repeat
read is a hit that costs no query, and every event that changes what a page shows moves exactly
the pages of the users it concerns, at once for each of them (also within the public lag)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.models import Conversation, Message, Participant
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.messaging.test_conversations import CONVERSATIONS, open_conversation, send

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def production_lag(settings):
    """The production freshness contract: other people's writes may lag by 5 s, so these tests
    show that a user's own pages never do."""
    settings.CACHE_PUBLIC_LAG_SECONDS = 5


@pytest.fixture
def people():
    ann, ben, cat = (UserFactory(username=name) for name in ("ann", "ben", "cat"))
    return {"ann": ann, "ben": ben, "cat": cat}


@pytest.fixture
def clients(people):
    return {name: client_for(user) for name, user in people.items()}


@pytest.fixture
def chat(people, clients, committed):
    """ann and ben talk (two messages from ann); ann and cat have a conversation of their own."""
    with committed():
        ann_ben = open_conversation(clients["ann"], people["ben"]).json()["id"]
        ann_cat = open_conversation(clients["ann"], people["cat"]).json()["id"]
        send(clients["ann"], ann_ben, "hello")
        send(clients["ann"], ann_ben, "are you there?")
    return {"ann-ben": ann_ben, "ann-cat": ann_cat}


def page(client, query: str = ""):
    response = client.get(CONVERSATIONS + query)
    assert response.status_code == 200
    return response


def rows(client) -> dict[int, dict]:
    return {row["id"]: row for row in page(client).json()["results"]}


def read_all(clients) -> None:
    """Every user's page is in the cache."""
    for client in clients.values():
        page(client)


def cache_states(clients) -> dict[str, str]:
    return {name: page(client)["X-Cache"] for name, client in clients.items()}


def test_a_repeat_read_is_a_hit_without_a_query_and_each_query_has_its_own_entry(clients, chat):
    first = page(clients["ann"])
    with CaptureQueriesContext(connection) as queries:
        again = page(clients["ann"])
    smaller = page(clients["ann"], "?limit=1")

    assert (first["X-Cache"], again["X-Cache"]) == ("miss", "hit")
    assert again.content == first.content
    assert [q["sql"] for q in queries.captured_queries if "messaging_" in q["sql"]] == []
    assert smaller["X-Cache"] == "miss" and len(smaller.json()["results"]) == 1


def test_a_304_for_an_unchanged_page(clients, chat):
    first = page(clients["ann"])

    again = clients["ann"].get(CONVERSATIONS, HTTP_IF_NONE_MATCH=first["ETag"])

    assert again.status_code == 304
    assert again["Cache-Control"] == "private, no-cache"


def test_users_never_share_a_page(clients, chat):
    ann_first = rows(clients["ann"])
    ben_first = rows(clients["ben"])

    assert ann_first[chat["ann-ben"]]["unread_count"] == 0
    assert ben_first[chat["ann-ben"]]["unread_count"] == 2
    assert set(ann_first) == {chat["ann-ben"], chat["ann-cat"]} and set(ben_first) == {chat["ann-ben"]}


def test_a_message_moves_its_participants_pages_only(clients, chat, committed):
    read_all(clients)
    with committed():
        send(clients["ben"], chat["ann-ben"], "yes!")

    assert cache_states(clients) == {"ann": "miss", "ben": "miss", "cat": "hit"}
    assert rows(clients["ann"])[chat["ann-ben"]]["unread_count"] == 1
    assert rows(clients["ann"])[chat["ann-ben"]]["last_message"]["text"] == "yes!"
    assert rows(clients["ben"])[chat["ann-ben"]]["unread_count"] == 0  # read up to their own


def test_marking_read_moves_the_readers_page_only(clients, chat, committed):
    read_all(clients)
    with committed():
        clients["ben"].post(f"{CONVERSATIONS}/{chat['ann-ben']}/read")

    assert cache_states(clients) == {"ann": "hit", "ben": "miss", "cat": "hit"}
    assert rows(clients["ben"])[chat["ann-ben"]]["unread_count"] == 0


def test_a_new_conversation_shows_in_both_lists(people, clients, chat, committed):
    read_all(clients)
    with committed(), CaptureQueriesContext(connection) as queries:
        created = open_conversation(clients["ben"], people["cat"]).json()["id"]

    assert participant_lookups(queries) == 1  # once its members are in, not before

    assert cache_states(clients) == {"ann": "hit", "ben": "miss", "cat": "miss"}
    assert created in rows(clients["ben"]) and created in rows(clients["cat"])


def test_membership_changes_move_every_members_page(people, clients, chat, committed):
    read_all(clients)
    with committed():
        Participant.objects.create(conversation_id=chat["ann-ben"], user=people["cat"])  # e.g. the admin

    assert cache_states(clients) == {"ann": "miss", "ben": "miss", "cat": "miss"}
    assert len(rows(clients["ann"])[chat["ann-ben"]]["participants"]) == 3

    read_all(clients)
    with committed():
        Participant.objects.filter(conversation_id=chat["ann-ben"], user=people["ben"]).delete()

    assert cache_states(clients) == {"ann": "miss", "ben": "miss", "cat": "miss"}
    assert chat["ann-ben"] not in rows(clients["ben"])
    assert len(rows(clients["cat"])[chat["ann-ben"]]["participants"]) == 2


def test_a_deleted_conversation_leaves_its_members_lists(clients, chat, committed):
    read_all(clients)
    with committed():
        Message.objects.filter(conversation_id=chat["ann-cat"]).delete()
        Conversation.objects.get(pk=chat["ann-cat"]).delete()

    assert cache_states(clients) == {"ann": "miss", "ben": "hit", "cat": "miss"}
    assert chat["ann-cat"] not in rows(clients["ann"]) and rows(clients["cat"]) == {}


def test_a_deleted_message_no_longer_counts_as_unread(clients, chat, committed):
    read_all(clients)
    with committed():
        Message.objects.filter(conversation_id=chat["ann-ben"], text="hello").delete()

    assert cache_states(clients) == {"ann": "miss", "ben": "miss", "cat": "hit"}
    assert rows(clients["ben"])[chat["ann-ben"]]["unread_count"] == 1


def test_a_renamed_partner_shows_in_every_list_that_names_them(people, clients, chat, committed):
    read_all(clients)
    with committed():
        people["ben"].username = "benjamin"
        people["ben"].save()

    assert cache_states(clients) == {"ann": "miss", "ben": "miss", "cat": "hit"}
    names = {p["username"] for p in rows(clients["ann"])[chat["ann-ben"]]["participants"]}
    assert names == {"ann", "benjamin"}


def test_a_new_avatar_through_the_api_shows_to_partners(people, clients, chat, committed):
    read_all(clients)
    with committed():
        changed = clients["cat"].patch(
            f"/api/profiles/{people['cat'].pk}", {"avatar_url": "https://example.com/cat.png"}, format="json"
        )

    assert changed.status_code == 200
    assert cache_states(clients) == {"ann": "miss", "ben": "hit", "cat": "miss"}
    avatars = {p["username"]: p["avatar_url"] for p in rows(clients["ann"])[chat["ann-cat"]]["participants"]}
    assert avatars["cat"] == "https://example.com/cat.png"


def test_a_user_save_that_changes_nothing_shown_keeps_the_pages(people, clients, chat, committed):
    read_all(clients)
    with committed():
        people["ben"].bio = "I build websites."
        people["ben"].save(update_fields=["bio"])
        people["ann"].save(update_fields=["last_login"])  # every admin sign-in

    assert cache_states(clients) == {"ann": "hit", "ben": "hit", "cat": "hit"}


def test_with_the_cache_off_every_read_is_computed(settings, clients, chat):
    settings.CACHE_TTL_CONVERSATIONS = 0

    assert [page(clients["ann"])["X-Cache"] for _ in range(2)] == ["miss", "miss"]


def participant_lookups(queries) -> int:
    """The invalidation's own queries: a conversation's members by user id."""
    lookup = 'SELECT "messaging_participant"."user_id" AS "user_id" FROM'
    return sum(q["sql"].startswith(lookup) for q in queries.captured_queries)


def test_deleting_many_messages_looks_their_conversations_members_up_once(clients, chat, committed):
    with committed():
        for n in range(20):
            send(clients["ann"], chat["ann-cat"], f"note {n}")
    read_all(clients)

    with committed(), CaptureQueriesContext(connection) as queries:
        Message.objects.filter(conversation_id__in=[chat["ann-cat"], chat["ann-ben"]]).delete()

    assert participant_lookups(queries) == 2  # one per conversation, not one per message
    assert cache_states(clients) == {"ann": "miss", "ben": "miss", "cat": "miss"}
    assert rows(clients["cat"])[chat["ann-cat"]]["unread_count"] == 0


def test_deleting_a_conversation_does_not_look_its_members_up_per_message(clients, chat, committed):
    with committed():
        for n in range(20):
            send(clients["ann"], chat["ann-cat"], f"note {n}")
    read_all(clients)

    with committed(), CaptureQueriesContext(connection) as queries:
        Conversation.objects.get(pk=chat["ann-cat"]).delete()

    assert participant_lookups(queries) == 2  # one per member (their own signals), none per message
    assert cache_states(clients) == {"ann": "miss", "ben": "hit", "cat": "miss"}
    assert rows(clients["cat"]) == {}
