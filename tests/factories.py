from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import factory

from accounts.models import User
from bounties.serializers import BountyWriteSerializer
from bounties.services import bounty_create, request_create
from wallet.services import deposit_create

DEFAULT_PASSWORD = "a-Long-enough-passw0rd"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password(DEFAULT_PASSWORD)
    display_name = factory.Faker("name")
    location = factory.Faker("city")


def bounty_data(**overrides) -> dict:
    """A valid bounty creation body (API field names)."""
    data = {
        "title": "Build a landing page for a bakery",
        "description": "A responsive single page with menu, opening hours and a contact form, in React.",
        "amount": "80.00",
        "category": "web",
        "work_type": "online",
    }
    data.update(overrides)
    return data


def funded_user(balance: str = "100.00", **fields) -> User:
    """A user whose wallet holds ``balance``, credited through a real deposit."""
    user = UserFactory(**fields)
    if Decimal(balance) > 0:
        deposit_create(
            user_id=user.pk, amount=Decimal(balance), reference=f"seed-{user.pk}-{uuid4().hex[:8]}"
        )
    return user


def paid_bounty(owner: User | None = None, amount: str = "80.00", **overrides):
    """A paid bounty created through the service, so its escrow is taken from the owner."""
    owner = owner or funded_user(amount)
    serializer = BountyWriteSerializer(data=bounty_data(amount=amount, **overrides))
    serializer.is_valid(raise_exception=True)
    return bounty_create(owner_id=owner.pk, data=serializer.validated_data)


def application(bounty, hunter: User | None = None, message: str | None = None):
    hunter = hunter or UserFactory()
    return request_create(
        bounty_id=bounty.pk, hunter_id=hunter.pk, message=message or "I have done this before. " * 3
    )
