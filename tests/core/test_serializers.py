"""core.serializers.ModelSerializer builds a class's fields once: every instance still gets fields
of its own (bound to it, free to change), answering and validating as DRF's own would."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from bounties.models import Bounty
from bounties.serializers import BountyDetailSerializer, BountyListSerializer, BountyWriteSerializer
from core.serializers import ModelSerializer
from tests.factories import bounty_data, paid_bounty

pytestmark = pytest.mark.django_db


class PlainDetail(serializers.ModelSerializer):
    """The detail serializer as DRF alone would build it (the reference)."""

    owner_username = serializers.CharField(source="owner.username", read_only=True)
    hunter_username = serializers.CharField(
        source="hunter.username", read_only=True, default=None, allow_null=True
    )

    class Meta(BountyDetailSerializer.Meta):
        pass


def test_every_instance_gets_fields_of_its_own_bound_to_itself():
    first, second = BountyDetailSerializer(), BountyDetailSerializer()
    assert list(first.fields) == list(second.fields)
    for name in first.fields:
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name].parent is first and second.fields[name].parent is second
    first.fields["title"].read_only = False
    first.fields.pop("description")
    assert BountyDetailSerializer().fields["title"].read_only is True
    assert "description" in BountyDetailSerializer().fields


def test_output_is_what_drf_alone_gives():
    bounty = Bounty.objects.select_related("owner", "hunter").get(pk=paid_bounty().pk)
    assert BountyDetailSerializer(bounty).data == PlainDetail(bounty).data
    assert BountyDetailSerializer(bounty).data == BountyDetailSerializer(bounty).data  # built, then copied


def test_validation_is_what_drf_alone_gives_again_and_again():
    class PlainWrite(serializers.ModelSerializer):
        class Meta:
            model = Bounty
            fields = BountyWriteSerializer.Meta.fields

    bad = {"title": "", "category": "no-such-category", "amount": "-1"}
    for _ in range(2):
        write = BountyWriteSerializer(data=bad)
        assert not write.is_valid()
        assert set(write.errors) >= {"title", "category", "amount", "description"}
        good = BountyWriteSerializer(data=bounty_data(amount="12.00"))
        assert good.is_valid(), good.errors
    # A field DRF builds from the model keeps the model's rules (choices here).
    plain = PlainWrite(data={**bounty_data(amount="12.00"), "category": "no-such-category"})
    ours = BountyWriteSerializer(data={**bounty_data(amount="12.00"), "category": "no-such-category"})
    assert not plain.is_valid() and not ours.is_valid()
    assert ours.errors["category"] == plain.errors["category"]


def test_each_class_keeps_its_own_fields():
    """A subclass never reuses its parent's fields (search adds rank, detail adds more)."""
    assert "description" not in BountyListSerializer().fields
    assert "description" in BountyDetailSerializer().fields
    assert "description" not in BountyListSerializer().fields


def test_the_project_serializers_use_it():
    from accounts.serializers import PublicProfileSerializer
    from messaging.serializers import MessageSerializer
    from wallet.serializers import TransactionSerializer

    for cls in (
        BountyListSerializer,
        BountyWriteSerializer,
        PublicProfileSerializer,
        MessageSerializer,
        TransactionSerializer,
    ):
        assert issubclass(cls, ModelSerializer)
