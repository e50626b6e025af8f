from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractUser, UserManager
from django.contrib.postgres.fields import ArrayField
from django.db import models, transaction
from django.db.models.functions import Upper

from accounts import token_cache

# The user's columns that decide whether, and as whom, a bearer token authenticates: a change to
# any of them ends the cached access of the user's tokens (accounts.token_cache).
ACCESS_FIELDS = frozenset({"is_active", "password", "username", "is_staff", "is_superuser"})


class UserQuerySet(models.QuerySet):
    def update(self, **kwargs):
        """``QuerySet.update()`` (and ``bulk_update()``, which calls it) bypasses model signals:
        when it touches an access field, the updated users' cached tokens end here too, and a
        new password revokes their tokens."""
        touched = ACCESS_FIELDS & kwargs.keys()
        if not touched:
            return super().update(**kwargs)
        with transaction.atomic(using=self.db):
            user_ids = list(self.values_list("pk", flat=True))
            # Update exactly the rows whose tokens are ended below.
            count = User._base_manager.using(self.db).filter(pk__in=user_ids).update(**kwargs)
            user_access_changed(user_ids=user_ids, revoke_tokens="password" in touched)
        return count


class CaseInsensitiveUserManager(UserManager.from_queryset(UserQuerySet)):
    """Usernames are unique and looked up regardless of case ("Alice" is "alice")."""

    def get_by_natural_key(self, username):
        # iexact compiles to UPPER(username) = UPPER(%s), matching the unique index below.
        return self.get(username__iexact=username)


class User(AbstractUser):
    """A marketplace user; the profile lives on the same row to keep reads to one table."""

    display_name = models.CharField(max_length=80, blank=True)
    avatar_url = models.URLField(max_length=500, blank=True)
    bio = models.TextField(max_length=1000, blank=True)
    location = models.CharField(max_length=120, blank=True)
    skills = ArrayField(models.CharField(max_length=40), size=30, default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CaseInsensitiveUserManager()

    class Meta:
        constraints = [
            # registration and login: case-insensitive username lookup and uniqueness
            models.UniqueConstraint(Upper("username"), name="user_username_ci_uniq"),
        ]

    def __str__(self) -> str:
        return self.username


class AuthTokenQuerySet(models.QuerySet):
    def update(self, **kwargs):
        """A bulk change to tokens (an earlier expiry, say) must not leave the old rows cached."""
        with transaction.atomic(using=self.db):
            key_hashes = list(self.values_list("key_hash", flat=True))
            count = AuthToken._base_manager.using(self.db).filter(key_hash__in=key_hashes).update(**kwargs)
            token_cache.evict_on_commit(key_hashes)
        return count


class AuthToken(models.Model):
    """An API bearer token. Only its SHA-256 is stored: a leaked table grants nothing."""

    key_hash = models.CharField(max_length=64, primary_key=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="auth_tokens", db_index=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    objects = AuthTokenQuerySet.as_manager()

    class Meta:
        indexes = [
            # a user's tokens, newest first (admin list, revoking all tokens of a user)
            models.Index(fields=["user", "-created_at"], name="authtoken_user_created_idx"),
        ]

    def __str__(self) -> str:
        return f"token {self.key_hash[:8]}… of user {self.user_id}"


def user_access_changed(*, user_ids: Iterable[int], revoke_tokens: bool = False) -> None:
    """End the cached access of these users' tokens once the transaction commits; with
    ``revoke_tokens`` (a new password), delete the tokens themselves, so every client signs in
    again, as Django logs out sessions on a password change."""
    tokens = AuthToken._base_manager.filter(user_id__in=list(user_ids))
    if revoke_tokens:
        # Through the collector, so accounts.revocation's post_delete evicts each token.
        tokens.delete()
    else:
        token_cache.evict_on_commit(tokens.values_list("key_hash", flat=True))
