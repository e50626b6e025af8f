from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from bounties.services import request_accept
from messaging import selectors
from messaging.models import Conversation, Message, Participant
from messaging.serializers import ConversationSerializer
from messaging.views import ActivityPagination
from tests.conftest import assert_error, client_for, reads_after_insert
from tests.factories import UserFactory, application, paid_bounty

pytestmark = pytest.mark.django_db

CONVERSATIONS = "/api/conversations"


def open_conversation(client, *others, **extra):
    return client.post(CONVERSATIONS, {"participant_ids": [u.pk for u in others], **extra}, format="json")


def send(client, conversation_id: int, text: str):
    return client.post(f"{CONVERSATIONS}/{conversation_id}/messages", {"text": text}, format="json")


@pytest.fixture
def ann():
    return UserFactory(username="ann")


@pytest.fixture
def ben():
    return UserFactory(username="ben")


def test_opening_a_one_to_one_conversation(ann, ben):
    response = open_conversation(client_for(ann), ben)

    assert response.status_code == 201
    body = response.json()
    assert body["is_group"] is False
    assert sorted(p["username"] for p in body["participants"]) == ["ann", "ben"]
    assert set(body["participants"][0]) == {"id", "username", "avatar_url"}
    assert (body["last_message"], body["unread_count"]) == (None, 0)


def test_the_same_pair_reuses_its_conversation_from_either_side(ann, ben):
    first = open_conversation(client_for(ann), ben)
    again = open_conversation(client_for(ben), ann)

    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Conversation.objects.count() == 1


def test_a_bounty_gets_its_own_conversation_between_the_same_pair(ann, ben):
    bounty = paid_bounty()
    general = open_conversation(client_for(ann), ben).json()["id"]

    about_bounty = open_conversation(client_for(ann), ben, bounty=bounty.pk)
    again = open_conversation(client_for(ben), ann, bounty=bounty.pk)

    assert about_bounty.status_code == 201
    assert about_bounty.json()["bounty_id"] == bounty.pk
    assert about_bounty.json()["id"] != general
    assert (again.status_code, again.json()["id"]) == (200, about_bounty.json()["id"])


def test_three_or_more_people_make_a_named_group(ann, ben):
    cleo = UserFactory()

    first = open_conversation(client_for(ann), ben, cleo, name="Launch crew")
    second = open_conversation(client_for(ann), ben, cleo, name="Launch crew")

    assert first.status_code == second.status_code == 201
    assert first.json()["is_group"] is True
    assert first.json()["name"] == "Launch crew"
    assert len(first.json()["participants"]) == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"participant_ids": []}, "participant_ids"),
        ({}, "participant_ids"),
        ({"participant_ids": ["x"]}, "participant_ids"),
        ({"participant_ids": [999999]}, "participant_ids"),
        ({"participant_ids": list(range(1, 52))}, "participant_ids"),
        ({"participant_ids": "SELF"}, "participant_ids"),
        ({"participant_ids": "BEN", "bounty": 999999}, "bounty"),
        ({"participant_ids": "BEN", "name": "x" * 121}, "name"),
    ],
)
def test_bad_conversation_input_is_400_and_creates_nothing(ann, ben, body, field):
    body = dict(body)
    if body.get("participant_ids") == "SELF":
        body["participant_ids"] = [ann.pk]
    if body.get("participant_ids") == "BEN":
        body["participant_ids"] = [ben.pk]

    response = client_for(ann).post(CONVERSATIONS, body, format="json")

    assert field in assert_error(response, 400, "validation_error")["fields"]
    assert not Conversation.objects.exists()


def test_conversations_need_authentication(api_client):
    assert_error(api_client.get(CONVERSATIONS), 401)
    assert_error(api_client.post(CONVERSATIONS, {}, format="json"), 401)


def test_messages_are_trimmed_listed_newest_first_and_move_the_conversation_up(ann, ben):
    cleo = UserFactory()
    client = client_for(ann)
    older = open_conversation(client, ben).json()["id"]
    newer = open_conversation(client, cleo).json()["id"]
    send(client, newer, "first")

    sent = send(client, older, "  hello ben  ")
    send(client, older, "are you there?")

    assert sent.status_code == 201
    assert sent.json()["text"] == "hello ben"
    assert sent.json()["sender_username"] == "ann"
    texts = [m["text"] for m in client.get(f"{CONVERSATIONS}/{older}/messages").json()["results"]]
    assert texts == ["are you there?", "hello ben"]
    listed = client.get(CONVERSATIONS).json()["results"]
    assert [c["id"] for c in listed] == [older, newer]
    assert listed[0]["last_message"]["text"] == "are you there?"
    assert listed[0]["last_message"]["sender_username"] == "ann"


