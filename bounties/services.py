"""Writes of bounties and applications. Each is one transaction; rules live here, not in views.

Lock order (shared with wallet.services): the bounty row first, then applications, then wallet
accounts in primary-key order.

Caches: every Bounty saved or deleted here (or anywhere) invalidates its detail, every list and
search page, and its owner's and hunter's stats on commit, through the post_save/post_delete
receivers in bounties/caching.py; applications are never cached. View counts reach Redis here
and the row in a bulk UPDATE that skips those signals (they may lag by the detail TTL).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from bounties.errors import (
    AlreadyApplied,
    BountyNotEditable,
    BountyNotFound,
    BountyNotOpen,
    IllegalTransition,
    NotApplicant,
    NotBountyOwner,
    OwnBounty,
    RequestNotPending,
    TooManyPendingRequests,
)
from bounties.models import MAX_PENDING_REQUESTS, Bounty, BountyRequest, BountyStatus, RequestStatus
from core.cache_keys import make_key
from messaging import services as messaging
from wallet import services as wallet

logger = logging.getLogger(__name__)

# First key of the advisory lock that serialises one hunter's applications (any fixed int4).
APPLICATION_LOCK_NAMESPACE = 7_301
EDITABLE_STATUSES = (BountyStatus.OPEN, BountyStatus.IN_PROGRESS)


def _locked_bounty(bounty_id: int) -> Bounty:
    try:
        # NO KEY UPDATE: applications inserted meanwhile (FK checks take KEY SHARE) do not wait.
        return Bounty.objects.select_for_update(no_key=True).get(pk=bounty_id)
    except Bounty.DoesNotExist:
        raise BountyNotFound() from None


def _owned_locked_bounty(bounty_id: int, user_id: int) -> Bounty:
    bounty = _locked_bounty(bounty_id)
    if bounty.owner_id != user_id:
        raise NotBountyOwner()
    return bounty


def _set_status(bounty: Bounty, new_status: str, **fields: Any) -> Bounty:
    bounty.status = new_status
    for name, value in fields.items():
        setattr(bounty, name, value)
    bounty.save(update_fields=["status", *fields, "updated_at"])
    return bounty


def _reject_pending(bounty: Bounty) -> int:
    return BountyRequest.objects.filter(bounty=bounty, status=RequestStatus.PENDING).update(
        status=RequestStatus.REJECTED, updated_at=timezone.now()
    )


# --- bounties ----------------------------------------------------------------------------------


@transaction.atomic
def bounty_create(*, owner_id: int, data: dict[str, Any]) -> Bounty:
    """Post a bounty; a paid one takes its escrow from the owner in the same transaction."""
    bounty = Bounty.objects.create(owner_id=owner_id, **data)
    if not bounty.is_for_honor:
        wallet.escrow_hold(bounty=bounty, owner_id=owner_id)
    return bounty


@transaction.atomic
def bounty_update(*, bounty_id: int, user_id: int, data: dict[str, Any]) -> Bounty:
    """Edit an open or in-progress bounty (owner only); money fields are fixed at creation."""
    bounty = _owned_locked_bounty(bounty_id, user_id)
    if bounty.status not in EDITABLE_STATUSES:
        raise BountyNotEditable()
    for name, value in data.items():
        setattr(bounty, name, value)
    if data:
        bounty.save(update_fields=[*data, "updated_at"])
    return bounty


@transaction.atomic
def bounty_delete(*, bounty_id: int, user_id: int) -> None:
    """Withdraw an open bounty nobody was accepted for: escrow refunded, applications rejected.

    The row stays (its ledger rows point at it) but disappears from every read.
    """
    bounty = _owned_locked_bounty(bounty_id, user_id)
    if bounty.status != BountyStatus.OPEN or bounty.hunter_id is not None:
        raise IllegalTransition("Only an open bounty without an accepted hunter can be deleted.")
    wallet.escrow_refund(bounty=bounty, owner_id=bounty.owner_id)
    _reject_pending(bounty)
    _set_status(bounty, BountyStatus.CANCELLED, deleted_at=timezone.now())


@transaction.atomic
def bounty_complete(*, bounty_id: int, user_id: int) -> Bounty:
    """The owner confirms the work: in_progress -> completed, escrow paid to the hunter."""
    bounty = _owned_locked_bounty(bounty_id, user_id)
    if bounty.status != BountyStatus.IN_PROGRESS:
        raise IllegalTransition("Only a bounty in progress can be completed.")
    wallet.escrow_release(bounty=bounty, hunter_id=bounty.hunter_id)
    return _set_status(bounty, BountyStatus.COMPLETED)


@transaction.atomic
def bounty_cancel(*, bounty_id: int, user_id: int) -> Bounty:
    """open or in_progress -> cancelled; escrow refunded, pending applications rejected."""
    bounty = _owned_locked_bounty(bounty_id, user_id)
    if bounty.status not in (BountyStatus.OPEN, BountyStatus.IN_PROGRESS):
        raise IllegalTransition("Only an open or in-progress bounty can be cancelled.")
    wallet.escrow_refund(bounty=bounty, owner_id=bounty.owner_id)
    _reject_pending(bounty)
    return _set_status(bounty, BountyStatus.CANCELLED)


@transaction.atomic
def bounty_archive(*, bounty_id: int, user_id: int) -> Bounty:
    """completed or cancelled -> archived."""
    bounty = _owned_locked_bounty(bounty_id, user_id)
    if bounty.status not in (BountyStatus.COMPLETED, BountyStatus.CANCELLED):
        raise IllegalTransition("Only a completed or cancelled bounty can be archived.")
    return _set_status(bounty, BountyStatus.ARCHIVED)


# --- applications ------------------------------------------------------------------------------


@transaction.atomic
def request_create(*, bounty_id: int, hunter_id: int, message: str) -> BountyRequest:
    """Apply to an open bounty: not your own, once per bounty, at most 10 pending at a time."""
    bounty = _locked_bounty(bounty_id)
    if bounty.owner_id == hunter_id:
        raise OwnBounty()
    if bounty.status != BountyStatus.OPEN:
        raise BountyNotOpen()
    # Serialise one hunter's applications so two concurrent ones cannot both be the 10th.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [APPLICATION_LOCK_NAMESPACE, hunter_id])
    pending = BountyRequest.objects.filter(hunter_id=hunter_id, status=RequestStatus.PENDING).count()
    if pending >= MAX_PENDING_REQUESTS:
        raise TooManyPendingRequests()
    try:
        with transaction.atomic():
            return BountyRequest.objects.create(bounty=bounty, hunter_id=hunter_id, message=message)
    except IntegrityError:
        raise AlreadyApplied() from None


def _locked_request_with_bounty(request_id: int, user_id: int) -> tuple[BountyRequest, Bounty]:
    """Lock the request's bounty, then the request; 404 unless the caller owns either side."""
    found = BountyRequest.objects.filter(pk=request_id).values_list("bounty_id", flat=True).first()
    if found is None:
        raise BountyNotFound()
    bounty = _locked_bounty(found)
    request = BountyRequest.objects.select_for_update().get(pk=request_id)
    if user_id not in (bounty.owner_id, request.hunter_id):
        raise BountyNotFound()
    return request, bounty


