"""The operator console: one admin page for the 15-minute decision and the activation that follows.

Every view is wrapped by the admin site (staff login); reading needs `view_signal` (operators and
analysts), deciding needs `decide_signal` (operators). Relay, veto and stop go through the same
services, rules and audit trail as the admin actions and the BRP API.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from . import console_figures as figures
from . import forecast_service, services, target_figures
from .models import Activation, Signal

VIEW_PERM, DECIDE_PERM = "flexibility.view_signal", "flexibility.decide_signal"


def _reader(request: HttpRequest) -> None:
    if not request.user.has_perm(VIEW_PERM):
        raise PermissionDenied


def _panel_context(request: HttpRequest) -> dict:
    activation = figures.latest_activation()
    return {
        "panel": figures.activation_panel(activation) if activation else None,
        "pending": figures.pending_signals(),
        "can_decide": request.user.has_perm(DECIDE_PERM),
        "speed": figures.clock_speed(),
    }


def page(request: HttpRequest, site) -> HttpResponse:
    _reader(request)
    context = {**site.each_context(request), **_panel_context(request), "title": "Operator console",
               "preview": figures.preview(), "target_previews": target_figures.previews(),
               "forecast": forecast_service.console_rows(),
               "refresh_ms": int(settings.CONSOLE_REFRESH_S * 1000)}
    return render(request, "admin/flexibility/console.html", context)


def panel(request: HttpRequest) -> HttpResponse:
    """The activation section alone, for the page's periodic refresh."""
    _reader(request)
    return render(request, "admin/flexibility/console_panel.html", _panel_context(request))


def chart(request: HttpRequest, activation_id: int) -> JsonResponse:
    _reader(request)
    return JsonResponse(figures.chart(get_object_or_404(Activation, pk=activation_id)))


def _decide(request: HttpRequest, signal_id: int, act, done: str) -> HttpResponse:
    if not request.user.has_perm(DECIDE_PERM):
        raise PermissionDenied
    signal = get_object_or_404(Signal.objects.select_related("brp"), pk=signal_id)
    try:
        act(signal.pk)
        messages.success(request, f"{signal}: {done}")
    except services.SignalRefused as exc:
        messages.error(request, f"{signal}: {exc.message}")
    except Signal.DoesNotExist as exc:
        raise Http404 from exc
    return redirect("console")


@require_POST
def relay(request: HttpRequest, signal_id: int) -> HttpResponse:
    return _decide(request, signal_id, lambda pk: services.relay_signal(pk, actor=request.user), "relayed")


@require_POST
def veto(request: HttpRequest, signal_id: int) -> HttpResponse:
    reason = request.POST.get("reason", "")
    return _decide(request, signal_id, lambda pk: services.veto_signal(pk, request.user, reason), "vetoed")


@require_POST
def stop(request: HttpRequest, signal_id: int) -> HttpResponse:
    return _decide(request, signal_id, lambda pk: services.end_early(pk, actor=request.user), "stopped")


def urls(site) -> list:
    """The console's URLs, each behind the admin site's login (mounted under /admin/console/)."""
    wrap = site.admin_view
    return [
        path("", wrap(lambda request: page(request, site)), name="console"),
        path("panel/", wrap(panel), name="console-panel"),
        path("activation/<int:activation_id>/chart.json", wrap(chart), name="console-chart"),
        path("signal/<int:signal_id>/relay/", wrap(relay), name="console-relay"),
        path("signal/<int:signal_id>/veto/", wrap(veto), name="console-veto"),
        path("signal/<int:signal_id>/stop/", wrap(stop), name="console-stop"),
    ]
