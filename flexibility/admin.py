"""CPO operator controls: relay / veto / stop with an audit trail, previews, activation pages.

Group `operators` holds the `decide_signal` permission; group `analysts` only views. Every action
declares its permission; minting or rotating a BRP token needs `ocpi_client.manage_credentials`
(smatch/roles.py), which neither group holds.
"""

from __future__ import annotations

import csv

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from ocpi.models import ChargingProfileCall
from smatch.admin import ReadOnlyAdmin
from smatch.roles import CREDENTIALS_PERM

from . import responsiveness, services
from .models import Activation, Brp, Curtailment, Decision, EvseResponsiveness, Signal, SteeringRule
from .services import activations
from .summary import activation_summary


def has_credentials_permission(request) -> bool:
    return request.user.has_perm(CREDENTIALS_PERM)


@admin.register(Brp)
class BrpAdmin(admin.ModelAdmin):
    """The form validates the model's constraints (the account's rules, with their codes); the save
    goes through `create_brp` / `update_brp`, as for the `brp_create` command."""

    list_display = ["name", "policy", "auto_after_s", "token_prefix", "is_active", "created_at"]
    fields = ["name", "policy", "auto_after_s", "is_active", "token_prefix"]
    readonly_fields = ["token_prefix"]
    actions = ["rotate_token"]

    def has_add_permission(self, request) -> bool:  # a new BRP comes with a new token
        return super().has_add_permission(request) and has_credentials_permission(request)

    def has_manage_credentials_permission(self, request) -> bool:
        return has_credentials_permission(request)

    def get_fields(self, request, obj=None):
        return self.fields if obj else [f for f in self.fields if f not in ("is_active", "token_prefix")]

    def save_model(self, request, obj, form, change) -> None:
        """Through the services, as every door: `update_brp` keeps the token, `create_brp` mints one."""
        if change:
            services.update_brp(obj.pk, obj.name, obj.policy, obj.auto_after_s, obj.is_active)
            return
        brp, token = services.create_brp(obj.name, obj.policy, obj.auto_after_s)
        obj.pk = brp.pk
        obj.refresh_from_db()
        messages.warning(request, f"API token for {obj.name} (shown once, store it now): {token}")

    @admin.action(description="Rotate the API token (the old one stops working)", permissions=["manage_credentials"])
    def rotate_token(self, request, queryset: QuerySet[Brp]) -> None:
        for brp in queryset[:20]:
            token = services.rotate_brp_token(brp.pk)
            messages.warning(request, f"new API token for {brp.name} (shown once): {token}")


class DecisionInline(admin.TabularInline):
    model = Decision
    extra = 0
    can_delete = False
    readonly_fields = ["action", "actor_label", "reason", "at"]
    fields = readonly_fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class VetoForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea, help_text="why the signal is not relayed (recorded)")


def _can_decide(request) -> bool:
    return request.user.has_perm("flexibility.decide_signal")


