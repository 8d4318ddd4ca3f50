"""Settlement runs over the database and their results (the file door needs none of this)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from settlement.core.baselines import DEFAULT_BASELINE
from smatch import clock


class ImbalancePrice(models.Model):
    """Shortage imbalance price of one 15-minute ISP (imported from the TSO's files)."""

    isp_start = models.DateTimeField(unique=True)
    price_eur_per_mwh = models.FloatField()
    source = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["isp_start"]

    def __str__(self) -> str:
        return f"{self.isp_start:%Y-%m-%d %H:%M}Z {self.price_eur_per_mwh} EUR/MWh"


class SettlementRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=clock.now, editable=False)
    period_from = models.DateTimeField(help_text="activations whose signal falls in [from, to)")
    period_to = models.DateTimeField()
    baseline = models.CharField(max_length=40, default=DEFAULT_BASELINE)
    grid_s = models.FloatField(default=60.0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    # The lease: a running run's worker renews this as it works; the sweep fails or re-queues a run
    # whose heartbeat is older than SETTLEMENT_LEASE_S (its worker died).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="times a worker started this run")
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    output_dir = models.CharField(max_length=500, blank=True)
    summary = models.JSONField(default=dict, blank=True, help_text="warnings, KPIs, counts")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"]), models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"settlement run {self.pk} ({self.period_from:%Y-%m-%d %H:%M} .. {self.period_to:%Y-%m-%d %H:%M})"


class ActivationResult(models.Model):
    run = models.ForeignKey(SettlementRun, on_delete=models.CASCADE, related_name="activations")
    activation = models.ForeignKey("flexibility.Activation", null=True, on_delete=models.SET_NULL, related_name="+")
    brp = models.ForeignKey("flexibility.Brp", null=True, on_delete=models.SET_NULL, related_name="+")
    t_signal = models.DateTimeField()
    t_clear = models.DateTimeField()
    p_signal_kw = models.FloatField(null=True)
    p_clear_kw = models.FloatField(null=True)
    baseline_kwh = models.FloatField(null=True)
    delivered_kwh = models.FloatField()
    shed_kwh = models.FloatField(null=True)
    sessions = models.PositiveIntegerField()
    value_eur = models.FloatField(null=True, help_text="gross: shed x the window's ISP prices; empty when an ISP had "
                                  "no price")
    baseline = models.CharField(max_length=40, blank=True, help_text="the baseline these figures use")
    rebound_kwh = models.FloatField(null=True, help_text="shed the same sessions took back after the clear")
    never_delivered_kwh = models.FloatField(null=True)
    rebound_value_eur = models.FloatField(null=True, help_text="rebound x each later ISP's price")
    net_value_eur = models.FloatField(null=True, help_text="value_eur - rebound_value_eur; can be negative")
    detected_drop_at = models.DateTimeField(null=True)
    detected_recovery_at = models.DateTimeField(null=True)
    coverage_share = models.FloatField(null=True)
    data_quality = models.CharField(max_length=8)
    dq_reasons = models.TextField(blank=True)

    class Meta:
        ordering = ["t_signal"]
        indexes = [models.Index(fields=["brp", "t_signal"])]

    def __str__(self) -> str:
        return f"run {self.run_id} activation {self.activation_id}: {self.shed_kwh} kWh shed"


class IspResult(models.Model):
    activation_result = models.ForeignKey(ActivationResult, on_delete=models.CASCADE, related_name="isps")
    isp_start = models.DateTimeField()
    baseline_kwh = models.FloatField(null=True)
    delivered_kwh = models.FloatField()
    shed_kwh = models.FloatField(null=True)
    price_eur_per_mwh = models.FloatField(null=True)
    value_eur = models.FloatField(null=True)

    class Meta:
        ordering = ["isp_start"]

    def __str__(self) -> str:
        return f"ISP {self.isp_start:%Y-%m-%d %H:%M}Z: {self.shed_kwh} kWh"
