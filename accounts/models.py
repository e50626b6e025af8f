from __future__ import annotations

from django.contrib.auth.models import AbstractUser, UserManager
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Upper


class CaseInsensitiveUserManager(UserManager):
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


class AuthToken(models.Model):
    """An API bearer token. Only its SHA-256 is stored: a leaked table grants nothing."""

    key_hash = models.CharField(max_length=64, primary_key=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="auth_tokens", db_index=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [
            # a user's tokens, newest first (admin list, revoking all tokens of a user)
            models.Index(fields=["user", "-created_at"], name="authtoken_user_created_idx"),
        ]

    def __str__(self) -> str:
        return f"token {self.key_hash[:8]}… of user {self.user_id}"
