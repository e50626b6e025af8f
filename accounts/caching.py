"""Cached public profiles (core/response_cache.py); a saved user invalidates its own entry
once the transaction commits, whoever saved it (API, admin, a service); the user reads it at
once, everyone else within CACHE_PUBLIC_LAG_SECONDS."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import User
from accounts.serializers import PublicProfileSerializer
from core.response_cache import CachedKind, invalidate_on_commit

PROFILE = CachedKind("profile", "CACHE_TTL_PROFILE", PublicProfileSerializer)


@receiver(post_save, sender=User, dispatch_uid="profile-cache-save")
@receiver(post_delete, sender=User, dispatch_uid="profile-cache-delete")
def _user_changed(sender, instance: User, **kwargs) -> None:
    invalidate_on_commit([(PROFILE, (instance.pk,))], authors=(instance.pk,))
