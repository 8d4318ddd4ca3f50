"""REST: analysts run settlements and read all results; a BRP reads its own activations' results."""

from __future__ import annotations

from rest_framework import authentication, mixins, permissions, serializers, viewsets
from rest_framework.exceptions import ValidationError

from flexibility.api.auth import BrpTokenAuthentication, BrpUser
from flexibility.roles import ANALYSTS
from settlement import services
from settlement.models import ActivationResult, IspResult, SettlementRun


def is_analyst(user) -> bool:
    return bool(getattr(user, "is_superuser", False) or (
        getattr(user, "is_authenticated", False) and not isinstance(user, BrpUser)
        and user.groups.filter(name=ANALYSTS).exists()))


class IsAnalyst(permissions.BasePermission):
    message = "settlement runs are for the analysts group"

    def has_permission(self, request, view) -> bool:
        return is_analyst(request.user)


class IsAnalystOrBrp(permissions.BasePermission):
    message = "an analyst login or a BRP token is needed"

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, BrpUser) or is_analyst(request.user)


AUTH = [BrpTokenAuthentication, authentication.SessionAuthentication, authentication.BasicAuthentication]


class RunSerializer(serializers.ModelSerializer):
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
                  "delivered_kwh", "shed_kwh", "sessions", "value_eur", "data_quality", "dq_reasons", "isps"]


class RunViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                 viewsets.GenericViewSet):
    queryset = SettlementRun.objects.all()
    serializer_class = RunSerializer
    authentication_classes = AUTH
    permission_classes = [IsAnalyst]

    def perform_create(self, serializer):
        data = serializer.validated_data
        try:
            serializer.instance = services.start_run(data["period_from"], data["period_to"], user=self.request.user,
                                                     baseline=data.get("baseline", "trapezoid"),
                                                     grid_s=data.get("grid_s", 60.0))
        except services.SettlementError as exc:
            raise ValidationError({"detail": str(exc)}) from exc


class ActivationResultViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ActivationResultSerializer
    authentication_classes = AUTH
    permission_classes = [IsAnalystOrBrp]

    def get_queryset(self):
        results = ActivationResult.objects.filter(run__status=SettlementRun.Status.DONE).prefetch_related("isps")
        if isinstance(self.request.user, BrpUser):
            return results.filter(brp=self.request.user.brp)  # a BRP sees only its own activations
        return results
