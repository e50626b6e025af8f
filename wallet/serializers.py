from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from core.serializers import ModelSerializer
from wallet.models import TransactionType, WalletTransaction


def money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=12, decimal_places=2, **kwargs)


class WalletSummarySerializer(serializers.Serializer):
    balance = money(read_only=True)
    pending = money(read_only=True)
    available = money(read_only=True)


class TransactionSerializer(ModelSerializer):
    amount = money(read_only=True)

    class Meta:
        model = WalletTransaction
        fields = ["id", "type", "amount", "status", "bounty_id", "description", "created_at"]
        read_only_fields = fields


class TransactionFilterSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=TransactionType.choices, required=False)


class DepositSerializer(serializers.Serializer):
    amount = money(min_value=Decimal("1.00"), max_value=Decimal("100000.00"))
    reference = serializers.RegexField(
        r"^[A-Za-z0-9_.:-]{4,100}$",
        error_messages={"invalid": "4 to 100 letters, digits, '_', '.', ':' or '-'."},
    )


class WithdrawalSerializer(serializers.Serializer):
    amount = money(min_value=Decimal("0.01"), max_value=Decimal("100000.00"))
