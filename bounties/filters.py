"""Query parameters of the bounty list and search: filters (django-filter) and ordering."""

from __future__ import annotations

import django_filters
from django.conf import settings
from django.db.models import Subquery
from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend

from bounties.models import Bounty, BountyStatus, Category, WorkType
from bounties.selectors import newest_matches


class BountyFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=BountyStatus.choices)
    category = django_filters.ChoiceFilter(choices=Category.choices)
    work_type = django_filters.ChoiceFilter(choices=WorkType.choices)
    owner = django_filters.NumberFilter(field_name="owner_id")
    hunter = django_filters.NumberFilter(field_name="hunter_id")
    min_amount = django_filters.NumberFilter(field_name="amount", lookup_expr="gte")
    max_amount = django_filters.NumberFilter(field_name="amount", lookup_expr="lte")
    # Strict: "true" or "false"; django-filter's BooleanFilter would ignore "perhaps" silently.
    is_for_honor = django_filters.TypedChoiceFilter(
        choices=[("true", "true"), ("false", "false")], coerce=lambda value: value == "true"
    )
    location = django_filters.CharFilter(lookup_expr="iexact", max_length=120)

    class Meta:
        model = Bounty
        fields = ["status", "category", "work_type", "owner", "hunter", "is_for_honor", "location"]

    def __init__(self, data=None, *args, **kwargs):
        # The list shows open bounties unless another status is asked for.
        if data is not None and not data.get("status"):
            data = data.copy()
            data["status"] = BountyStatus.OPEN
        super().__init__(data, *args, **kwargs)

    def get_form_class(self):
        """django-filter builds a new form class, and a new form field per filter, on every
        request; these filters are the same for every request (no per-request filters, no
        ``method=``), so the class is built once. Each form still deep-copies its fields, as
        every Django form does (about 0.4 ms of a computed list page; docs/perf/write-path.md)."""
        form_class = type(self).__dict__.get("_form_class")
        if form_class is None:
            form_class = super().get_form_class()
            type(self)._form_class = form_class  # two threads may both build it: the same class
        return form_class


ORDERINGS = {
    "-created_at": ("-created_at",),
    "amount": ("amount",),
    "-amount": ("-amount",),
    "deadline": ("deadline",),
}


class BountyOrdering(BaseFilterBackend):
    """`?ordering=` one of ORDERINGS (default -created_at); read by the cursor paginator too.

    Ordering by deadline lists only bounties that have one: a cursor cannot page over NULLs.
    """

    param = "ordering"
    default = "-created_at"

    def get_ordering(self, request, queryset, view) -> tuple[str, ...]:
        value = request.query_params.get(self.param, self.default)
        if value not in ORDERINGS:
            raise ValidationError({self.param: [f"Must be one of: {', '.join(ORDERINGS)}."]})
        return ORDERINGS[value]

    def filter_queryset(self, request, queryset, view):
        ordering = self.get_ordering(request, queryset, view)
        if ordering == ("deadline",):
            queryset = queryset.filter(deadline__isnull=False)
        return queryset.order_by(*ordering)

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.param,
                "required": False,
                "in": "query",
                "schema": {"type": "string", "enum": list(ORDERINGS), "default": self.default},
            }
        ]


class RankOrdering(BountyOrdering):
    """Search results: best match first, among the newest SEARCH_RANK_CANDIDATES matches of the
    filters (selectors.newest_matches)."""

    # Equal ranks are common (one-word titles, the same words): the newest first among them,
    # so a page, its cache entry and the next page's offset always see one order.
    ordering = ("-rank", "-pk")

    def get_ordering(self, request, queryset, view) -> tuple[str, ...]:
        return self.ordering

    def filter_queryset(self, request, queryset, view):
        """The ranked window; its later pages keep the first page's window (pinned in the
        cursor: bounties posted since are not in it), so paging neither skips the matches that
        newer posts pushed out nor shows them twice."""
        paginator = getattr(view, "paginator", None)
        pin = paginator.pin(request) if paginator is not None else None
        if pin is not None:
            queryset = queryset.filter(pk__lte=pin)
        ranked = newest_matches(queryset, settings.SEARCH_RANK_CANDIDATES).order_by(*self.ordering)
        if paginator is not None and pin is None:  # a first page: its cursors' bound, same query
            newest_id = Bounty.all_objects.order_by("-pk").values("pk")[:1]
            ranked = ranked.annotate(**{paginator.pin_annotation: Subquery(newest_id)})
        return ranked

    def get_schema_operation_parameters(self, view):
        return []
