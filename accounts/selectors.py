"""Reads of users and tokens."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import AuthToken, User
from accounts.tokens import hash_token
from core.cache_keys import make_key

# The user fields authentication and permission checks need; the rest loads on demand.
AUTH_USER_FIELDS = ("id", "username", "is_active", "is_staff", "is_superuser")


def token_cache_key(key_hash: str) -> str:
    return make_key("auth-token", key_hash)


def _user_from_cached(fields: dict[str, object]) -> User:
    # from_db takes values in the model's field order and marks the missing fields deferred:
    # reading user.email later loads it, never a blank.
    names = [f.attname for f in User._meta.concrete_fields if f.attname in fields]
    return User.from_db("default", names, [fields[name] for name in names])


def user_for_token(*, raw_token: str) -> User | None:
    """Return the active user owning an unexpired token, or None.

    Served from Redis when the token was seen in the last AUTH_TOKEN_CACHE_SECONDS, so an
    authenticated request that is itself served from cache touches no database. On a miss
    (or with Redis down) one query by primary key answers.
    """
    key_hash = hash_token(raw_token)
    key = token_cache_key(key_hash)
    now = timezone.now()
    cached = cache.get(key)
    if cached is None:
        row = (
            AuthToken.objects.filter(key_hash=key_hash, expires_at__gt=now, user__is_active=True)
            .values("expires_at", *(f"user__{field}" for field in AUTH_USER_FIELDS))
            .first()
        )
        if row is None:
            return None
        expires_at = row["expires_at"].timestamp()
        cached = {
            "expires_at": expires_at,
            "user": {field: row[f"user__{field}"] for field in AUTH_USER_FIELDS},
        }
        ttl = min(settings.AUTH_TOKEN_CACHE_SECONDS, int(expires_at - now.timestamp()))
        if ttl > 0:
            cache.set(key, cached, timeout=ttl)
    if cached["expires_at"] <= now.timestamp():
        return None
    return _user_from_cached(cached["user"])


def user_private_profile(*, user_id: int) -> User:
    """The caller's own profile, email included."""
    return User.objects.get(pk=user_id)


def profiles_public() -> QuerySet[User]:
    """Active users, as anyone may see them."""
    return User.objects.filter(is_active=True)
