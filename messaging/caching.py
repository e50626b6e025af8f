"""The conversation list, cached per user (core/response_cache.py does the rest).

A user's page of conversations (``GET /api/conversations``) is the API's costliest read and the
one a client polls for its unread badges, and it changes only when something happens in one of
the user's conversations. Each user's pages hang on a counter of their own, moved once the
transaction commits by anything that changes what a page shows:

- a message saved or deleted: every participant (last message, activity order, unread counts);
- a conversation saved or deleted: its participants (name, order; deleted with its rows);
- a participant added, changed or removed: every participant of that conversation, the removed
  one included (members, and the reader's own last_read_at: their unread count);
- a user whose username or avatar changed: everyone sharing a conversation with them.

Everyone whose counter moves is also marked as its author, so a reader never gets a page older
than their last event, not even within CACHE_PUBLIC_LAG_SECONDS: the only reader of a user's
pages is that user. Services that write with ``bulk_create`` or ``.update()`` (which skip
signals) call :func:`conversations_changed` or :func:`pages_changed` themselves
(messaging/services.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from core.response_cache import CachedKind, invalidate_on_commit
from messaging.models import Conversation, Message, Participant
from messaging.serializers import ConversationSerializer

# Entries per user and query (cursor, page size); one counter per user.
CONVERSATION_LIST = CachedKind(
    "conversation-list", "CACHE_TTL_CONVERSATIONS", ConversationSerializer, scope_parts=1
)

# User fields a conversation page shows (of its participants and last senders).
SHOWN_USER_FIELDS = frozenset({"username", "avatar_url"})


def pages_changed(user_ids: Iterable[int]) -> None:
    """These users read new pages once the current transaction commits."""
    users = sorted(set(user_ids))
    if users:
        invalidate_on_commit([(CONVERSATION_LIST, (user_id,)) for user_id in users], authors=users)


def conversations_changed(conversation_ids: Iterable[int], also: Iterable[int] = ()) -> None:
    """Every participant of these conversations (and the users ``also``) reads new pages once
    the current transaction commits."""
    members = Participant.objects.filter(conversation_id__in=list(conversation_ids)).values_list(
        "user_id", flat=True
    )
    pages_changed([*members, *also])


@receiver(post_save, sender=Message, dispatch_uid="conversation-list-message-save")
def _message_saved(sender, instance: Message, **kwargs) -> None:
    conversations_changed([instance.conversation_id])


_deletion = threading.local()


def _first_in_this_deletion(origin, conversation_id: int) -> bool:
    """Whether the deletion started by ``origin`` (a model instance or a queryset) has not named
    this conversation yet: Django sends post_delete once per row, one after another in this
    thread, and deleting a thousand messages of one conversation looks its members up once.
    The origin is held (and compared by identity) until the next deletion in this thread."""
    if getattr(_deletion, "origin", None) is not origin:
        _deletion.origin, _deletion.seen = origin, set()
    if conversation_id in _deletion.seen:
        return False
    _deletion.seen.add(conversation_id)
    return True


@receiver(post_delete, sender=Message, dispatch_uid="conversation-list-message-delete")
def _message_deleted(sender, instance: Message, origin=None, **kwargs) -> None:
    if isinstance(origin, Conversation) or getattr(origin, "model", None) is Conversation:
        return  # the conversation goes too: its participants' own signals move their pages
    if _first_in_this_deletion(origin, instance.conversation_id):
        conversations_changed([instance.conversation_id])


@receiver(post_save, sender=Conversation, dispatch_uid="conversation-list-conversation-save")
def _conversation_saved(sender, instance: Conversation, created: bool, **kwargs) -> None:
    if created:
        return  # no members yet: whoever adds them names them (services._with_participants, signals)
    conversations_changed([instance.pk])


@receiver(post_save, sender=Participant, dispatch_uid="conversation-list-participant-save")
@receiver(post_delete, sender=Participant, dispatch_uid="conversation-list-participant-delete")
def _participant_changed(sender, instance: Participant, **kwargs) -> None:
    # A deleted conversation takes its participants with it (CASCADE); by the time their
    # signals are sent the rows are gone, so each one names its own user.
    conversations_changed([instance.conversation_id], also=[instance.user_id])


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="conversation-list-user-save")
def _user_saved(sender, instance, created: bool, update_fields=None, **kwargs) -> None:
    if created or (update_fields is not None and not SHOWN_USER_FIELDS & set(update_fields)):
        return
    partners = Participant.objects.filter(conversation__participants__user_id=instance.pk).values_list(
        "user_id", flat=True
    )
    pages_changed(partners)
