"""The small demo dataset `make run` loads: a staff user, three marketplace users with wallet
history, bounties in every status, applications, and conversations tied to the bounties
whose applications were accepted. Loading it again changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from accounts.models import User
from bounties import services as bounties
from bounties.models import Bounty
from messaging import services as messaging
from wallet import services as wallet

DEMO_ADMIN_USERNAME = "admin"
DEMO_USER_PASSWORD = "demo-password-2026"  # noqa: S105 (demo data, printed on start)
DEMO_USERS = [
    ("alice", "Alice Moreau", "Lyon", ["react", "typescript", "design"]),
    ("bob", "Bob Okafor", "Lagos", ["python", "django", "data"]),
    ("carol", "Carol Nguyen", "Toronto", ["mobile", "kotlin", "testing"]),
]
PITCH = "I have done this kind of work many times; I can start tomorrow and deliver within the week."


@dataclass(frozen=True)
class DemoBounty:
    owner: str
    title: str
    description: str
    amount: str
    category: str
    status: str  # where the demo leaves it
    hunter: str | None = None


DEMO_BOUNTIES = [
    DemoBounty(
        "alice",
        "Landing page for a neighbourhood bakery",
        "A responsive single page in React with the menu, opening hours and a contact form; "
        "the bakery provides photos and copy.",
        "120.00",
        "web",
        "open",
    ),
    DemoBounty(
        "alice",
        "Fix crashes in our Android delivery app",
        "The Kotlin app crashes when the phone rotates during checkout. "
        "Reproduce, fix and add a regression test.",
        "200.00",
        "mobile",
        "in_progress",
        "carol",
    ),
    DemoBounty(
        "alice",
        "Clean up a customer spreadsheet",
        "Deduplicate about 3,000 customer rows in Excel, normalise phone numbers and flag missing emails.",
        "60.00",
        "data",
        "completed",
        "bob",
    ),
    DemoBounty(
        "bob",
        "Logo for a community football club",
        "A simple, bold logo in two colours, delivered as SVG and PNG, for shirts and the website.",
        "90.00",
        "design",
        "cancelled",
    ),
    DemoBounty(
        "bob",
        "End-to-end tests for a Django checkout",
        "Write pytest and Playwright tests that cover the happy path "
        "and the three most common payment failures.",
        "150.00",
        "testing",
        "archived",
        "carol",
    ),
    DemoBounty(
        "carol",
        "Proofread a volunteer handbook",
        "Twelve pages of plain English that need a careful read for typos, tone and consistency; "
        "for honour, credit in the preface.",
        "0.00",
        "writing",
        "open",
    ),
]


@dataclass(frozen=True)
class DemoSummary:
    admin_username: str
    users: list[str]
    bounties_created: int


def _user(username: str, display_name: str, location: str, skills: list[str]) -> User:
    user, created = User.objects.get_or_create(
        username=username,
        defaults={
            "email": f"{username}@bountyexpo.local",
            "display_name": display_name,
            "location": location,
            "skills": skills,
        },
    )
    _reset_password(user, DEMO_USER_PASSWORD)
    if created:
        wallet.deposit_create(user_id=user.pk, amount=Decimal("500.00"), reference=f"demo-{username}-1")
        wallet.withdrawal_create(user_id=user.pk, amount=Decimal("25.00"))
    return user


def _chat(bounty_id: int, owner_id: int, hunter_id: int) -> None:
    """A short exchange in the conversation that accepting opened."""
    conversation, _ = messaging.conversation_open(
        created_by=owner_id, participant_ids={hunter_id}, bounty_id=bounty_id
    )
    for sender, text in [
        (owner_id, "Welcome aboard! The brief is in the description; ask me anything."),
        (hunter_id, "Thanks, starting today. I will send a first version by Thursday."),
        (owner_id, "Perfect, talk then."),
    ]:
        messaging.message_send(conversation_id=conversation.pk, sender_id=sender, text=text)


def _bounty(users: dict[str, User], spec: DemoBounty) -> None:
    owner_id = users[spec.owner].pk
    amount = Decimal(spec.amount)
    data = {
        "title": spec.title,
        "description": spec.description,
        "amount": amount,
        "is_for_honor": amount == 0,
        "category": spec.category,
    }
    bounty = bounties.bounty_create(owner_id=owner_id, data=data)
    others = [name for name in users if name not in (spec.owner, spec.hunter)]
    for name in [*others, *([spec.hunter] if spec.hunter else [])]:
        request = bounties.request_create(bounty_id=bounty.pk, hunter_id=users[name].pk, message=PITCH)
        if name == spec.hunter:
            bounties.request_accept(request_id=request.pk, user_id=owner_id)
            _chat(bounty.pk, owner_id, users[name].pk)
    if spec.status in ("completed", "archived"):
        bounties.bounty_complete(bounty_id=bounty.pk, user_id=owner_id)
    if spec.status == "cancelled":
        bounties.bounty_cancel(bounty_id=bounty.pk, user_id=owner_id)
    if spec.status == "archived":
        bounties.bounty_archive(bounty_id=bounty.pk, user_id=owner_id)


def _reset_password(user: User, password: str) -> None:
    # Only when it differs: a new password revokes the user's API tokens (accounts.revocation),
    # and a restart of `make run` should not sign the demo users out.
    if not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])


@transaction.atomic
def demo_load(*, admin_password: str) -> DemoSummary:
    """Create (or reset the passwords of) the demo staff user and demo users, and on the first
    run their wallets and bounties, all through the services so the ledger stays consistent."""
    admin, _ = User.objects.get_or_create(
        username=DEMO_ADMIN_USERNAME,
        defaults={"email": "admin@bountyexpo.local", "is_staff": True, "is_superuser": True},
    )
    _reset_password(admin, admin_password)
    users = {spec[0]: _user(*spec) for spec in DEMO_USERS}
    created = 0
    for spec in DEMO_BOUNTIES:
        if not Bounty.all_objects.filter(owner=users[spec.owner], title=spec.title).exists():
            _bounty(users, spec)
            created += 1
    return DemoSummary(DEMO_ADMIN_USERNAME, list(users), created)
