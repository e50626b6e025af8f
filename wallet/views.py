from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from core.idempotency import IDEMPOTENCY_HEADER, IDEMPOTENCY_PARAMETER, idempotent
from core.pagination import CursorPagination
from wallet import selectors, services
from wallet.serializers import (
    DepositSerializer,
    TransactionFilterSerializer,
    TransactionSerializer,
    WalletSummarySerializer,
    WithdrawalSerializer,
)


class WalletView(APIView):
    @extend_schema(responses={200: WalletSummarySerializer})
    def get(self, request):
        return Response(WalletSummarySerializer(selectors.wallet_summary(user_id=request.user.pk)).data)


class TransactionListView(ListAPIView):
    serializer_class = TransactionSerializer
    pagination_class = CursorPagination

    @extend_schema(parameters=[TransactionFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = TransactionFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.transactions_for(user_id=self.request.user.pk, **filters.validated_data)


class DepositView(APIView):
    rate_limit_tiers = {"POST": "money"}

    @extend_schema(
        request=DepositSerializer, responses={201: TransactionSerializer}, parameters=[IDEMPOTENCY_PARAMETER]
    )
    @idempotent
    def post(self, request):
        serializer = DepositSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        transaction = services.deposit_create(
            user_id=request.user.pk,
            idempotency_key=request.headers.get(IDEMPOTENCY_HEADER, ""),
            **serializer.validated_data,
        )
        return Response(TransactionSerializer(transaction).data, status=status.HTTP_201_CREATED)


class WithdrawalView(APIView):
    rate_limit_tiers = {"POST": "money"}

    @extend_schema(
        request=WithdrawalSerializer,
        responses={201: TransactionSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def post(self, request):
        serializer = WithdrawalSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        transaction = services.withdrawal_create(
            user_id=request.user.pk,
            idempotency_key=request.headers.get(IDEMPOTENCY_HEADER, ""),
            **serializer.validated_data,
        )
        return Response(TransactionSerializer(transaction).data, status=status.HTTP_201_CREATED)
