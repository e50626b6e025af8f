"""The small demo dataset `make run` loads: a staff user and a few marketplace users."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from accounts.models import User

DEMO_ADMIN_USERNAME = "admin"
DEMO_USER_PASSWORD = "demo-password-2026"  # noqa: S105 (demo data, printed on start)
DEMO_USERS = [
    ("alice", "Alice Moreau", "Lyon", ["react", "typescript", "design"]),
    ("bob", "Bob Okafor", "Lagos", ["python", "django", "data"]),
    ("carol", "Carol Nguyen", "Toronto", ["mobile", "kotlin", "testing"]),
]


@dataclass(frozen=True)
class DemoSummary:
    admin_username: str
    admin_created: bool
    users: list[str]


@transaction.atomic
def demo_load(*, admin_password: str) -> DemoSummary:
    """Create (or reset the passwords of) the demo staff user and demo users; idempotent."""
    admin, admin_created = User.objects.get_or_create(
        username=DEMO_ADMIN_USERNAME,
        defaults={"email": "admin@bountyexpo.local", "is_staff": True, "is_superuser": True},
    )
    admin.set_password(admin_password)
    admin.save(update_fields=["password"])
    for username, display_name, location, skills in DEMO_USERS:
        user, _ = User.objects.get_or_create(
            username=username,
            defaults={
                "email": f"{username}@bountyexpo.local",
                "display_name": display_name,
                "location": location,
                "skills": skills,
            },
        )
        user.set_password(DEMO_USER_PASSWORD)
        user.save(update_fields=["password"])
    return DemoSummary(DEMO_ADMIN_USERNAME, admin_created, [name for name, *_ in DEMO_USERS])
