"""The profile's cache (accounts/caching.py): the owner's private profile is never cached, the
public one is shared, and an edit shows to everyone at once."""

from __future__ import annotations

import pytest

from tests.caching import read, warm
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_owner_sees_an_uncached_private_profile_and_everyone_else_the_cached_public_one(bounty):
    owner = client_for(bounty.owner)
    url = f"/api/profiles/{bounty.owner_id}"

    mine = owner.get(url)
    theirs = client_for(UserFactory()).get(url)

    assert mine["X-Cache"] == "miss"
    assert "email" in mine.json()
    assert theirs["X-Cache"] == "miss"
    assert "email" not in theirs.json()
    assert owner.get(url)["X-Cache"] == "miss"  # never cached
    assert client_for(UserFactory()).get(url)["X-Cache"] == "hit"
    assert "email" not in client_for(UserFactory()).get(url).json()
    assert mine["Vary"] == theirs["Vary"] == "Authorization"


def test_editing_a_profile_shows_to_everyone(anonymous, bounty, committed):
    url = f"/api/profiles/{bounty.owner_id}"
    warm(anonymous, url)

    with committed():
        response = client_for(bounty.owner).patch(url, {"bio": "Bakes and designs."}, format="json")
    assert response.status_code == 200

    assert read(anonymous, url, "miss")["bio"] == "Bakes and designs."
