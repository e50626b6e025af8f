"""Reads of conversations and messages, in a constant number of queries per page."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from django.contrib.auth import get_user_model
from django.db import connections, router
from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from messaging.models import Conversation, Message, Participant

PARTICIPANT_FIELDS = ("id", "conversation_id", "user_id", "user__username", "user__avatar_url")
MESSAGE_FIELDS = ("id", "conversation_id", "sender_id", "sender__username", "text", "created_at")
NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # last_read_at of someone who never opened it


def conversations_of(*, user_id: int) -> QuerySet[Conversation]:
    """The user's conversations with participants, last message and the user's unread count.

    One query for the page (the unread count is a correlated COUNT on the (conversation,
    created_at) index, bounded by the page size) plus one prefetch for all participants. The
    list endpoint reads the same page with one written-out statement (ConversationPage); this
    queryset serves single conversations and is the reference the page is tested against.
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


# The page conversations_of builds, written out: the ORM spent 70 % of a computed page's CPU
# (4.5 ms) building and compiling its two queries (bench/member_path_cpu.py), and every miss
# of a user's cached list runs it. Same rows, same indexes (participant_user_conv_idx for the
# user's conversations, message_conv_created_idx for the unread counts, participant_once for
# the members), the members folded into the row as a JSON array instead of a second query.
# Table names come from the models; values are parameters; {where}, {direction} and the
# window are chosen by ConversationPage, never taken from a request.
_MESSAGE, _PARTICIPANT, _CONVERSATION = (m._meta.db_table for m in (Message, Participant, Conversation))
_USER = get_user_model()._meta.db_table
_PAGE_SQL = f"""
SELECT c.id, c.bounty_id, c.is_group, c.name, c.created_by_id, c.created_at, c.updated_at,
       c.last_message_preview, c.last_message_at, c.last_message_sender_id, sender.username,
       (SELECT count(*) FROM {_MESSAGE} m
        WHERE m.conversation_id = c.id AND m.sender_id <> %(user)s
          AND m.created_at > coalesce(me.last_read_at, %(never)s)),
       (SELECT json_agg(json_build_array(p.user_id, u.username, u.avatar_url) ORDER BY p.id)
        FROM {_PARTICIPANT} p JOIN {_USER} u ON u.id = p.user_id
        WHERE p.conversation_id = c.id)
FROM {_CONVERSATION} c
JOIN {_PARTICIPANT} me ON me.conversation_id = c.id AND me.user_id = %(user)s
LEFT JOIN {_USER} sender ON sender.id = c.last_message_sender_id
{{where}}
ORDER BY c.updated_at {{direction}}
LIMIT %(limit)s OFFSET %(offset)s
"""  # noqa: S608


class ConversationPage:
    """A user's conversations as DRF's cursor pagination walks them (ordered by ``updated_at``,
    filtered past a cursor's position, sliced to one page plus one), read with one written-out
    statement (_PAGE_SQL) instead of conversations_of's two ORM queries. Rows are plain
    attribute objects with everything ConversationSerializer reads, so the page's JSON is the
    serializer's and the same as the queryset's (tests/messaging/test_conversations.py compares
    both over every cursor). Only what the pagination calls is here: ``order_by`` and ``filter``
    on ``updated_at``, and slicing; anything else is a programming error and raises."""

    model = Conversation
    query = SimpleNamespace(annotations={})  # no annotations: cursor positions are model fields

    def __init__(self, *, user_id: int, ascending: bool = False, where: tuple[str, object] | None = None):
        self.user_id, self.ascending, self.where = user_id, ascending, where

    def order_by(self, *fields: str) -> ConversationPage:
        if fields not in (("updated_at",), ("-updated_at",)):
            raise ValueError(f"ConversationPage orders by updated_at only, not {fields}")
        return ConversationPage(user_id=self.user_id, ascending=fields[0] == "updated_at", where=self.where)

    def filter(self, **lookups) -> ConversationPage:
        ((lookup, value),) = lookups.items()
        operators = {"updated_at__lt": "<", "updated_at__gt": ">"}
        if lookup not in operators:
            raise ValueError(f"ConversationPage filters on updated_at__lt/__gt only, not {lookup}")
        where = (operators[lookup], value)
        return ConversationPage(user_id=self.user_id, ascending=self.ascending, where=where)

    def __getitem__(self, window: slice) -> list[SimpleNamespace]:
        if not isinstance(window, slice) or window.step is not None or window.stop is None:
            raise TypeError("ConversationPage is read one bounded slice at a time")
        offset = window.start or 0
        params = {"user": self.user_id, "never": NEVER, "limit": window.stop - offset, "offset": offset}
        where = ""
        if self.where is not None:
            where, params["position"] = f"WHERE c.updated_at {self.where[0]} %(position)s", self.where[1]
        sql = _PAGE_SQL.format(where=where, direction="ASC" if self.ascending else "DESC")
        with connections[router.db_for_read(Conversation)].cursor() as cursor:
            cursor.execute(sql, params)
            return [_conversation(row) for row in cursor.fetchall()]


def _conversation(row: tuple) -> SimpleNamespace:
    (id_, bounty_id, is_group, name, created_by_id, created_at, updated_at, preview, last_at,
     sender_id, sender_username, unread, members) = row  # fmt: skip
    return SimpleNamespace(
        id=id_,
        pk=id_,
        bounty_id=bounty_id,
        is_group=is_group,
        name=name,
        created_by_id=created_by_id,
        created_at=created_at,
        updated_at=updated_at,
        last_message_preview=preview,
        last_message_at=last_at,
        last_message_sender_id=sender_id,
        last_message_sender=None if sender_id is None else SimpleNamespace(username=sender_username),
        unread_count=unread,
        participants=[
            SimpleNamespace(user_id=user_id, user=SimpleNamespace(username=username, avatar_url=avatar_url))
            for user_id, username, avatar_url in members or ()
        ],
    )


# The participant check every conversation endpoint runs first (a messages page, a message, a
# read); through the ORM (the user's conversations, filtered by id, the whole row loaded) it was
# a quarter of a messages page's CPU. participant_once (conversation, user) answers it.
_PARTICIPANT_SQL = f"SELECT 1 FROM {_PARTICIPANT} WHERE conversation_id = %s AND user_id = %s"  # noqa: S608


def takes_part(*, conversation_id: int, user_id: int) -> bool:
    """Whether the user is a participant of the conversation (one written-out statement)."""
    with connections[router.db_for_read(Participant)].cursor() as cursor:
        cursor.execute(_PARTICIPANT_SQL, [conversation_id, user_id])
        return cursor.fetchone() is not None


def messages_of(*, conversation_id: int) -> QuerySet[Message]:
    """A conversation's messages as slim rows with the sender's username (index
    message_conv_created_idx serves the newest-first pages)."""
    return (
        Message.objects.filter(conversation_id=conversation_id).select_related("sender").only(*MESSAGE_FIELDS)
    )