@pytest.mark.parametrize("text", ["", "   \n ", "x" * 5001])
def test_blank_or_too_long_message_is_refused_and_changes_nothing(ann, ben, text):
    client = client_for(ann)
    conversation = open_conversation(client, ben).json()

    response = send(client, conversation["id"], text)

    assert "text" in assert_error(response, 400, "validation_error")["fields"]
    assert not Message.objects.exists()
    assert client.get(CONVERSATIONS).json()["results"][0]["updated_at"] == conversation["updated_at"]


def test_a_5000_character_message_is_accepted_and_previewed_short(ann, ben):
    client = client_for(ann)
    conversation_id = open_conversation(client, ben).json()["id"]

    assert send(client, conversation_id, "y" * 5000).status_code == 201
    assert len(client.get(CONVERSATIONS).json()["results"][0]["last_message"]["text"]) == 200


def test_unread_counts_follow_messages_and_reads(ann, ben, committed):
    ann_client, ben_client = client_for(ann), client_for(ben)
    with committed():  # the conversation list is cached: writes invalidate it on commit
        conversation_id = open_conversation(ann_client, ben).json()["id"]
        for text in ("one", "two", "three"):
            send(ann_client, conversation_id, text)

    assert ben_client.get(CONVERSATIONS).json()["results"][0]["unread_count"] == 3
    assert ann_client.get(CONVERSATIONS).json()["results"][0]["unread_count"] == 0

    with committed():
        read = ben_client.post(f"{CONVERSATIONS}/{conversation_id}/read")
    assert (read.status_code, read.json()["unread_count"]) == (200, 0)

    with committed():
        send(ann_client, conversation_id, "four")
        send(ben_client, conversation_id, "reply")
    assert ben_client.get(CONVERSATIONS).json()["results"][0]["unread_count"] == 0
    assert ann_client.get(CONVERSATIONS).json()["results"][0]["unread_count"] == 1


def test_non_participant_gets_404_everywhere_and_changes_nothing(ann, ben):
    conversation_id = open_conversation(client_for(ann), ben).json()["id"]
    send(client_for(ann), conversation_id, "private")
    outsider = client_for(UserFactory())

    assert_error(outsider.get(f"{CONVERSATIONS}/{conversation_id}/messages"), 404, "not_found")
    assert_error(send(outsider, conversation_id, "let me in"), 404, "not_found")
    assert_error(outsider.post(f"{CONVERSATIONS}/{conversation_id}/read"), 404, "not_found")
    assert outsider.get(CONVERSATIONS).json()["results"] == []
    assert Message.objects.count() == 1


@pytest.mark.parametrize("conversation_id", [424242, 0, 2**63, 10**30])
def test_unknown_conversation_is_404(ann, conversation_id):
    client = client_for(ann)

    assert_error(client.get(f"{CONVERSATIONS}/{conversation_id}/messages"), 404, "not_found")
    assert_error(send(client, conversation_id, "anyone there?"), 404, "not_found")
    assert_error(client.post(f"{CONVERSATIONS}/{conversation_id}/read"), 404, "not_found")
    assert not Message.objects.exists()


def test_message_pages_are_capped_at_100_and_walk_back_in_time(ann, ben):
    client = client_for(ann)
    conversation_id = open_conversation(client, ben).json()["id"]
    Message.objects.bulk_create(
        Message(conversation_id=conversation_id, sender=ann, text=f"m{i}") for i in range(130)
    )

    first = client.get(f"{CONVERSATIONS}/{conversation_id}/messages?limit=500").json()
    second = client.get(first["next"]).json()

    assert len(first["results"]) == 100
    assert len(second["results"]) == 30
    assert not {m["id"] for m in first["results"]} & {m["id"] for m in second["results"]}


def test_accepting_an_application_opens_the_owner_hunter_conversation_once():
    bounty = paid_bounty()
    chosen = application(bounty)
    owner_client = client_for(bounty.owner)
    earlier = open_conversation(owner_client, chosen.hunter, bounty=bounty.pk).json()["id"]

    request_accept(request_id=chosen.pk, user_id=bounty.owner_id)

    conversations = Conversation.objects.filter(bounty=bounty)
    assert [c.pk for c in conversations] == [earlier]
    members = set(Participant.objects.filter(conversation_id=earlier).values_list("user_id", flat=True))
    assert members == {bounty.owner_id, chosen.hunter_id}


