from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DataError, InternalError, ProgrammingError
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import profiles_public
from bounties import errors, selectors, services
from bounties.caching import BOUNTY_DETAIL, BOUNTY_LIST, BOUNTY_SEARCH, USER_STATS
from bounties.errors import InvalidSearchQuery
from bounties.filters import BountyFilter, BountyOrdering, RankOrdering
from bounties.serializers import (
    BountyDetailSerializer,
    BountyListSerializer,
    BountyRequestCreateSerializer,
    BountyRequestSerializer,
    BountySearchResultSerializer,
    BountyUpdateSerializer,
    BountyWriteSerializer,
    RequestFilterSerializer,
    SearchQuerySerializer,
    UserStatsSerializer,
)
from core.hit_path import CachedRead, Tally
from core.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from core.pagination import CursorPagination
from core.response_cache import request_parts, write_through

logger = logging.getLogger("bountyexpo.search")

PUBLIC_ACTIONS = {"list", "retrieve", "search"}


def bounty_detail_payload(bounty_id: int) -> dict:
    """The cached detail body (the view and warm_cache share it)."""
    return BountyDetailSerializer(get_object_or_404(selectors.bounty_detail(), pk=bounty_id)).data


def _query_parts(request, url_kwargs: dict) -> tuple:
    return request_parts(request)


def _pk_parts(request, url_kwargs: dict) -> tuple:
    return (int(url_kwargs["pk"]),)


class _CountView:
    """A bounty detail's view count, sent in the lean hit path's round trip (core.hit_path)."""

    def tally(self, url_kwargs: dict) -> Tally:
        return Tally(*services.bounty_view_tally(bounty_id=int(url_kwargs["pk"])))

    def flush(self) -> None:
        services.bounty_views_flush()

    def undo(self, url_kwargs: dict) -> None:
        services.bounty_view_unrecord(bounty_id=int(url_kwargs["pk"]))


