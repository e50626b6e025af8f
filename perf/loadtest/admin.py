"""Load-test runs in the admin (the monitor's pages are in perf/monitor/).

Three pages, staff only (the admin site sends anonymous users to its login page and answers a
signed-in non-staff user 403):

- the list of runs (``/admin/perf/loadtestrun/``): one line per run, numbers rounded for
  people; select two and run the "Compare" action;
- a run (``/admin/perf/loadtestrun/<id>/change/``): the change page replaced by the run's
  report, charts and tables (pages.py builds them); only the notes are editable;
- two runs compared (``/admin/perf/loadtestrun/compare/?before=<id>&after=<id>``).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import JSONField, QuerySet
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode

from perf.loadtest import pages
from perf.models import LoadTestRun

# The metrics of the failed checks, computed by PostgreSQL: the list shows "fail: RPS" without
# loading each run's ~50 KB of stored data (history, queries, report).
FAILED_CHECKS = RawSQL(
    """jsonb_path_query_array("perf_loadtestrun"."data", '$.checks[*] ? (@.status == "fail").metric')""",
    (),
    output_field=JSONField(),
)


class RunChangeList(ChangeList):
    """The list without the stored data, with each run's failed checks."""

    def get_queryset(self, request: HttpRequest, exclude_parameters=None) -> QuerySet:
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer("data").annotate(failed_checks=FAILED_CHECKS)


class NotesForm(forms.ModelForm):
    class Meta:
        model = LoadTestRun
        fields = ("notes",)
        widgets = {"notes": forms.Textarea(attrs={"rows": 4, "class": "vLargeTextField"})}


@admin.register(LoadTestRun)
class LoadTestRunAdmin(admin.ModelAdmin):
    list_display = (
        "run",
        "profile",
        "users",
        "duration",
        "p95",
        "p99",
        "errors",
        "throughput",
        "verdict",
        "date",
    )
    list_display_links = ("run",)
    list_filter = ("profile", "passed")
    search_fields = ("profile", "host", "notes")
    ordering = ("-started_at",)
    actions = ("compare_runs",)
    change_list_template = "admin/perf/loadtest/change_list.html"

    class Media:
        css = {"all": ("perf/monitor.css", "perf/loadtest.css")}

    # --- the list ----------------------------------------------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[ChangeList]:
        return RunChangeList

    @admin.display(description="run", ordering="pk")
    def run(self, run: LoadTestRun) -> str:
        return f"#{run.pk}"

    @admin.display(description="users", ordering="max_users")
    def users(self, run: LoadTestRun) -> str:
        return pages.whole(run.max_users)

    @admin.display(description="duration s", ordering="duration_s")
    def duration(self, run: LoadTestRun) -> str:
        return pages.whole(run.duration_s)

    @admin.display(description="p95 ms", ordering="p95_ms")
    def p95(self, run: LoadTestRun) -> str:
        return pages.whole(run.p95_ms)

    @admin.display(description="p99 ms", ordering="p99_ms")
    def p99(self, run: LoadTestRun) -> str:
        return pages.whole(run.p99_ms)

    @admin.display(description="errors %", ordering="error_rate")
    def errors(self, run: LoadTestRun) -> str:
        return pages.percent(run.error_rate)

    @admin.display(description="RPS", ordering="rps")
    def throughput(self, run: LoadTestRun) -> str:
        return pages.rate(run.rps)

    @admin.display(description="verdict", ordering="passed")
    def verdict(self, run: LoadTestRun) -> str:
        verdict = pages.verdict(run.passed)
        failed = pages.failed_checks(getattr(run, "failed_checks", None))
        return format_html(
            '<span class="perf-level perf-level-{}">{}</span>{}',
            verdict["level"],
            verdict["word"],
            format_html(' <span class="lt-failed">{}</span>', failed) if failed else "",
        )

    @admin.display(description="date (UTC)", ordering="started_at")
    def date(self, run: LoadTestRun) -> str:
        return f"{timezone.localtime(run.started_at):%Y-%m-%d %H:%M}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs come from `manage.py loadtest`

    # --- compare -----------------------------------------------------------------------------

    @admin.action(description="Compare the two selected runs", permissions=["view"])
    def compare_runs(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        runs = list(queryset.order_by("started_at", "pk").values_list("pk", flat=True)[:3])
        if len(runs) != 2:
            self.message_user(request, "Select exactly two runs to compare.", messages.WARNING)
            return None
        return HttpResponseRedirect(self.compare_url(*runs))

    def compare_url(self, before: int, after: int) -> str:
        opts = self.opts
        url = reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_compare")
        return f"{url}?{urlencode({'before': before, 'after': after})}"

    def get_urls(self):
        opts = self.opts
        return [
            path(
                "compare/",
                self.admin_site.admin_view(self.compare_view),
                name=f"{opts.app_label}_{opts.model_name}_compare",
            ),
            *super().get_urls(),
        ]

    def compare_view(self, request: HttpRequest) -> HttpResponse:
        """Two runs side by side: ``?before=<id>&after=<id>``, in that order."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = reverse(
            f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_changelist"
        )
        try:
            ids = int(request.GET["before"]), int(request.GET["after"])
        except (KeyError, ValueError):
            self.message_user(request, "Choose two runs to compare (before and after).", messages.WARNING)
            return HttpResponseRedirect(changelist)
        found = {run.pk: run for run in self.get_queryset(request).filter(pk__in=ids)}
        if ids[0] == ids[1] or len(found) != 2:
            self.message_user(request, "Choose two different runs that exist.", messages.WARNING)
            return HttpResponseRedirect(changelist)
        before, after = (found[pk] for pk in ids)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Run #{before.pk} against run #{after.pk}",
            "swap_url": self.compare_url(after.pk, before.pk),
            **pages.compare_context(before, after),
        }
        return TemplateResponse(request, "admin/perf/loadtest/compare.html", context)

    # --- a run -------------------------------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        """The run page instead of a form over the stored JSON; POST saves the notes."""
        run = self.get_object(request, unquote(object_id))
        if run is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, run):
            raise PermissionDenied
        can_edit = self.has_change_permission(request, run)
        form = NotesForm(instance=run)
        if request.method == "POST":
            if not can_edit:
                raise PermissionDenied
            form = NotesForm(request.POST, instance=run)
            if form.is_valid():
                form.save()
                self.log_change(request, run, self.construct_change_message(request, form, None))
                self.message_user(request, "Notes saved.", messages.SUCCESS)
                return HttpResponseRedirect(request.path)
        others = (
            LoadTestRun.objects.exclude(pk=run.pk)
            .only("pk", "profile", "started_at")
            .order_by("-started_at")[:100]
        )
        previous = (
            LoadTestRun.objects.filter(profile=run.profile, started_at__lt=run.started_at)
            .order_by("-started_at")
            .values_list("pk", flat=True)
            .first()
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Run #{run.pk}: {run.profile}, {timezone.localtime(run.started_at):%Y-%m-%d %H:%M} UTC",
            "run": run,
            "notes_form": form,
            "can_edit_notes": can_edit,
            "can_delete": self.has_delete_permission(request, run),
            "compare_runs": others,
            "compare_default": previous,
            "compare_action": reverse(
                f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_compare"
            ),
            "previous_url": self.compare_url(previous, run.pk) if previous else "",
            **pages.run_context(run),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/perf/loadtest/run.html", context)
