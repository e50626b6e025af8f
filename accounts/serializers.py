from __future__ import annotations

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from accounts.errors import UsernameTaken
from accounts.models import User
from core.serializers import ModelSerializer
from wallet.serializers import WalletSummarySerializer


class RegisterSerializer(serializers.Serializer):
    username = serializers.RegexField(
        r"^[A-Za-z0-9_.-]{3,30}$",
        error_messages={"invalid": "3 to 30 letters, digits, '_', '.' or '-'."},
    )
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128, trim_whitespace=False)

    def validate_username(self, value: str) -> str:
        if User.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError(UsernameTaken.default_detail, code="username_taken")
        return value

    def validate(self, attrs):
        # Validators such as UserAttributeSimilarity compare the password with the username.
        candidate = User(username=attrs["username"], email=attrs["email"])
        try:
            password_validation.validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from None
        return attrs


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


class PublicProfileSerializer(ModelSerializer):
    created_at = serializers.DateTimeField(source="date_joined", read_only=True)
    # A plain string, not format uri: profiles without an avatar return "".
    avatar_url = serializers.CharField(
        read_only=True, help_text="The avatar's http(s) URL, or an empty string when there is none."
    )

    class Meta:
        model = User
        fields = ["id", "username", "display_name", "avatar_url", "bio", "location", "skills", "created_at"]
        read_only_fields = fields


class PrivateProfileSerializer(PublicProfileSerializer):
    """The owner's view of a profile: adds email and the last update time."""

    # A plain string, not format email: the owner may clear it (PATCH "email": ""), and Django
    # accepts internationalised domains that JSON Schema's "email" format does not.
    email = serializers.CharField(
        read_only=True, help_text="The address given at registration or since, or an empty string."
    )

    class Meta(PublicProfileSerializer.Meta):
        fields = [*PublicProfileSerializer.Meta.fields, "email", "updated_at"]
        read_only_fields = fields


class OwnProfileSerializer(PrivateProfileSerializer):
    """``GET /api/profiles/{id}`` for the profile's owner: the private fields and the wallet
    summary. Nobody else is ever given it, and it is never cached (accounts.views)."""

    wallet = WalletSummarySerializer(source="wallet_summary", read_only=True)

    class Meta(PrivateProfileSerializer.Meta):
        fields = [*PrivateProfileSerializer.Meta.fields, "wallet"]
        read_only_fields = fields


class ProfileUpdateSerializer(ModelSerializer):
    skills = serializers.ListField(
        child=serializers.CharField(max_length=40, allow_blank=False), max_length=30, required=False
    )

    class Meta:
        model = User
        fields = ["display_name", "avatar_url", "bio", "location", "skills", "email"]
        extra_kwargs = {"email": {"required": False}}
