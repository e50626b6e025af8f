"""Access ends at once: a token whose owner is cached in Redis stops working the moment its
user is deactivated, deleted or given a new password, or the token is deleted, by any path."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import redis
from django.contrib.auth.hashers import make_password
from django.test import Client
from django.utils import timezone

from accounts import token_cache
from accounts.models import AuthToken, User
from accounts.selectors import user_for_token
from accounts.services import token_issue
from accounts.tokens import hash_token
from bounties.models import Bounty
from tests.conftest import assert_error, client_for
from tests.factories import DEFAULT_PASSWORD, UserFactory, bounty_data, funded_user
from wallet.models import WalletAccount

# Every change below commits for real: evictions run on commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

ME = "/api/me"


def warm_client(user):
    """A signed-in client whose token's owner is now cached in Redis."""
    client = client_for(user)
    assert client.get(ME).status_code == 200
    assert token_cache.cached_owner(hash_token(client.token)) is not None
    return client


def admin_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def admin_user_form(user: User, **changes) -> dict:
    """The admin's user change form as a browser would post it back, with ``changes``."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "display_name": user.display_name,
        "avatar_url": user.avatar_url,
        "bio": user.bio,
        "location": user.location,
        "skills": "",
    }
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


# --- deactivation ----------------------------------------------------------------------------


def test_user_deactivated_in_the_admin_cannot_withdraw_or_post_with_a_cached_token():
    user = funded_user("200.00")
    client = warm_client(user)

    form = admin_user_form(user, is_active=None)  # the box unticked
    response = admin_client().post(f"/admin/accounts/user/{user.pk}/change/", form)

    assert response.status_code == 302, response.content[:2000]
    assert User.objects.get(pk=user.pk).is_active is False
    withdrawal = client.post("/api/wallet/withdrawals", {"amount": "50.00"}, format="json")
    assert_error(withdrawal, 401, "invalid_token")
    assert_error(client.post("/api/bounties", bounty_data(), format="json"), 401, "invalid_token")
    assert WalletAccount.objects.get(user=user).balance == Decimal("200.00")
    assert not Bounty.objects.filter(owner=user).exists()


def test_user_deactivated_by_a_model_save_is_refused_at_once():
    user = UserFactory()
    client = warm_client(user)

    user.is_active = False
    user.save()

    assert_error(client.get(ME), 401, "invalid_token")


def test_user_deactivated_by_queryset_update_is_refused_at_once():
    user = UserFactory()
    client = warm_client(user)

    User.objects.filter(pk=user.pk).update(is_active=False)

    assert_error(client.get(ME), 401, "invalid_token")


def test_users_deactivated_by_bulk_update_are_refused_at_once():
    users = [UserFactory(), UserFactory()]
    clients = [warm_client(user) for user in users]
    for user in users:
        user.is_active = False

    User.objects.bulk_update(users, ["is_active"])

    for client in clients:
        assert_error(client.get(ME), 401, "invalid_token")


def test_reactivated_user_signs_in_again_with_the_same_token():
    user = UserFactory()
    client = warm_client(user)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert client.get(ME).status_code == 401

    User.objects.filter(pk=user.pk).update(is_active=True)

    assert client.get(ME).status_code == 200


def test_staff_flag_removed_is_seen_at_once_by_a_cached_token():
    user = UserFactory(is_staff=True)
    client = warm_client(user)

    User.objects.filter(pk=user.pk).update(is_staff=False)

    assert user_for_token(raw_token=client.token).is_staff is False


# --- deletion --------------------------------------------------------------------------------


def test_deleted_user_with_a_cached_token_gets_401_not_500():
    user = UserFactory()
    client = warm_client(user)

    user.delete()

    assert_error(client.get(ME), 401, "invalid_token")
    assert_error(client.get("/api/wallet"), 401, "invalid_token")


def test_user_deleted_in_the_admin_gets_401():
    user = UserFactory()
    client = warm_client(user)

    response = admin_client().post(f"/admin/accounts/user/{user.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert_error(client.get(ME), 401, "invalid_token")


@pytest.mark.parametrize("path", ["orm-instance", "orm-queryset", "admin"])
def test_token_deleted_by_any_path_stops_working_at_once(path):
    user = UserFactory()
    client = warm_client(user)
    token = AuthToken.objects.get(key_hash=hash_token(client.token))

    if path == "orm-instance":
        token.delete()
    elif path == "orm-queryset":
        AuthToken.objects.filter(user=user).delete()
    else:
        response = admin_client().post(f"/admin/accounts/authtoken/{token.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302

    assert_error(client.get(ME), 401, "invalid_token")


def test_token_expired_early_by_queryset_update_stops_working_at_once():
    user = UserFactory()
    client = warm_client(user)

    AuthToken.objects.filter(user=user).update(expires_at=timezone.now())

    assert_error(client.get(ME), 401, "invalid_token")


# --- passwords -------------------------------------------------------------------------------


def test_new_password_revokes_every_token_of_the_user():
    user = UserFactory()
    phone, laptop = warm_client(user), warm_client(user)
    other = warm_client(UserFactory())

    user.set_password("another-Long-passw0rd")
    user.save()

    assert_error(phone.get(ME), 401, "invalid_token")
    assert_error(laptop.get(ME), 401, "invalid_token")
    assert not AuthToken.objects.filter(user=user).exists()
    assert other.get(ME).status_code == 200


def test_password_changed_in_the_admin_revokes_tokens():
    user = UserFactory()
    client = warm_client(user)

    response = admin_client().post(
        f"/admin/accounts/user/{user.pk}/password/",
        {"password1": "another-Long-passw0rd", "password2": "another-Long-passw0rd"},
    )

    assert response.status_code == 302, response.content[:2000]
    assert_error(client.get(ME), 401, "invalid_token")


def test_password_set_by_queryset_update_revokes_tokens():
    user = UserFactory()
    client = warm_client(user)

    User.objects.filter(pk=user.pk).update(password=make_password("another-Long-passw0rd"))

    assert_error(client.get(ME), 401, "invalid_token")
    assert not AuthToken.objects.filter(user=user).exists()


def test_unusable_password_revokes_tokens():
    user = UserFactory()
    client = warm_client(user)

    user.set_unusable_password()
    user.save()

    assert_error(client.get(ME), 401, "invalid_token")


def test_password_rehash_on_login_keeps_tokens(settings):
    """A hasher upgrade rehashes the same password at the next login: not a new password."""
    user = UserFactory()
    client = warm_client(user)
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    old_hash = user.password

    assert user.check_password(DEFAULT_PASSWORD)  # rehashes with the preferred hasher and saves

    assert User.objects.get(pk=user.pk).password != old_hash
    assert client.get(ME).status_code == 200


def test_profile_edit_keeps_the_cached_token():
    user = UserFactory()
    client = warm_client(user)

    response = client.patch(f"/api/profiles/{user.pk}", {"bio": "Ten years of React."}, format="json")

    assert response.status_code == 200
    assert token_cache.cached_owner(hash_token(client.token)) is not None


# --- races and Redis failures ----------------------------------------------------------------


def test_a_lookup_that_raced_a_deactivation_cannot_store_the_old_answer():
    """A request read the token in PostgreSQL just before the deactivation committed, and
    tries to cache that (now stale) answer after the eviction: the tombstone refuses it."""
    user = UserFactory()
    raw, token = token_issue(user=user)
    stale = {"expires_at": token.expires_at.timestamp(), "user": {"id": user.pk, "username": user.username,
             "is_active": True, "is_staff": False, "is_superuser": False}}  # fmt: skip

    User.objects.filter(pk=user.pk).update(is_active=False)  # commits and evicts
    token_cache.remember_owner(token.key_hash, stale, ttl=300)  # the slow reader stores late

    assert token_cache.cached_owner(token.key_hash) is None
    assert user_for_token(raw_token=raw) is None


def test_an_eviction_redis_missed_is_applied_before_a_cached_token_is_trusted(own_redis):
    """Redis refuses writes for a moment (CLIENT PAUSE WRITE) as the deactivation commits:
    the eviction fails, is kept, and this process asks PostgreSQL until it succeeds."""
    user = UserFactory()
    client = warm_client(user)
    raw = redis.Redis(port=own_redis.port)

    raw.execute_command("CLIENT", "PAUSE", 1500, "WRITE")
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert token_cache._missed  # the eviction timed out and is kept
    assert_error(client.get(ME), 401, "invalid_token")  # PostgreSQL answered, not the old entry
    time.sleep(1.6)  # writes flow again

    assert_error(client.get(ME), 401, "invalid_token")
    assert not token_cache._missed
    assert token_cache.cached_owner(hash_token(client.token)) is None