class BountyViewSet(viewsets.GenericViewSet):
    """Bounties: public reads; writes by their owner, with the rules in bounties.services."""

    # The reads core.hit_path answers from Redis before the stack: the same kinds and parts as
    # the actions below.
    cached_reads = {
        "list": CachedRead(BOUNTY_LIST, _query_parts),
        "search": CachedRead(BOUNTY_SEARCH, _query_parts),
        "retrieve": CachedRead(BOUNTY_DETAIL, _pk_parts, side_effect=_CountView()),
    }

    pagination_class = CursorPagination
    lookup_value_regex = r"\d+"
    filter_backends = [DjangoFilterBackend, BountyOrdering]
    filterset_class = BountyFilter
    serializer_class = BountyListSerializer
    rate_limit_tiers = {"list": "list", "search": "search"}

    def get_permissions(self):
        return [AllowAny()] if self.action in PUBLIC_ACTIONS else [IsAuthenticated()]

    def get_queryset(self):
        return selectors.bounty_list()

    def _detail(
        self,
        bounty_id: int,
        status_code: int = status.HTTP_200_OK,
        *,
        payload: Callable[[], dict] | None = None,
    ) -> Response:
        """The detail a write answers with, written through to the detail cache: the first
        read of a bounty just posted or changed is a hit, not a miss. ``payload`` builds it
        when the caller holds every field already; by default it is read back."""
        data = write_through(
            BOUNTY_DETAIL, (bounty_id,), payload or (lambda: bounty_detail_payload(bounty_id))
        )
        return Response(data, status=status_code)

    def _page(self, queryset, serializer_class) -> dict:
        page = self.paginate_queryset(self.filter_queryset(queryset))
        return self.get_paginated_response(serializer_class(page, many=True).data).data

    @extend_schema(responses={200: BountyListSerializer(many=True)})
    def list(self, request):
        """Cached per normalised query (CACHE_TTL_BOUNTY_LIST); X-Cache tells hit, miss or stale."""
        return self.cached_reads["list"].respond(
            request, self.kwargs, lambda: self._page(self.get_queryset(), BountyListSerializer)
        )

    @extend_schema(
        parameters=[SearchQuerySerializer], responses={200: BountySearchResultSerializer(many=True)}
    )
    @action(detail=False, methods=["get"], filter_backends=[DjangoFilterBackend, RankOrdering])
    def search(self, request):
        """Full-text search over title and description, best match first, with the list's filters.

        Cached per normalised query (CACHE_TTL_SEARCH)."""

        def compute() -> dict:
            params = SearchQuerySerializer(data=request.query_params)
            params.is_valid(raise_exception=True)
            queryset = selectors.bounty_search(text=params.validated_data["q"])
            try:
                return self._page(queryset, BountySearchResultSerializer)
            except (DataError, InternalError, ProgrammingError) as exc:
                # The text-search parser's own limits; any other SQL error is a bug: re-raised.
                if "tsquery" not in str(exc) and "text-search" not in str(exc):
                    raise
                logger.info("search refused by PostgreSQL: %s", exc)
                raise InvalidSearchQuery(fields={"q": [InvalidSearchQuery.default_detail]}) from None

        return self.cached_reads["search"].respond(request, self.kwargs, compute)

    @extend_schema(
        request=BountyWriteSerializer,
        responses={201: BountyDetailSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def create(self, request):
        serializer = BountyWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        bounty = services.bounty_create(owner_id=request.user.pk, data=serializer.validated_data)
        # The row as inserted holds every column the detail shows, and its owner is the caller:
        # no read back (tests/bounties/test_bounties_api.py compares it with one).
        bounty.owner = request.user
        return self._detail(
            bounty.pk, status.HTTP_201_CREATED, payload=lambda: BountyDetailSerializer(bounty).data
        )

    @extend_schema(responses={200: BountyDetailSerializer})
    def retrieve(self, request, pk: int):
        """Cached per bounty (CACHE_TTL_BOUNTY_DETAIL); every view is counted, cached or not."""
        bounty_id = int(pk)
        response = self.cached_reads["retrieve"].respond(
            request, self.kwargs, lambda: bounty_detail_payload(bounty_id)
        )
        try:
            if not getattr(request._request, "hit_path_effect_done", False):  # else counted (core.hit_path)
                services.bounty_view_record(bounty_id=bounty_id)
        except Exception:
            # This response is dropped unsent and never closed: run its refresh (which frees the
            # recompute lock) rather than hold the lock until it expires.
            if refresh := getattr(response, "refresh_cache", None):
                refresh()
            raise
        return response

    @extend_schema(request=BountyUpdateSerializer, responses={200: BountyDetailSerializer})
    def partial_update(self, request, pk: int):
        bounty = get_object_or_404(selectors.bounty_detail(), pk=pk)
        # Who asks is decided before what they sent: a stranger's refusal never depends on the
        # body (services.bounty_update checks again, under the row lock).
        if bounty.owner_id != request.user.pk:
            raise errors.NotBountyOwner()
        serializer = BountyUpdateSerializer(bounty, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.bounty_update(bounty_id=bounty.pk, user_id=request.user.pk, data=serializer.validated_data)
        return self._detail(bounty.pk)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk: int):
        services.bounty_delete(bounty_id=pk, user_id=request.user.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: BountyDetailSerializer}, parameters=[IDEMPOTENCY_PARAMETER])
    @action(detail=True, methods=["post"])
    @idempotent
    def complete(self, request, pk: int):
        services.bounty_complete(bounty_id=pk, user_id=request.user.pk)
        return self._detail(pk)

    @extend_schema(request=None, responses={200: BountyDetailSerializer}, parameters=[IDEMPOTENCY_PARAMETER])
    @action(detail=True, methods=["post"])
    @idempotent
    def cancel(self, request, pk: int):
        services.bounty_cancel(bounty_id=pk, user_id=request.user.pk)
        return self._detail(pk)

    @extend_schema(request=None, responses={200: BountyDetailSerializer})
    @action(detail=True, methods=["post"])
    def archive(self, request, pk: int):
        services.bounty_archive(bounty_id=pk, user_id=request.user.pk)
        return self._detail(pk)


class BountyRequestsView(mixins.ListModelMixin, viewsets.GenericViewSet):
    """/api/bounties/{id}/requests: the owner lists applications; anyone else applies."""

    serializer_class = BountyRequestSerializer
    pagination_class = CursorPagination

    def get_queryset(self):
        bounty = get_object_or_404(selectors.bounty_list(), pk=self.kwargs["bounty_pk"])
        if bounty.owner_id != self.request.user.pk:
            raise errors.NotBountyOwner("Only the bounty's owner can see its applications.")
        return selectors.requests_of_bounty(bounty_id=bounty.pk)

    @extend_schema(
        request=BountyRequestCreateSerializer,
        responses={201: BountyRequestSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def create(self, request, bounty_pk: int):
        serializer = BountyRequestCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.request_create(
            bounty_id=bounty_pk, hunter_id=request.user.pk, message=serializer.validated_data["message"]
        )
        # The row as inserted, with the bounty it locked (title and status as of this transaction)
        # and the caller as its hunter: no read back, as a bounty's post.
        created.hunter = request.user
        return Response(BountyRequestSerializer(created).data, status=status.HTTP_201_CREATED)


class RequestViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """/api/requests: my applications as a hunter, and the actions on one application."""

    serializer_class = BountyRequestSerializer
    pagination_class = CursorPagination
    lookup_value_regex = r"\d+"

    @extend_schema(parameters=[RequestFilterSerializer])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        filters = RequestFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.requests_of_hunter(hunter_id=self.request.user.pk, **filters.validated_data)

    def _respond(self, request_id: int) -> Response:
        application = selectors.requests().get(pk=request_id)
        return Response(BountyRequestSerializer(application).data)

    @extend_schema(request=None, responses={200: BountyRequestSerializer})
    @action(detail=True, methods=["post"])
    def accept(self, request, pk: int):
        services.request_accept(request_id=pk, user_id=request.user.pk)
        return self._respond(pk)

    @extend_schema(request=None, responses={200: BountyRequestSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk: int):
        services.request_reject(request_id=pk, user_id=request.user.pk)
        return self._respond(pk)

    @extend_schema(request=None, responses={200: BountyRequestSerializer})
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk: int):
        services.request_withdraw(request_id=pk, user_id=request.user.pk)
        return self._respond(pk)


class ProfileStatsView(APIView):
    """GET /api/profiles/{id}/stats: public figures, cached per user (CACHE_TTL_USER_STATS)."""

    permission_classes = [AllowAny]
    cached_reads = {"get": CachedRead(USER_STATS, _pk_parts)}

    @extend_schema(responses={200: UserStatsSerializer})
    def get(self, request, pk: int):
        def compute() -> dict:
            get_object_or_404(profiles_public().only("pk"), pk=pk)
            return UserStatsSerializer(selectors.user_stats(user_id=pk)).data

        return self.cached_reads["get"].respond(request, self.kwargs, compute)
