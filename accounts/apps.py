from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and profiles"

    def ready(self) -> None:
        # Cache signals (profiles, token revocation) and the OpenAPI extension.
        from accounts import caching, revocation, schema  # noqa: F401
