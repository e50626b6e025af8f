from __future__ import annotations

import factory

from accounts.models import User

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
