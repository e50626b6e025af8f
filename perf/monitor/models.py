"""The perf admin's pages, one unmanaged model each: no table, only a place in the admin (its
index lists them under "Perf", its URLs and permissions come with them). See pages.py."""

from __future__ import annotations

from django.db import models


class MonitorPage(models.Model):
    class Meta:
        abstract = True
        managed = False
        default_permissions = ("view",)

    def __str__(self) -> str:
        return str(self._meta.verbose_name)


class Overview(MonitorPage):
    class Meta(MonitorPage.Meta):
        verbose_name = verbose_name_plural = "overview"


class ConnectionPool(MonitorPage):
    class Meta(MonitorPage.Meta):
        verbose_name = verbose_name_plural = "connection pool"


class QueryStats(MonitorPage):
    class Meta(MonitorPage.Meta):
        verbose_name = verbose_name_plural = "queries"


class IndexUsage(MonitorPage):
    class Meta(MonitorPage.Meta):
        verbose_name = verbose_name_plural = "indexes and space"


class LiveQuery(MonitorPage):
    class Meta(MonitorPage.Meta):
        verbose_name = verbose_name_plural = "live queries"


class CacheStats(MonitorPage):
    class Meta(MonitorPage.Meta):
        verbose_name = verbose_name_plural = "cache"
