from __future__ import annotations

from django.contrib.auth import authenticate
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.caching import PROFILE
from accounts.errors import InvalidCredentials
from accounts.serializers import (
    OwnProfileSerializer,
    PrivateProfileSerializer,
    ProfileUpdateSerializer,
    PublicProfileSerializer,
    RegisterSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)
from core.response_cache import cached_response, uncached_response
from wallet.selectors import wallet_summary


class RegisterView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    rate_limit_tiers = {"POST": "auth"}

    @extend_schema(request=RegisterSerializer, responses={201: PrivateProfileSerializer})
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_register(**serializer.validated_data)
        return Response(PrivateProfileSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenView(APIView):
    rate_limit_tiers = {"POST": "auth"}

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated()]

    def perform_authentication(self, request):
        # Logging in must work even when the client still sends an expired token.
        if request.method != "POST":
            super().perform_authentication(request)

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenSerializer})
    def post(self, request):
        """Exchange a username (any case) and password for a bearer token."""
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(request._request, **serializer.validated_data)
        if user is None:
            raise InvalidCredentials()
        raw, token = services.token_issue(user=user)
        return Response(TokenSerializer({"token": raw, "expires_at": token.expires_at}).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        """Revoke the token this request was made with (log out)."""
        services.token_revoke(raw_token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(responses={200: PrivateProfileSerializer})
    def get(self, request):
        user = selectors.user_private_profile(user_id=request.user.pk)
        return Response(PrivateProfileSerializer(user).data)


class ProfileView(APIView):
    def get_permissions(self):
        # HEAD and OPTIONS read as GET does.
        return [AllowAny()] if self.request.method in SAFE_METHODS else super().get_permissions()

    @extend_schema(
        responses={
            200: OpenApiResponse(
                PublicProfileSerializer,
                description="The public fields. The profile's owner also gets `email`, `updated_at` "
                "and `wallet` (`balance`, `pending`, `available`).",
            )
        },
    )
    def get(self, request, pk: int):
        """Anyone may read a profile; its owner also sees the private fields and the wallet
        summary.

        The public view is cached per user (CACHE_TTL_PROFILE), one copy for every reader; the
        owner's own view is never cached."""
        if request.user.pk == pk:
            user = get_object_or_404(selectors.profiles_public(), pk=pk)
            user.wallet_summary = wallet_summary(user_id=pk)
            return uncached_response(request, OwnProfileSerializer(user).data)
        return cached_response(
            request,
            PROFILE,
            (pk,),
            lambda: PublicProfileSerializer(get_object_or_404(selectors.profiles_public(), pk=pk)).data,
        )

    @extend_schema(request=ProfileUpdateSerializer, responses={200: PrivateProfileSerializer})
    def patch(self, request, pk: int):
        user = get_object_or_404(selectors.profiles_public(), pk=pk)
        if user.pk != request.user.pk:
            raise PermissionDenied("Only the owner can edit a profile.")
        serializer = ProfileUpdateSerializer(user, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.profile_update(user=user, data=serializer.validated_data)
        return Response(PrivateProfileSerializer(user).data)