@transaction.atomic
def request_accept(*, request_id: int, user_id: int) -> BountyRequest:
    """The owner accepts one application: the bounty goes in_progress with that hunter, every
    other pending application of the bounty is rejected, and the owner-hunter conversation
    about the bounty is opened (or reused), all in one transaction."""
    request, bounty = _locked_request_with_bounty(request_id, user_id)
    if bounty.owner_id != user_id:
        raise NotBountyOwner()
    if request.status != RequestStatus.PENDING:
        raise RequestNotPending()
    if bounty.status != BountyStatus.OPEN:
        raise BountyNotOpen()
    request.status = RequestStatus.ACCEPTED
    request.save(update_fields=["status", "updated_at"])
    _reject_pending(bounty)
    _set_status(bounty, BountyStatus.IN_PROGRESS, hunter_id=request.hunter_id)
    messaging.conversation_open(created_by=user_id, participant_ids={request.hunter_id}, bounty_id=bounty.pk)
    return request


@transaction.atomic
def request_reject(*, request_id: int, user_id: int) -> BountyRequest:
    """The owner turns down a pending application."""
    request, bounty = _locked_request_with_bounty(request_id, user_id)
    if bounty.owner_id != user_id:
        raise NotBountyOwner()
    if request.status != RequestStatus.PENDING:
        raise RequestNotPending()
    request.status = RequestStatus.REJECTED
    request.save(update_fields=["status", "updated_at"])
    return request


