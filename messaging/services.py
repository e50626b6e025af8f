"""Writes of conversations and messages; each one transaction.

Caches: each user's conversation list is cached (messaging/caching.py). Rows saved one by one
invalidate it through signals; the bulk_create and .update() calls here (which send none) name
whose pages they changed.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from messaging.caching import conversations_changed, pages_changed
from messaging.errors import NoOtherParticipant
from messaging.models import PREVIEW_LENGTH, Conversation, Message, Participant


def pair_key(user_a: int, user_b: int) -> str:
    low, high = sorted((user_a, user_b))
    return f"{low}:{high}"


def _with_participants(conversation: Conversation, user_ids: set[int]) -> Conversation:
    Participant.objects.bulk_create(
        [Participant(conversation=conversation, user_id=uid) for uid in sorted(user_ids)]
    )
    conversations_changed([conversation.pk])
    return conversation


@transaction.atomic
def conversation_open(
    *, created_by: int, participant_ids: set[int], bounty_id: int | None = None, name: str = ""
) -> tuple[Conversation, bool]:
    """Open a conversation of the creator and ``participant_ids``; returns it and whether it
    is new. Two people (and a bounty, or none) always share one 1:1 conversation: an existing
    one is returned, and two concurrent creations still yield one (the unique index decides)."""
    members = {created_by, *participant_ids}
    if len(members) > 2:
        conversation = Conversation.objects.create(
            created_by_id=created_by, is_group=True, name=name, bounty_id=bounty_id
        )
        return _with_participants(conversation, members), True
    if len(members) < 2:
        raise NoOtherParticipant()
    key = pair_key(*members)
    existing = Conversation.objects.filter(pair_key=key, bounty_id=bounty_id, is_group=False).first()
    if existing:
        return existing, False
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(
                created_by_id=created_by, pair_key=key, bounty_id=bounty_id, name=name
            )
            return _with_participants(conversation, members), True
    except IntegrityError:
        # A concurrent request created it first; we waited on its insert, now we see it.
        return Conversation.objects.get(pair_key=key, bounty_id=bounty_id, is_group=False), False


@transaction.atomic
def message_send(*, conversation_id: int, sender_id: int, text: str) -> Message:
    """Post a message: the conversation's activity time and preview move with it, and the
    sender has read everything up to their own message."""
    conversation = Conversation.objects.select_for_update(no_key=True).get(pk=conversation_id)
    message = Message.objects.create(conversation=conversation, sender_id=sender_id, text=text)
    Conversation.objects.filter(pk=conversation.pk).update(
        updated_at=message.created_at,
        last_message_at=message.created_at,
        last_message_preview=text[:PREVIEW_LENGTH],
        last_message_sender_id=sender_id,
    )
    Participant.objects.filter(conversation=conversation, user_id=sender_id).update(
        last_read_at=message.created_at
    )
    # The Message's own signal already moved every participant's pages, on the same commit.
    return message


@transaction.atomic
def conversation_mark_read(*, conversation_id: int, user_id: int) -> None:
    """Everything in the conversation up to now counts as read by ``user_id``."""
    Participant.objects.filter(conversation_id=conversation_id, user_id=user_id).update(
        last_read_at=timezone.now()
    )
    pages_changed([user_id])
