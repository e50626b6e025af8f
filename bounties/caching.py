"""What bounties cache and when it is invalidated (core/response_cache.py does the rest).

Invalidation follows the rows, not the endpoints: a saved or deleted Bounty (through the API,
the admin or a service) bumps its detail counter, the family counter of every list and search
page, and the stats counters of its owner and hunter, once the transaction commits. Its owner,
its hunter and the request's signed-in user read the change at once; everyone else within
CACHE_PUBLIC_LAG_SECONDS (the freshness contract, core/response_cache.py). Bulk
``.update()`` calls skip signals; the only one touching cached fields is the view-count flush,
and view counts are allowed to lag by the cache TTL.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from bounties.models import Bounty
from bounties.serializers import (
    BountyDetailSerializer,
    BountyListSerializer,
    BountySearchResultSerializer,
    UserStatsSerializer,
)
from core.response_cache import CachedKind, invalidate_on_commit

BOUNTY_DETAIL = CachedKind("bounty-detail", "CACHE_TTL_BOUNTY_DETAIL", BountyDetailSerializer)
BOUNTY_LIST = CachedKind("bounty-list", "CACHE_TTL_BOUNTY_LIST", BountyListSerializer, family="bounties")
BOUNTY_SEARCH = CachedKind(
    "bounty-search", "CACHE_TTL_SEARCH", BountySearchResultSerializer, family="bounties"
)
USER_STATS = CachedKind("user-stats", "CACHE_TTL_USER_STATS", UserStatsSerializer)


@receiver(post_save, sender=Bounty, dispatch_uid="bounty-cache-save")
@receiver(post_delete, sender=Bounty, dispatch_uid="bounty-cache-delete")
def _bounty_changed(sender, instance: Bounty, **kwargs) -> None:
    entries = [(BOUNTY_DETAIL, (instance.pk,)), (BOUNTY_LIST, ()), (USER_STATS, (instance.owner_id,))]
    if instance.hunter_id is not None:
        entries.append((USER_STATS, (instance.hunter_id,)))
    invalidate_on_commit(entries, authors=(instance.owner_id, instance.hunter_id))