@transaction.atomic
def request_withdraw(*, request_id: int, user_id: int) -> BountyRequest:
    """The applicant takes back a pending application."""
    request, _ = _locked_request_with_bounty(request_id, user_id)
    if request.hunter_id != user_id:
        raise NotApplicant()
    if request.status != RequestStatus.PENDING:
        raise RequestNotPending()
    request.status = RequestStatus.WITHDRAWN
    request.save(update_fields=["status", "updated_at"])
    return request


# --- view counts -------------------------------------------------------------------------------
# A hot bounty is viewed many times a second; an UPDATE per view would queue every request on
# that row's lock. Views are counted in a Redis hash instead and written to PostgreSQL in one
# UPDATE at most every VIEW_COUNT_FLUSH_SECONDS, by whichever request finds the flush due.


def _views_key(name: str) -> str:
    # Raw Redis commands bypass the cache API, so add its prefix and version by hand.
    return cache.make_key(make_key("bounty-views", name))


def bounty_view_record(*, bounty_id: int) -> None:
    """Count one detail view. Without Redis it falls back to a direct (row-locking) UPDATE."""
    try:
        redis = get_redis_connection("default")
        redis.hincrby(_views_key("pending"), str(bounty_id), 1)
        if redis.set(_views_key("flush-lock"), "1", nx=True, ex=settings.VIEW_COUNT_FLUSH_SECONDS):
            bounty_views_flush()
    except RedisError as exc:
        logger.warning("view count of bounty %s written directly, Redis unavailable: %s", bounty_id, exc)
        Bounty.all_objects.filter(pk=bounty_id).update(view_count=F("view_count") + 1)


def bounty_view_tally(*, bounty_id: int) -> tuple[str, str, str, int]:
    """What :func:`bounty_view_record` does, as keys for the lean hit path's round trip
    (core.hit_path.Tally): the pending hash, the bounty's field, the flush lock, its seconds."""
    return _views_key("pending"), str(bounty_id), _views_key("flush-lock"), settings.VIEW_COUNT_FLUSH_SECONDS


def bounty_view_unrecord(*, bounty_id: int) -> None:
    """Take back one counted view (a request refused after its view was queued)."""
    with contextlib.suppress(RedisError):
        get_redis_connection("default").hincrby(_views_key("pending"), str(bounty_id), -1)


def bounty_views_flush() -> int:
    """Move the counted views from Redis into bounties.view_count; returns bounties updated."""
    redis = get_redis_connection("default")
    flushing = _views_key("flushing")
    try:
        redis.rename(_views_key("pending"), flushing)  # atomic: new views go to a fresh hash meanwhile
    except RedisError as exc:
        if "no such key" in str(exc).lower():
            return 0
        raise
    counts = {int(key): int(value) for key, value in redis.hgetall(flushing).items()}
    if counts:
        ids, increments = zip(*sorted(counts.items()), strict=True)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Bounty._meta.db_table} AS b SET view_count = b.view_count + v.n "  # noqa: S608
                "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, n) WHERE b.id = v.id",
                [list(ids), list(increments)],
            )
    redis.delete(flushing)
    return len(counts)
