"""The selectors' ``.only()`` lists and the serializers' fields are written separately: a field
a serializer reads that its selector did not load costs one query per row (Django loads a
deferred field on access). Each pair below serializes its selector's rows with no query at all,
so adding a field to a serializer without its selector fails here, by name."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.selectors import profiles_public
from accounts.serializers import PrivateProfileSerializer, PublicProfileSerializer
from bounties import selectors as bounties
from bounties.serializers import (
    BountyDetailSerializer,
    BountyListSerializer,
    BountyRequestSerializer,
    BountySearchResultSerializer,
)
from messaging import selectors as messaging
from messaging.serializers import ConversationSerializer, MessageSerializer
from messaging.services import conversation_open, message_send
from tests.factories import UserFactory, application, funded_user, paid_bounty
from wallet.selectors import transactions_for
from wallet.serializers import TransactionSerializer

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> dict:
    owner, hunter = funded_user("500.00"), UserFactory()
    bounty = paid_bounty(owner, amount="40.00", title="Searchable widget repair")
    application(bounty, hunter)
    conversation, _ = conversation_open(created_by=owner.pk, participant_ids={hunter.pk})
    message_send(conversation_id=conversation.pk, sender_id=hunter.pk, text="When can you start?")
    return {"owner": owner, "hunter": hunter, "bounty": bounty, "conversation": conversation}


PAIRS: dict[str, tuple[Callable[[dict], object], type]] = {
    "bounty list": (lambda w: bounties.bounty_list().filter(pk=w["bounty"].pk), BountyListSerializer),
    "bounty search": (lambda w: bounties.bounty_search(text="widget"), BountySearchResultSerializer),
    "bounty detail": (lambda w: bounties.bounty_detail().filter(pk=w["bounty"].pk), BountyDetailSerializer),
    "applications": (
        lambda w: bounties.requests_of_bounty(bounty_id=w["bounty"].pk),
        BountyRequestSerializer,
    ),
    "conversations": (lambda w: messaging.conversations_of(user_id=w["owner"].pk), ConversationSerializer),
    "messages": (
        lambda w: messaging.messages_of(conversation_id=w["conversation"].pk),
        MessageSerializer,
    ),
    "public profile": (lambda w: profiles_public().filter(pk=w["owner"].pk), PublicProfileSerializer),
    "private profile": (lambda w: profiles_public().filter(pk=w["owner"].pk), PrivateProfileSerializer),
    "ledger": (lambda w: transactions_for(user_id=w["owner"].pk), TransactionSerializer),
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_each_serializer_reads_only_what_its_selector_loaded(world, name):
    rows_of, serializer = PAIRS[name]
    rows = list(rows_of(world))  # the selector's queries, prefetches included
    assert rows, f"{name}: the selector found nothing to serialize"

    with CaptureQueriesContext(connection) as captured:
        serializer(rows, many=True).data  # noqa: B018 (serializing is the point)

    assert not captured.captured_queries, (
        f"{serializer.__name__} read what its selector ({name}) did not load: "
        + "; ".join(query["sql"][:160] for query in captured.captured_queries)
    )
