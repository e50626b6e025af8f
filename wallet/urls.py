from django.urls import path

from wallet import views

urlpatterns = [
    path("wallet", views.WalletView.as_view(), name="wallet"),
    path("wallet/transactions", views.TransactionListView.as_view(), name="wallet-transactions"),
    path("wallet/deposits", views.DepositView.as_view(), name="wallet-deposits"),
    path("wallet/withdrawals", views.WithdrawalView.as_view(), name="wallet-withdrawals"),
]
