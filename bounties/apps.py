from django.apps import AppConfig


class BountiesConfig(AppConfig):
    name = "bounties"

    def ready(self) -> None:
        from bounties import caching  # noqa: F401  (connects the cache invalidation signals)
