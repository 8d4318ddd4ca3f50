"""REST: analysts run settlements and read all results; a BRP reads its own activations' results."""

from __future__ import annotations

from rest_framework import authentication, mixins, permissions, viewsets

from flexibility.api.auth import BrpTokenAuthentication, BrpUser
from settlement import services
from settlement.core.baselines import DEFAULT_BASELINE
from settlement.error_codes import SettlementErrorCode
from settlement.models import ActivationResult, SettlementRun
from smatch.rest.limits import BodyLimitMixin
from smatch.rest.schema import ApiSchema, StrictLimitOffsetPagination
from smatch.rest.throttles import SettlementRateThrottle
from smatch.roles import ANALYSTS

from .serializers import ActivationResultSerializer, RunSerializer


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


# What starting a run can be refused with (the run's own failures come later, on the run).
RUN_START_CODES = (SettlementErrorCode.NAIVE_PERIOD, SettlementErrorCode.EMPTY_PERIOD,
                   SettlementErrorCode.UNKNOWN_BASELINE, SettlementErrorCode.GRID_S_OUT_OF_RANGE)
REFUSAL_OR_FIELDS = {"anyOf": [
    {"type": "object", "required": ["code", "detail"], "properties": {
        "code": {"type": "string", "enum": [str(code) for code in RUN_START_CODES],
                 "description": "which rule refused the run; stable, for programs"},
        "detail": {"type": "string", "description": "the same in one English sentence, for people"}}},
    {"type": "object", "additionalProperties": True, "description": "each invalid field with a list of messages"},
]}


class RunSchema(ApiSchema):
    """ApiSchema, with the codes a POST can be refused with in its 400 body."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction == "response" and self.method == "POST":
            responses["400"] = {"description": "a refusal with its code, or invalid fields",
                                "content": {"application/json": {"schema": REFUSAL_OR_FIELDS}}}
        return responses


# A BRP token or a staff session (with its CSRF check); never HTTP Basic.
AUTH = [BrpTokenAuthentication, authentication.SessionAuthentication]
THROTTLES = [SettlementRateThrottle]


class RunViewSet(BodyLimitMixin, mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                 viewsets.GenericViewSet):
    queryset = SettlementRun.objects.all()
    serializer_class = RunSerializer
    authentication_classes = AUTH
    throttle_classes = THROTTLES
    permission_classes = [IsAnalyst]
    pagination_class = StrictLimitOffsetPagination
    schema = RunSchema()
    lookup_value_regex = "[^/]+"  # a malformed id reaches the view: JSON 404, not Django's HTML page

    def perform_create(self, serializer):
        data = serializer.validated_data
        # A SettlementError is a Refusal: smatch.errors.exception_handler answers {"code", "detail"}, 400.
        serializer.instance = services.start_run(data["period_from"], data["period_to"], user=self.request.user,
                                                 baseline=data.get("baseline", DEFAULT_BASELINE),
                                                 grid_s=data.get("grid_s", 60.0))


class ActivationResultViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ActivationResultSerializer
    authentication_classes = AUTH
    throttle_classes = THROTTLES
    permission_classes = [IsAnalystOrBrp]
    pagination_class = StrictLimitOffsetPagination
    schema = ApiSchema()
    lookup_value_regex = "[^/]+"  # a malformed id reaches the view: JSON 404, not Django's HTML page

    def get_queryset(self):
        results = ActivationResult.objects.filter(run__status=SettlementRun.Status.DONE).prefetch_related("isps")
        if isinstance(self.request.user, BrpUser):
            return results.filter(brp=self.request.user.brp)  # a BRP sees only its own activations
        return results
