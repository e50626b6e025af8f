"""Writes for accounts: registration, tokens, profile edits. Each one is a transaction.

Caches: a saved or deleted User invalidates its cached public profile (accounts/caching.py);
a password change, deactivation or deleted token evicts the cached token owners
(accounts/revocation.py, accounts/token_cache.py). Both are signal receivers, so the admin and
the ORM invalidate the same way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.errors import UsernameTaken
from accounts.models import AuthToken, User
from accounts.tokens import generate_token, hash_token


def user_register(*, username: str, email: str, password: str) -> User:
    """Create a user with a hashed password; the username is unique regardless of case."""
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, email=email, password=password)
    except IntegrityError:
        # Two registrations raced past the serializer's check; the unique index decided.
        raise UsernameTaken(fields={"username": [UsernameTaken.default_detail]}) from None


@transaction.atomic
def token_issue(*, user: User) -> tuple[str, AuthToken]:
    """Create a token for ``user``; returns the raw token (shown once) and its row."""
    raw = generate_token()
    token = AuthToken.objects.create(
        key_hash=hash_token(raw),
        user=user,
        expires_at=timezone.now() + timedelta(days=settings.AUTH_TOKEN_TTL_DAYS),
    )
    return raw, token


@transaction.atomic
def token_revoke(*, raw_token: str) -> None:
    """Delete a token; its cached owner is evicted once the deletion is committed
    (accounts.revocation, as for a token deleted by any other path)."""
    AuthToken.objects.filter(key_hash=hash_token(raw_token)).delete()


PROFILE_EDITABLE_FIELDS = ("display_name", "avatar_url", "bio", "location", "skills", "email")


@transaction.atomic
def profile_update(*, user: User, data: dict[str, Any]) -> User:
    """Apply validated profile fields to the user's row (only the fields given)."""
    changed = [field for field in PROFILE_EDITABLE_FIELDS if field in data]
    for field in changed:
        setattr(user, field, data[field])
    if changed:
        user.save(update_fields=[*changed, "updated_at"])
    return user