def test_accepting_without_an_earlier_conversation_creates_it():
    bounty = paid_bounty()
    chosen = application(bounty)

    request_accept(request_id=chosen.pk, user_id=bounty.owner_id)

    listed = client_for(chosen.hunter).get(CONVERSATIONS).json()["results"]
    assert [(c["bounty_id"], c["is_group"]) for c in listed] == [(bounty.pk, False)]


def _page_json(source, url: str) -> dict:
    """One page of ``source`` as the list endpoint paginates and serialises it."""
    request = Request(APIRequestFactory().get(url, SERVER_NAME="127.0.0.1", HTTP_HOST="127.0.0.1"))
    pagination = ActivityPagination()
    page = pagination.paginate_queryset(source, request)
    return json.loads(
        json.dumps(pagination.get_paginated_response(ConversationSerializer(page, many=True).data).data)
    )


def test_the_written_out_page_is_the_querysets_page_over_every_cursor(ann, ben):
    """The list's one statement (selectors.ConversationPage) against conversations_of, on
    conversations of every shape: 1:1 and group, about a bounty, without messages, with unread
    messages from others and with read ones, someone's avatar; walked forward and back."""
    cleo, dan = UserFactory(avatar_url="https://example.com/cleo.png"), UserFactory()
    ann_client, ben_client = client_for(ann), client_for(ben)
    ids = [
        open_conversation(ann_client, ben).json()["id"],
        open_conversation(ann_client, ben, cleo, name="Crew").json()["id"],
        open_conversation(ann_client, cleo, bounty=paid_bounty().pk).json()["id"],
        open_conversation(ann_client, dan).json()["id"],
        open_conversation(ben_client, cleo).json()["id"],  # not ann's: in neither of her pages
    ]
    send(ann_client, ids[0], "hi ben")
    send(ben_client, ids[0], "hi ann")
    send(ben_client, ids[1], "crew news")
    ann_client.post(f"{CONVERSATIONS}/{ids[1]}/read")
    send(ben_client, ids[1], "more crew news")
    send(ben_client, ids[1], "and more")
    # Distinct activity times: with ties the order of equal rows is the database's choice.
    for minutes, conversation_id in enumerate(ids):
        Conversation.objects.filter(pk=conversation_id).update(
            updated_at=timezone.now() - timedelta(minutes=minutes)
        )

    walked = 0
    for limit in (1, 2, 3, 20):
        url, seen = f"{CONVERSATIONS}?limit={limit}", []
        for direction in ("next", "previous"):  # to the last page, then back to the first
            while True:
                queryset_page = _page_json(selectors.conversations_of(user_id=ann.pk), url)
                assert _page_json(selectors.ConversationPage(user_id=ann.pk), url) == queryset_page
                walked += 1
                seen += [row["id"] for row in queryset_page["results"]]
                if not queryset_page[direction]:
                    break
                url = queryset_page[direction].removeprefix("http://127.0.0.1")
        assert set(seen) == set(ids[:4])
    assert walked == 2 * (4 + 2 + 2 + 1)
    first_page = _page_json(selectors.ConversationPage(user_id=ann.pk), CONVERSATIONS)["results"]
    unread = {row["id"]: row["unread_count"] for row in first_page}
    assert unread == {ids[0]: 1, ids[1]: 2, ids[2]: 0, ids[3]: 0}


def test_the_written_out_page_refuses_what_it_was_not_written_for(ann):
    page = selectors.ConversationPage(user_id=ann.pk)

    with pytest.raises(ValueError, match="updated_at"):
        page.order_by("-created_at")
    with pytest.raises(ValueError, match="updated_at"):
        page.filter(created_at__lt=timezone.now())
    with pytest.raises(TypeError):
        page[0]
    assert page.order_by("updated_at")[0:5] == []


@pytest.mark.parametrize("text", ["  hello  ", "y" * 5000, "émoji 🎉 and\nnew lines"])
def test_a_sent_messages_answer_is_the_message_read_back_from_the_database(ann, ben, text):
    """The answer is serialised from the inserted row and the caller (no read back): it must be
    what the messages page reads from PostgreSQL, sender's username and timestamp included."""
    client = client_for(ann)
    conversation_id = open_conversation(client, ben).json()["id"]

    with CaptureQueriesContext(connection) as queries:
        sent = send(client, conversation_id, text)

    assert sent.status_code == 201
    assert reads_after_insert(queries, "messaging_message", "accounts_user") == []
    read_back = client.get(f"{CONVERSATIONS}/{conversation_id}/messages").json()["results"]
    assert sent.json() == read_back[0]
    assert sent.json()["sender_username"] == "ann"
