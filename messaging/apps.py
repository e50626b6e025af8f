from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self) -> None:
        from messaging import caching  # noqa: F401  (connects the cache invalidation signals)
