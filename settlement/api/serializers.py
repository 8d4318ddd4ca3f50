"""Settlement results as JSON: runs, activation results with their ISPs."""

from rest_framework import serializers

from settlement.core.baselines import BASELINES, DEFAULT_BASELINE
from settlement.models import ActivationResult, IspResult, SettlementRun


class RunSerializer(serializers.ModelSerializer):
    # Bounded: a grid of microseconds would make the worker build billions of points per session.
    baseline = serializers.ChoiceField(choices=sorted([*BASELINES, "all"]), default=DEFAULT_BASELINE)
    grid_s = serializers.FloatField(min_value=1.0, max_value=900.0, default=60.0,
                                    help_text="reconstruction grid step in seconds (1 to 900)")

    class Meta:
        model = SettlementRun
        fields = ["id", "period_from", "period_to", "baseline", "grid_s", "status", "error", "created_at",
                  "finished_at", "summary"]
        read_only_fields = ["status", "error", "created_at", "finished_at", "summary"]


class IspSerializer(serializers.ModelSerializer):
    class Meta:
        model = IspResult
        fields = ["isp_start", "baseline_kwh", "delivered_kwh", "shed_kwh", "price_eur_per_mwh", "value_eur"]


class ActivationResultSerializer(serializers.ModelSerializer):
    isps = IspSerializer(many=True, read_only=True)

    class Meta:
        model = ActivationResult
        fields = ["id", "run", "activation", "t_signal", "t_clear", "p_signal_kw", "p_clear_kw", "baseline_kwh",
                  "delivered_kwh", "shed_kwh", "sessions", "value_eur", "baseline", "rebound_kwh",
                  "never_delivered_kwh", "rebound_value_eur", "net_value_eur", "data_quality", "dq_reasons", "isps"]
