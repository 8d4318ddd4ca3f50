"""Analysts run settlements and browse / download the results; results are read-only records."""

from pathlib import Path

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.urls import path, reverse
from django.utils.html import format_html_join

from settlement import services
from settlement.models import ActivationResult, ImbalancePrice, IspResult, SettlementRun
from smatch.admin import ReadOnlyAdmin


class IspInline(admin.TabularInline):
    model = IspResult
    extra = 0
    can_delete = False
    readonly_fields = ["isp_start", "baseline_kwh", "delivered_kwh", "shed_kwh", "price_eur_per_mwh", "value_eur"]

    def has_add_permission(self, request, obj=None):
        return False


class RunForm(forms.ModelForm):
    """A run's rules are the service's (`check_run`), as for the API and the `settle` command."""

    def clean(self):
        data = super().clean()
        if self.instance.pk is None and not self.errors:
            try:
                services.check_run(data["period_from"], data["period_to"], data["baseline"], data["grid_s"])
            except services.SettlementError as exc:
                raise forms.ValidationError(exc.message, code=str(exc.code)) from None
        return data


@admin.register(SettlementRun)
class SettlementRunAdmin(admin.ModelAdmin):
    form = RunForm
    list_display = ["id", "period_from", "period_to", "baseline", "status", "created_by", "created_at", "finished_at"]
    list_filter = ["status", "baseline"]
    list_select_related = ["created_by"]
    fields = ["period_from", "period_to", "baseline", "grid_s", "status", "error", "created_by", "created_at",
              "started_at", "heartbeat_at", "attempts", "finished_at", "summary", "downloads"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        done = ["status", "error", "created_by", "created_at", "started_at", "heartbeat_at", "attempts", "finished_at",
                "summary", "downloads"]
        return done + (["period_from", "period_to", "baseline", "grid_s"] if obj else [])

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        # New runs only (no change permission on a saved run): created and queued by the service.
        run = services.start_run(obj.period_from, obj.period_to, user=request.user, baseline=obj.baseline,
                                 grid_s=obj.grid_s)
        obj.pk = run.pk
        obj.refresh_from_db()

    @admin.display(description="files")
    def downloads(self, obj):
        folder = obj.output_dir and Path(obj.output_dir)
        if not folder or not folder.is_dir():
            return "-"
        names = sorted(p.name for p in folder.iterdir())
        return format_html_join(", ", '<a href="{}">{}</a>', (
            (reverse("admin:settlement_download", args=[obj.pk, n]), n) for n in names))

    def get_urls(self):
        download = path("<int:run_id>/download/<str:name>/", self.admin_site.admin_view(self.download),
                        name="settlement_download")
        return [download, *super().get_urls()]

    def download(self, request, run_id: int, name: str):
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = SettlementRun.objects.filter(pk=run_id).first()
        try:
            return FileResponse(open(services.output_file(run, name), "rb"), as_attachment=True, filename=name)
        except (services.SettlementError, AttributeError):
            raise Http404("no such file") from None


@admin.register(ActivationResult)
class ActivationResultAdmin(ReadOnlyAdmin):
    list_display = ["id", "run", "activation", "brp", "t_signal", "t_clear", "baseline_kwh", "delivered_kwh",
                    "shed_kwh", "rebound_kwh", "value_eur", "net_value_eur", "baseline", "data_quality"]
    list_filter = ["data_quality"]
    list_select_related = ["run", "brp", "activation__signal"]
    show_full_result_count = False
    inlines = [IspInline]


@admin.register(ImbalancePrice)
class ImbalancePriceAdmin(ReadOnlyAdmin):
    list_display = ["isp_start", "price_eur_per_mwh", "source"]
    date_hierarchy = "isp_start"
    show_full_result_count = False