@admin.register(Signal)
class SignalAdmin(admin.ModelAdmin):
    list_display = ["external_id", "brp", "status", "received_at", "end_time", "target_kw", "auto_relay_at"]
    list_filter = ["status", "brp"]
    list_select_related = ["brp"]
    search_fields = ["external_id"]
    date_hierarchy = "received_at"
    show_full_result_count = False
    readonly_fields = [
        "brp", "external_id", "direction", "status", "received_at", "end_time", "isp_start",
        "auto_relay_at", "veto_reason", "target_kw", "preview", "activation_link",
    ]
    inlines = [DecisionInline]
    actions = ["relay", "veto", "stop_now"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_decide_permission(self, request) -> bool:
        return _can_decide(request)

    @admin.display(description="preview if relayed now")
    def preview(self, signal: Signal) -> str:
        if signal.status != Signal.Status.RECEIVED:
            return "-"
        plan = activations.preview()
        skipped = ", ".join(f"{k}: {v}" for k, v in plan.skipped.items() if v)
        src = plan.by_source
        shed = f"{plan.expected_kw:.1f} kW ({plan.expected_kw_low:.1f}-{plan.expected_kw_high:.1f})"
        return (f"{len(plan.caps)} sessions eligible, expected shed {shed} "
                f"(draw measured {src.get('measured', 0)} / from POWER {src.get('power', 0)} / from kWh "
                f"{src.get('kwh', 0)} / phases assumed {src.get('assumed', 0)}); skipped: {skipped or 'none'}")

    @admin.display(description="activation")
    def activation_link(self, signal: Signal) -> str:
        activation = Activation.objects.filter(signal=signal).first()
        if activation is None:
            return "-"
        url = reverse("admin:flexibility_activation_change", args=[activation.pk])
        return format_html('<a href="{}">activation {}</a>', url, activation.pk)

    @admin.action(description="Relay the selected signals (cap sessions at 8 A now)", permissions=["decide"])
    def relay(self, request, queryset: QuerySet[Signal]) -> None:
        for signal in queryset[:20]:
            self._report(request, signal, lambda s: services.relay_signal(s.pk, actor=request.user), "relayed")

    @admin.action(description="Veto the selected signals (a reason is required)", permissions=["decide"])
    def veto(self, request, queryset: QuerySet[Signal]):
        form = VetoForm(request.POST if "reason" in request.POST else None)
        if not form.is_valid():
            context = {**self.admin_site.each_context(request), "signals": queryset[:20], "form": form,
                       "opts": self.model._meta, "title": "Veto signals"}
            return render(request, "admin/flexibility/veto.html", context)
        reason = form.cleaned_data["reason"]
        for signal in queryset[:20]:
            self._report(request, signal, lambda s: services.veto_signal(s.pk, request.user, reason), "vetoed")
        return None

    @admin.action(description="Stop now (restore every capped session at once)", permissions=["decide"])
    def stop_now(self, request, queryset: QuerySet[Signal]) -> None:
        for signal in queryset[:20]:
            self._report(request, signal, lambda s: services.end_early(s.pk, actor=request.user), "stopped")

    def _report(self, request, signal: Signal, act, done: str) -> None:
        try:
            act(signal)
            messages.success(request, f"{signal}: {done}")
        except services.SignalRefused as exc:
            messages.error(request, f"{signal}: {exc.message}")


class CurtailmentInline(admin.TabularInline):
    model = Curtailment
    extra = 0
    can_delete = False
    max_num = 0
    fields = ["session", "status", "restored_from", "response", "attempts", "starts_at", "ends_at", "restored_at",
              "expected_kw", "delivery", "resumption"]
    readonly_fields = fields
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("session")[:200]


def _warn_drivers_at_risk(request) -> None:
    """Caps of the last day after which the EV did not resume: the operator sees them at once."""
    count = responsiveness.drivers_at_risk_count()
    if count:
        url = reverse("admin:flexibility_curtailment_changelist") + "?resumption__exact=not_resumed"
        messages.error(request, format_html(
            '{} driver(s) at risk: the EV did not resume after the cap in the last 24 h. <a href="{}">See them</a>.',
            count, url))


@admin.register(Activation)
class ActivationAdmin(ReadOnlyAdmin):
    list_display = ["pk", "signal", "status", "relayed_at", "ends_at", "eligible", "expected_kw", "restored_at",
                    "in_force", "drivers_at_risk"]
    list_filter = ["status"]
    list_select_related = ["signal", "signal__brp"]
    show_full_result_count = False
    readonly_fields = ["signal", "status", "relayed_at", "ends_at", "restored_at", "stopped_early", "target_kw",
                       "shortfall_kw", "measured_kw", "figures"]
    fields = readonly_fields

    def get_queryset(self, request):
        caps = "curtailments"
        in_force = Q(**{f"{caps}__status": Curtailment.Status.IN_FORCE}) | Q(
            **{f"{caps}__restored_from": Curtailment.Status.IN_FORCE})
        at_risk = Q(**{f"{caps}__resumption": Curtailment.Resumption.NOT_RESUMED})
        return super().get_queryset(request).annotate(
            caps_in_force=Count(caps, filter=in_force), caps_at_risk=Count(caps, filter=at_risk))

    def changelist_view(self, request, extra_context=None):
        _warn_drivers_at_risk(request)
        return super().changelist_view(request, extra_context)

    @admin.display(description="caps in force", ordering="caps_in_force")
    def in_force(self, activation: Activation) -> int:
        return activation.caps_in_force

    @admin.display(description="drivers at risk (did not resume)", ordering="caps_at_risk")
    def drivers_at_risk(self, activation: Activation) -> str:
        if not activation.caps_at_risk:
            return "0"
        url = reverse("admin:flexibility_curtailment_changelist")
        return format_html('<a href="{}?activation__id__exact={}&resumption__exact=not_resumed"><b>{}</b></a>',
                           url, activation.pk, activation.caps_at_risk)

    @admin.display(description="summary and latency")
    def figures(self, activation: Activation) -> str:
        s = activation_summary(activation)
        # format_html_join: a value such as {'accepted': 3} must not be read as a format string.
        rows = format_html_join(
            "", "<tr><th>{}</th><td>{}</td></tr>",
            [*((k, v) for k, v in s.items() if k != "latency_ms"), *s["latency_ms"].items()],
        )
        link = format_html('<a href="{}?activation__id__exact={}">per-session outcomes</a>',
                           reverse("admin:flexibility_curtailment_changelist"), activation.pk)
        return format_html("<table>{}</table>{}", rows, link)


@admin.register(Curtailment)
class CurtailmentAdmin(ReadOnlyAdmin):
    list_display = [
        "session", "activation", "status", "restored_from", "response", "async_result", "attempts", "starts_at",
        "ends_at", "restored_at", "delivery", "resumption", "budget_used_4h",
    ]
    list_filter = ["status", "restored_from", "response", "delivery", "resumption"]
    list_select_related = ["session", "activation"]
    show_full_result_count = False
    raw_id_fields = ["session", "activation"]

    @admin.display(description="async result")
    def async_result(self, cap: Curtailment) -> str:
        call = ChargingProfileCall.objects.filter(purpose_id=cap.pk, kind="SET").order_by("-created_at").first()
        return f"{call.result or '-'} {call.result_at or ''}" if call else "-"

    @admin.display(description="cap used in last 4 h")
    def budget_used_4h(self, cap: Curtailment) -> str:
        return activations.budget_used(cap.session_id, cap.starts_at)


@admin.register(EvseResponsiveness)
class EvseResponsivenessAdmin(ReadOnlyAdmin):
    """The CPO-facing report: EVSEs whose caps were not delivered, flagged after N of the last M."""

    list_display = ["evse_uid", "party", "flagged", "judged", "failures", "not_resumed", "recent_verdicts",
                    "updated_at"]
    list_filter = ["flagged", "party"]
    list_select_related = ["party"]
    search_fields = ["evse_uid"]
    show_full_result_count = False
    change_list_template = "admin/flexibility/evseresponsiveness/change_list.html"

    @admin.display(description="recent (R responded, N did not)")
    def recent_verdicts(self, record: EvseResponsiveness) -> str:
        return responsiveness.recent_text(record.recent)

    def get_urls(self):
        download = self.admin_site.admin_view(self.download_csv)
        return [path("report.csv", download, name="flexibility_evseresponsiveness_csv"), *super().get_urls()]

    def download_csv(self, request) -> HttpResponse:
        """The report as CSV (`?flagged=1` for the flagged EVSEs only, `?party=<id>` for one CPO)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        party = request.GET.get("party")
        rows = responsiveness.report_rows(int(party) if party and party.isdigit() else None,
                                          flagged_only=request.GET.get("flagged") == "1")
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="evse-responsiveness.csv"'
        writer = csv.DictWriter(response, fieldnames=responsiveness.REPORT_COLUMNS)
        writer.writeheader()
        writer.writerows({k: responsiveness.csv_safe(v) for k, v in row.items()} for row in rows)
        return response


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["signal", "action", "actor_label", "reason", "at"]
    list_filter = ["action"]
    list_select_related = ["signal", "signal__brp"]
    show_full_result_count = False


@admin.register(SteeringRule)
class SteeringRuleAdmin(admin.ModelAdmin):
    list_display = ["location_id", "evse_uid", "reason", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["location_id", "evse_uid", "reason"]
