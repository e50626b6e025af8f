from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q

SEARCH_CONFIG = "english"


class BountyStatus(models.TextChoices):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ARCHIVED = "archived"


class WorkType(models.TextChoices):
    ONLINE = "online"
    IN_PERSON = "in_person"


class Category(models.TextChoices):
    WEB = "web"
    MOBILE = "mobile"
    DESIGN = "design"
    DATA = "data"
    WRITING = "writing"
    TESTING = "testing"
    MARKETING = "marketing"
    ERRANDS = "errands"
    OTHER = "other"


class BountyQuerySet(models.QuerySet):
    def open(self) -> BountyQuerySet:
        return self.filter(status=BountyStatus.OPEN)


class VisibleBountyManager(models.Manager.from_queryset(BountyQuerySet)):
    """Bounties deleted through the API stay in the table for the ledger; nobody sees them."""

    def get_queryset(self) -> BountyQuerySet:
        return super().get_queryset().filter(deleted_at__isnull=True)


class Bounty(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bounties", db_index=False
    )
    title = models.CharField(max_length=200)
    description = models.TextField(max_length=5000)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    is_for_honor = models.BooleanField(default=False)
    category = models.CharField(max_length=20, choices=Category.choices, default=Category.OTHER)
    location = models.CharField(max_length=120, blank=True)
    work_type = models.CharField(max_length=20, choices=WorkType.choices, default=WorkType.ONLINE)
    is_time_sensitive = models.BooleanField(default=False)
    deadline = models.DateTimeField(null=True, blank=True)
    skills_required = ArrayField(models.CharField(max_length=40), size=20, default=list, blank=True)
    status = models.CharField(max_length=20, choices=BountyStatus.choices, default=BountyStatus.OPEN)
    hunter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="hunted_bounties",
        db_index=False,
    )
    view_count = models.BigIntegerField(default=0)
    # Maintained by PostgreSQL from title (weight A) and description (weight B); the search
    # query filters on this very column, so the GIN index below always matches it.
    search_vector = models.GeneratedField(
        expression=SearchVector("title", weight="A", config=SEARCH_CONFIG)
        + SearchVector("description", weight="B", config=SEARCH_CONFIG),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = VisibleBountyManager()
    all_objects = BountyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "bounties"
        indexes = [
            # guide: bounties(status); status counts and admin filter
            models.Index(fields=["status"], name="bounty_status_idx"),
            # guide: bounties(created_at desc); lists across statuses, newest first
            models.Index(fields=["-created_at"], name="bounty_created_idx"),
            # bounty list: status filter (default open), newest first, cursor on created_at
            models.Index(fields=["status", "-created_at"], name="bounty_status_created_idx"),
            # bounty list: status filter ordered by amount (either direction)
            models.Index(fields=["status", "amount"], name="bounty_status_amount_idx"),
            # bounty list: status filter ordered by soonest deadline (rows with a deadline)
            models.Index(
                fields=["status", "deadline"],
                name="bounty_status_deadline_idx",
                condition=Q(deadline__isnull=False),
            ),
            # bounty list: category pages (warm_cache), newest first
            models.Index(fields=["status", "category", "-created_at"], name="bounty_status_cat_created_idx"),
            # guide: bounties(user); an owner's bounties, newest first
            models.Index(fields=["owner", "-created_at"], name="bounty_owner_created_idx"),
            # bounties a hunter works on (hunter filter, profile stats)
            models.Index(
                fields=["hunter", "-created_at"],
                name="bounty_hunter_created_idx",
                condition=Q(hunter__isnull=False),
            ),
            # guide: full-text over title and description (english); bounty search
            GinIndex(fields=["search_vector"], name="bounty_search_gin"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gte=0, amount__lte=10_000), name="bounty_amount_range"
            ),
            # Paid bounties have an amount; "for honor" ones are unpaid.
            models.CheckConstraint(
                condition=Q(is_for_honor=True, amount=0) | Q(is_for_honor=False, amount__gt=0),
                name="bounty_honor_iff_unpaid",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[BountyStatus.IN_PROGRESS, BountyStatus.COMPLETED])
                | Q(hunter__isnull=False),
                name="bounty_worked_has_hunter",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


# A hunter may have at most this many applications pending at once (bounties.services).
MAX_PENDING_REQUESTS = 10


class RequestStatus(models.TextChoices):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class BountyRequest(models.Model):
    """A hunter's application to work on a bounty."""

    bounty = models.ForeignKey(Bounty, on_delete=models.CASCADE, related_name="requests", db_index=False)
    hunter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bounty_requests", db_index=False
    )
    message = models.TextField(max_length=1000)
    status = models.CharField(max_length=20, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # a bounty's applications for its owner, and rejecting the other pending ones on accept
            models.Index(fields=["bounty", "status", "-created_at"], name="request_bounty_status_idx"),
            # "my applications" list and the 10-pending-per-hunter check
            models.Index(fields=["hunter", "status", "-created_at"], name="request_hunter_status_idx"),
        ]
        constraints = [
            # one application per hunter and bounty; its index also serves bounty lookups
            models.UniqueConstraint(fields=["bounty", "hunter"], name="request_one_per_hunter"),
            # at most one accepted application per bounty, whatever races happen
            models.UniqueConstraint(
                fields=["bounty"], condition=Q(status=RequestStatus.ACCEPTED), name="request_one_accepted"
            ),
        ]

    def __str__(self) -> str:
        return f"request #{self.pk} on bounty {self.bounty_id} by user {self.hunter_id}"
