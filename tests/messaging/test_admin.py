"""Messaging admin search: conversations by name, participant or id; messages by id anywhere
and by text within one conversation, never by a scan of every message."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from messaging.services import conversation_open, message_send
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CONVERSATIONS = "/admin/messaging/conversation/"
MESSAGES = "/admin/messaging/message/"


@pytest.fixture
def browser() -> Client:
    client = Client()
    client.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def people():
    return UserFactory(username="Alice"), UserFactory(username="bob"), UserFactory(username="carol")


@pytest.fixture
def direct(people):
    alice, bob, _ = people
    conversation, _ = conversation_open(created_by=alice.pk, participant_ids={bob.pk})
    return conversation


@pytest.fixture
def group(people):
    alice, bob, carol = people
    conversation, _ = conversation_open(
        created_by=carol.pk, participant_ids={alice.pk, bob.pk}, name="Launch party planning"
    )
    return conversation


def listed_ids(response) -> set[int]:
    assert response.status_code == 200
    return {row.pk for row in response.context["cl"].result_list}


def shown_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_conversation_search_finds_by_part_of_the_name(browser, direct, group):
    assert listed_ids(browser.get(CONVERSATIONS, {"q": "party"})) == {group.pk}


def test_conversation_search_finds_by_participant_username_in_any_case(browser, people, direct, group):
    assert listed_ids(browser.get(CONVERSATIONS, {"q": "ALICE"})) == {direct.pk, group.pk}
    assert listed_ids(browser.get(CONVERSATIONS, {"q": "carol"})) == {group.pk}


def test_conversation_search_finds_by_id(browser, direct, group):
    assert listed_ids(browser.get(CONVERSATIONS, {"q": str(direct.pk)})) == {direct.pk}


def test_conversation_page_links_to_its_messages(browser, direct):
    page = browser.get(f"{CONVERSATIONS}{direct.pk}/change/").content.decode()

    assert f'href="{MESSAGES}?conversation__id__exact={direct.pk}"' in page


def test_message_search_by_id_finds_it_in_any_conversation(browser, people, direct, group):
    alice, bob, _ = people
    wanted = message_send(conversation_id=direct.pk, sender_id=alice.pk, text="See you at the station")
    message_send(conversation_id=group.pk, sender_id=bob.pk, text="Who brings the cake?")

    assert listed_ids(browser.get(MESSAGES, {"q": str(wanted.pk)})) == {wanted.pk}
    assert listed_ids(browser.get(MESSAGES, {"q": f"#{wanted.pk}"})) == {wanted.pk}


def test_message_text_search_within_a_conversation(browser, people, direct, group):
    alice, bob, _ = people
    found = message_send(conversation_id=direct.pk, sender_id=alice.pk, text="The Cake is in the fridge")
    message_send(conversation_id=direct.pk, sender_id=bob.pk, text="Thanks, see you tomorrow")
    elsewhere = message_send(conversation_id=group.pk, sender_id=bob.pk, text="Who brings the cake?")

    response = browser.get(MESSAGES, {"conversation__id__exact": direct.pk, "q": "cake"})

    assert listed_ids(response) == {found.pk}
    assert elsewhere.pk not in listed_ids(response)


def test_message_text_search_without_a_conversation_explains_and_scans_nothing(browser, people, direct):
    alice, _, _ = people
    message_send(conversation_id=direct.pk, sender_id=alice.pk, text="The cake is in the fridge")

    with CaptureQueriesContext(connection) as queries:
        response = browser.get(MESSAGES, {"q": "cake"})

    assert listed_ids(response) == set()
    [warning] = shown_messages(response)
    assert "within one conversation" in warning
    assert not any('"messaging_message"' in q["sql"] and "LIKE" in q["sql"] for q in queries)


def test_message_list_links_each_message_to_its_conversations_messages(browser, people, direct):
    alice, _, _ = people
    message_send(conversation_id=direct.pk, sender_id=alice.pk, text="Hello there")

    page = browser.get(MESSAGES).content.decode()

    assert f'href="{MESSAGES}?conversation__id__exact={direct.pk}"' in page
