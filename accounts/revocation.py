"""Access ends at once, whatever path changed it.

Bearer tokens' owners are cached in Redis (accounts.token_cache). These receivers end that
cached access when the database changes under it through a model save or delete: the API, the
admin, the ORM, management commands (``changepassword``, a shell) and cascades alike.
``QuerySet.update()`` and ``bulk_update()`` skip signals; accounts.models' querysets handle
them. Raw SQL is the one path left: after writing users or tokens in SQL, clear the token cache
(``seed_data`` does).

- A token deleted (logout, admin, a deleted user's cascade): its entry is evicted on commit.
- A user saved with a change to an access field (``ACCESS_FIELDS``: deactivated, username,
  staff flags, password): every token of the user is evicted on commit, so the next request
  reads PostgreSQL, which refuses inactive users.
- A new password (``set_password``, or an unusable one): the user's tokens are deleted too. A
  hasher upgrade that rehashes the same password on login is not a new password.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from accounts import token_cache
from accounts.models import ACCESS_FIELDS, AuthToken, User, user_access_changed


@receiver(post_delete, sender=AuthToken, dispatch_uid="token-cache-evict-deleted")
def _token_deleted(sender, instance: AuthToken, **kwargs) -> None:
    token_cache.evict_on_commit([instance.key_hash])


@receiver(pre_save, sender=User, dispatch_uid="token-cache-user-before")
def _remember_access_before(sender, instance: User, update_fields=None, raw=False, **kwargs) -> None:
    instance._access_changes = frozenset()
    if raw or instance._state.adding or instance.pk is None:
        return  # a new user has no tokens yet
    fields = ACCESS_FIELDS if update_fields is None else ACCESS_FIELDS & set(update_fields)
    if not fields:
        return  # profile edits (update_fields) cost nothing here
    before = User._base_manager.using(instance._state.db).filter(pk=instance.pk).values(*fields).first()
    if before is None:
        return
    instance._access_changes = frozenset(name for name in fields if before[name] != getattr(instance, name))


@receiver(post_save, sender=User, dispatch_uid="token-cache-user-after")
def _access_saved(sender, instance: User, created: bool, raw=False, **kwargs) -> None:
    changes = getattr(instance, "_access_changes", frozenset())
    if created or raw or not changes:
        return
    # AbstractBaseUser.set_password leaves the raw password in _password until save() ends;
    # the rehash on login clears it first, so a hasher upgrade revokes nothing.
    new_password = "password" in changes and (
        instance._password is not None or not instance.has_usable_password()
    )
    user_access_changed(user_ids=[instance.pk], revoke_tokens=new_password)
