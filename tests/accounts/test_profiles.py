from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from tests.conftest import client_for
from tests.factories import UserFactory, funded_user, paid_bounty

pytestmark = pytest.mark.django_db


def profile_url(user) -> str:
    return f"/api/profiles/{user.pk}"


def test_anyone_reads_public_profile_without_email(api_client, user):
    response = api_client.get(profile_url(user))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == user.pk
    assert body["username"] == user.username
    assert "email" not in body


def test_owner_sees_private_fields_of_own_profile(user, user_client):
    body = user_client.get(profile_url(user)).json()

    assert body["email"] == user.email


def test_other_user_does_not_see_email(user):
    other_client = client_for(UserFactory())

    assert "email" not in other_client.get(profile_url(user)).json()


def test_unknown_or_inactive_profile_is_404(api_client):
    inactive = UserFactory(is_active=False)

    assert api_client.get("/api/profiles/999999").json()["error"]["code"] == "not_found"
    assert api_client.get(profile_url(inactive)).status_code == 404


def test_owner_updates_profile_fields(user, user_client):
    response = user_client.patch(
        profile_url(user),
        {"bio": "I fix things.", "skills": ["python", "sql"], "location": "Oslo"},
        format="json",
    )

    assert response.status_code == 200
    user.refresh_from_db()
    assert (user.bio, user.skills, user.location) == ("I fix things.", ["python", "sql"], "Oslo")
    assert response.json()["skills"] == ["python", "sql"]


def test_editing_someone_elses_profile_is_forbidden_and_changes_nothing(user):
    intruder = client_for(UserFactory())

    response = intruder.patch(profile_url(user), {"bio": "pwned"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert User.objects.get(pk=user.pk).bio == user.bio


def test_anonymous_edit_is_401(api_client, user):
    assert api_client.patch(profile_url(user), {"bio": "x"}, format="json").status_code == 401


def test_invalid_profile_values_are_rejected_and_change_nothing(user, user_client):
    response = user_client.patch(
        profile_url(user), {"avatar_url": "not a url", "skills": ["x" * 41]}, format="json"
    )

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"avatar_url", "skills"}
    assert User.objects.get(pk=user.pk).avatar_url == user.avatar_url


def test_the_owner_alone_sees_a_wallet_summary_on_the_profile_and_it_is_never_cached():
    owner = funded_user("100.00")
    paid_bounty(owner, amount="40.00")  # 40.00 held in escrow
    mine, stranger = client_for(owner), client_for(UserFactory())

    first = mine.get(profile_url(owner))
    public = stranger.get(profile_url(owner)).json()
    mine.post("/api/wallet/deposits", {"amount": "10.00", "reference": "psp-profile-1"}, format="json")
    second = mine.get(profile_url(owner)).json()

    assert first.json()["wallet"] == {"balance": "100.00", "pending": "40.00", "available": "60.00"}
    assert first["X-Cache"] == "miss"  # computed for the owner every time, never stored
    assert second["wallet"] == {"balance": "110.00", "pending": "40.00", "available": "70.00"}
    assert "wallet" not in public and "email" not in public
    assert "wallet" not in APIClient().get(profile_url(owner)).json()


def test_a_profile_owner_without_a_wallet_sees_zeros(user, user_client):
    body = user_client.get(profile_url(user)).json()

    assert body["wallet"] == {"balance": "0.00", "pending": "0.00", "available": "0.00"}
