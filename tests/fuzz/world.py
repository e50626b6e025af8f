"""The data the schema fuzzer works on: one user who owns something of every kind.

Every object is created through the services (so wallets and the ledger stay consistent) and
committed, because the server under test is another process. ``World.replenish`` adds a fresh
batch now and then: the fuzzer cancels, completes and deletes whatever it reaches, and without
new objects the later requests would only meet state conflicts.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

from django.utils import timezone

from accounts.models import User
from accounts.services import token_issue
from bounties import services as bounties
from bounties.errors import TooManyPendingRequests
from messaging import services as messaging
from tests.factories import UserFactory, application, funded_user, paid_bounty
from wallet.services import deposit_create

PITCH = "I have shipped this kind of work before and can start tomorrow, with daily updates."


@dataclass
class World:
    """The fuzzing user (``owner``), two other users, and the ids the fuzzer may put in paths."""

    owner: User
    hunter: User
    third: User
    token: str
    bounty_ids: list[int] = field(default_factory=list)
    request_ids: list[int] = field(default_factory=list)
    conversation_ids: list[int] = field(default_factory=list)

    @property
    def user_ids(self) -> list[int]:
        return [self.owner.pk, self.hunter.pk, self.third.pk]

    def fresh_token(self) -> str:
        """A token of the owner's own, for requests that revoke the token they carry."""
        raw, _ = token_issue(user=self.owner)
        return raw

    def replenish(self) -> None:
        """Add one bounty in every status, applications both ways, and their conversations."""
        owner, hunter, third = self.owner, self.hunter, self.third
        # The fuzzer withdraws money too: top up so that this batch's escrows are covered.
        for user in (owner, hunter, third):
            deposit_create(user_id=user.pk, amount=Decimal("300.00"), reference=f"fuzz-{uuid4().hex}")

        open_paid = paid_bounty(owner, "40.00")
        self._apply(open_paid, hunter)
        self._apply(open_paid, third)
        honor = paid_bounty(
            owner,
            "0.00",
            is_for_honor=True,
            work_type="in_person",
            location="Lyon",
            deadline=(timezone.now() + timedelta(days=7)).isoformat(),
        )
        self.bounty_ids += [open_paid.pk, honor.pk]

        # Accepted work goes to a new hunter each batch, whose pending count stays low.
        worker = UserFactory()
        for final_status in ("in_progress", "completed", "cancelled", "archived"):
            bounty = paid_bounty(owner, "25.00")
            accepted = application(bounty, worker, PITCH)
            bounties.request_accept(request_id=accepted.pk, user_id=owner.pk)
            self.bounty_ids.append(bounty.pk)
            self.request_ids.append(accepted.pk)
            if final_status == "in_progress":
                conversation, _ = messaging.conversation_open(
                    created_by=owner.pk, participant_ids={worker.pk}, bounty_id=bounty.pk
                )
                for sender in (owner, worker, owner):
                    messaging.message_send(
                        conversation_id=conversation.pk, sender_id=sender.pk, text=f"Update from {sender}."
                    )
                self.conversation_ids.append(conversation.pk)
                continue
            if final_status == "cancelled":
                bounties.bounty_cancel(bounty_id=bounty.pk, user_id=owner.pk)
                continue
            bounties.bounty_complete(bounty_id=bounty.pk, user_id=owner.pk)
            if final_status == "archived":
                bounties.bounty_archive(bounty_id=bounty.pk, user_id=owner.pk)

        # Someone else's bounties: the owner has applied to one (withdraw works) and may apply
        # to the other; it cannot act as their owner.
        theirs = paid_bounty(hunter, "30.00")
        self._apply(theirs, owner)
        self.bounty_ids += [theirs.pk, paid_bounty(third, "20.00").pk]

        # A group with messages, and a 1:1 conversation nobody wrote in yet (last_message null).
        group, _ = messaging.conversation_open(
            created_by=owner.pk, participant_ids={hunter.pk, third.pk}, name="Fuzz group"
        )
        messaging.message_send(conversation_id=group.pk, sender_id=third.pk, text="Hello all.")
        quiet, _ = messaging.conversation_open(created_by=owner.pk, participant_ids={third.pk})
        self.conversation_ids += [group.pk, quiet.pk]

    def _apply(self, bounty, hunter: User) -> None:
        # A hunter may have 10 pending applications; after many batches that limit is reached.
        with suppress(TooManyPendingRequests):
            self.request_ids.append(application(bounty, hunter, PITCH).pk)


def world_build() -> World:
    """A funded owner with a blank avatar (the API returns "" for it) and the first batch."""
    owner = funded_user("5000.00", avatar_url="")
    world = World(
        owner=owner,
        hunter=funded_user("1000.00"),
        third=funded_user("100.00"),
        token=token_issue(user=owner)[0],
    )
    world.replenish()
    return world
