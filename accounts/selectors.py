"""Reads of users and tokens."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from accounts import token_cache
from accounts.models import AuthToken, User
from accounts.tokens import hash_token

# The user fields authentication and permission checks need; the rest loads on demand.
AUTH_USER_FIELDS = ("id", "username", "is_active", "is_staff", "is_superuser")


# A token cache miss (a token not seen within AUTH_TOKEN_CACHE_SECONDS, or its entry ended by a
# change of access), written out: the ORM's join and values() were most of a cold token's cost,
# and a post made under a cold token (every churn writer's) spent a fifth of its CPU on it.
# The primary key answers it; tokens and users are read on the primary (core.db.replicas).
_USER_COLUMNS = ", ".join(f"u.{User._meta.get_field(name).column}" for name in AUTH_USER_FIELDS)
_TOKEN_SQL = f"""
SELECT t.expires_at, {_USER_COLUMNS}
FROM {AuthToken._meta.db_table} t JOIN {User._meta.db_table} u ON u.id = t.user_id
WHERE t.key_hash = %s AND t.expires_at > %s AND u.is_active
"""  # noqa: S608


def _user_from_cached(fields: dict[str, object]) -> User:
    # from_db takes values in the model's field order and marks the missing fields deferred:
    # reading user.email later loads it, never a blank.
    names = [f.attname for f in User._meta.concrete_fields if f.attname in fields]
    return User.from_db("default", names, [fields[name] for name in names])


def user_for_token(*, raw_token: str) -> User | None:
    """Return the active user owning an unexpired token, or None.

    Served from Redis when the token was seen in the last AUTH_TOKEN_CACHE_SECONDS, so an
    authenticated request that is itself served from cache touches no database. On a miss
    (or with Redis down, or the entry ended by a change of access) one query by primary key
    answers. Entries end the moment access changes: see accounts.token_cache.
    """
    key_hash = hash_token(raw_token)
    now = timezone.now()
    cached = token_cache.cached_owner(key_hash)
    if cached is None:
        with connection.cursor() as cursor:
            cursor.execute(_TOKEN_SQL, [key_hash, now])
            row = cursor.fetchone()
        if row is None:
            return None
        expires_at = row[0].timestamp()
        cached = {"expires_at": expires_at, "user": dict(zip(AUTH_USER_FIELDS, row[1:], strict=True))}
        ttl = min(settings.AUTH_TOKEN_CACHE_SECONDS, int(expires_at - now.timestamp()))
        token_cache.remember_owner(key_hash, cached, ttl)
    if cached["expires_at"] <= now.timestamp():
        return None
    return _user_from_cached(cached["user"])


def user_private_profile(*, user_id: int) -> User:
    """The caller's own profile, email included."""
    return User.objects.get(pk=user_id)


def profiles_public() -> QuerySet[User]:
    """Active users, as anyone may see them."""
    return User.objects.filter(is_active=True)
