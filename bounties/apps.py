from django.apps import AppConfig


class BountiesConfig(AppConfig):
    name = "bounties"
