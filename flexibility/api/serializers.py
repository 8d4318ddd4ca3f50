from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from ..models import Signal
from ..summary import signal_summary


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.NUMBER)
class TargetKwField(serializers.Field):
    """Passed through as sent: `targeting.check_target` refuses a bad value with its code, not a field error."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


_KW = {"type": "number", "format": "double"}
# The activation summary (`summary.activation_summary`): its target-kW figures spelled out, the rest as it comes.
ACTIVATION_SCHEMA = {
    "type": "object", "nullable": True, "additionalProperties": True,
    "description": "null before relay; counts, kW and latencies of the activation",
    "properties": {
        "status": {"type": "string"},
        "expected_kw": {**_KW, "description": "expected shed of the caps planned (best estimate)"},
        "target": {
            "type": "object", "nullable": True,
            "description": "null without target_kw",
            "properties": {
                "target_kw": {**_KW, "description": "what the signal asked for"},
                "expected_kw": {**_KW, "description": "expected shed of the sessions chosen"},
                "shortfall_kw": {**_KW, "description": "target - expected when every eligible session fell "
                                                       "short, else 0"},
                "measured_kw": {**_KW, "nullable": True,
                                "description": "what the caps judged as responded so far freed (draw before "
                                               "minus draw under the cap; their estimate where the states "
                                               "do not tell): caps not judged yet are not in it; null "
                                               "while no cap could be judged (no state since it began)"},
            },
        },
    },
}


class SignalCreateSerializer(serializers.Serializer):
    external_id = StrictCharField(max_length=100, help_text="your own id; repeating it is idempotent")
    direction = StrictCharField(max_length=40, help_text="only 'reduce_consumption' is actionable")
    end_time = serializers.DateTimeField(required=False, allow_null=True, help_text="at most 15 min ahead")
    isp_start = serializers.DateTimeField(required=False, allow_null=True, help_text="an ISP boundary, UTC")
    target_kw = TargetKwField(required=False, allow_null=True,
                              help_text="kW you need (positive, at most the fleet's maximum); omitted: every "
                                        "eligible session is capped")


class SignalSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    activation = serializers.SerializerMethodField()

    class Meta:
        model = Signal
        fields = [
            "id", "url", "external_id", "direction", "status", "received_at", "end_time", "isp_start",
            "veto_reason", "target_kw", "activation",
        ]

    def get_url(self, signal: Signal) -> str:
        return reverse("signal-detail", args=[signal.pk], request=self.context.get("request"))

    @extend_schema_field(ACTIVATION_SCHEMA)
    def get_activation(self, signal: Signal) -> dict | None:
        return signal_summary(signal, self.context.get("delivery"))  # a list page counted them at once


class EvseResponsivenessSerializer(serializers.Serializer):
    """One EVSE of the CPO-facing report (read-only)."""

    party = serializers.CharField()
    evse_uid = serializers.CharField()
    flagged = serializers.BooleanField(help_text="did not respond in N of its last M judged activations")
    judged = serializers.IntegerField()
    failures = serializers.IntegerField()
    not_resumed = serializers.IntegerField(help_text="caps after which the EV did not resume (driver at risk)")
    recent = serializers.CharField(help_text="newest last: R responded, N did not")
    updated_at = serializers.DateTimeField()
