"""Reads of conversations and messages, in a constant number of queries per page."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from messaging.models import Conversation, Message, Participant

PARTICIPANT_FIELDS = ("id", "conversation_id", "user_id", "user__username", "user__avatar_url")
MESSAGE_FIELDS = ("id", "conversation_id", "sender_id", "sender__username", "text", "created_at")
NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # last_read_at of someone who never opened it


def conversations_of(*, user_id: int) -> QuerySet[Conversation]:
    """The user's conversations with participants, last message and the user's unread count.

    One query for the page (the unread count is a correlated COUNT on the (conversation,
    created_at) index, bounded by the page size) plus one prefetch for all participants.
    """
    my_last_read = Participant.objects.filter(conversation=OuterRef("pk"), user_id=user_id).values(
        "last_read_at"
    )
    unread = (
        Message.objects.filter(conversation=OuterRef("pk"), created_at__gt=OuterRef("read_since"))
        .exclude(sender_id=user_id)
        .values("conversation")
        .annotate(n=Count("*"))
        .values("n")
    )
    return (
        Conversation.objects.filter(participants__user_id=user_id)
        .select_related("last_message_sender")
        .only(
            "id",
            "bounty_id",
            "is_group",
            "name",
            "created_by_id",
            "created_at",
            "updated_at",
            "last_message_preview",
            "last_message_at",
            "last_message_sender_id",
            "last_message_sender__username",
        )
        .annotate(read_since=Coalesce(Subquery(my_last_read), Value(NEVER)))
        .annotate(unread_count=Coalesce(Subquery(unread, output_field=IntegerField()), Value(0)))
        .prefetch_related(
            Prefetch(
                "participants",
                queryset=Participant.objects.select_related("user").only(*PARTICIPANT_FIELDS).order_by("id"),
            )
        )
    )


def conversation_for(*, user_id: int) -> QuerySet[Conversation]:
    """Conversations the user takes part in; anyone else's are invisible (404)."""
    return Conversation.objects.filter(participants__user_id=user_id)


def messages_of(*, conversation_id: int) -> QuerySet[Message]:
    """A conversation's messages as slim rows with the sender's username (index
    message_conv_created_idx serves the newest-first pages)."""
    return (
        Message.objects.filter(conversation_id=conversation_id).select_related("sender").only(*MESSAGE_FIELDS)
    )
