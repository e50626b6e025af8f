from __future__ import annotations

from decimal import Decimal

from django.utils import timezone
from rest_framework import serializers

from bounties.models import Bounty, BountyRequest, WorkType
from core.serializers import ModelSerializer

MAX_AMOUNT = Decimal("10000.00")


class BountyListSerializer(ModelSerializer):
    """Slim rows for lists and search; the fields are loaded by selectors.LIST_FIELDS."""

    owner_username = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = Bounty
        fields = [
            "id",
            "title",
            "amount",
            "is_for_honor",
            "category",
            "location",
            "work_type",
            "is_time_sensitive",
            "deadline",
            "status",
            "owner_id",
            "owner_username",
            "hunter_id",
            "view_count",
            "created_at",
        ]
        read_only_fields = fields


class BountySearchResultSerializer(BountyListSerializer):
    rank = serializers.FloatField(read_only=True)

    class Meta(BountyListSerializer.Meta):
        fields = [*BountyListSerializer.Meta.fields, "rank"]
        read_only_fields = fields


class BountyDetailSerializer(BountyListSerializer):
    # None until a hunter is accepted (the schema must say so: allow_null).
    hunter_username = serializers.CharField(
        source="hunter.username", read_only=True, default=None, allow_null=True
    )

    class Meta(BountyListSerializer.Meta):
        fields = [
            *BountyListSerializer.Meta.fields,
            "hunter_username",
            "description",
            "skills_required",
            "updated_at",
        ]
        read_only_fields = fields


class BountyWriteSerializer(ModelSerializer):
    title = serializers.CharField(min_length=10, max_length=200)
    description = serializers.CharField(min_length=50, max_length=5000)
    amount = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=Decimal("0.00"), max_value=MAX_AMOUNT, required=False
    )
    skills_required = serializers.ListField(
        child=serializers.CharField(max_length=40), max_length=20, required=False
    )

    class Meta:
        model = Bounty
        fields = [
            "title",
            "description",
            "amount",
            "is_for_honor",
            "category",
            "location",
            "work_type",
            "is_time_sensitive",
            "deadline",
            "skills_required",
        ]

    def validate_deadline(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("The deadline must be in the future.")
        return value

    def validate(self, attrs):
        errors: dict[str, list[str]] = {}
        if self.instance is None:
            honor = attrs.get("is_for_honor", False)
            amount = attrs.setdefault("amount", Decimal("0.00") if honor else None)
            if honor and amount != 0:
                errors["amount"] = ["A bounty for honor has no amount (0)."]
            elif not honor and not amount:
                errors["amount"] = ["A paid bounty needs an amount above 0 (or set is_for_honor)."]
        work_type = attrs.get("work_type", getattr(self.instance, "work_type", WorkType.ONLINE))
        location = attrs.get("location", getattr(self.instance, "location", ""))
        if work_type == WorkType.IN_PERSON and not location:
            errors["location"] = ["In-person work needs a location."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class BountyUpdateSerializer(BountyWriteSerializer):
    """Edits: the money fields are fixed at creation (the escrow was taken for that amount)."""

    FIXED = ("amount", "is_for_honor")

    def validate(self, attrs):
        fixed = [name for name in self.FIXED if name in self.initial_data]
        if fixed:
            raise serializers.ValidationError(
                {name: ["Cannot be changed after creation; cancel and post a new bounty."] for name in fixed}
            )
        return super().validate(attrs)


class BountyRequestSerializer(ModelSerializer):
    """An application as its owner and its hunter see it; fields by selectors.REQUEST_FIELDS."""

    bounty_title = serializers.CharField(source="bounty.title", read_only=True)
    bounty_status = serializers.CharField(source="bounty.status", read_only=True)
    hunter_username = serializers.CharField(source="hunter.username", read_only=True)

    class Meta:
        model = BountyRequest
        fields = [
            "id",
            "bounty_id",
            "bounty_title",
            "bounty_status",
            "hunter_id",
            "hunter_username",
            "message",
            "status",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class BountyRequestCreateSerializer(serializers.Serializer):
    message = serializers.CharField(min_length=50, max_length=1000)


class RequestFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=BountyRequest._meta.get_field("status").choices, required=False)


class UserStatsSerializer(serializers.Serializer):
    """GET /api/profiles/{id}/stats (bounties.selectors.user_stats)."""

    user_id = serializers.IntegerField()
    bounties_posted = serializers.IntegerField(help_text="Visible bounties the user posted.")
    bounties_completed = serializers.IntegerField(help_text="Of those, the ones in status completed.")
    bounties_as_hunter = serializers.IntegerField(help_text="Bounties the user was accepted to work on.")
    hunter_completed = serializers.IntegerField(help_text="Of those, the ones in status completed.")
    total_earned = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        help_text="Payments received for completed work, after platform fees.",
    )


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(min_length=1, max_length=200)
