from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import authentication, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from smatch.rest.limits import BodyLimitMixin
from smatch.rest.schema import ApiSchema, StrictLimitOffsetPagination
from smatch.rest.throttles import BrpRateThrottle

from .. import responsiveness, services, summary
from ..error_codes import FlexibilityErrorCode
from ..models import Signal
from .auth import BrpTokenAuthentication, IsBrp
from .serializers import EvseResponsivenessSerializer, SignalCreateSerializer, SignalSerializer

# A relayed target-kW signal as the BRP reads it (activation abridged: the summary has more counts).
TARGET_SIGNAL_EXAMPLE = {
    "id": 42, "url": "https://smatch.example/api/v1/signals/42/", "external_id": "2025-05-06T17:04-2",
    "direction": "reduce_consumption", "status": "active", "received_at": "2025-05-06T17:04:00Z",
    "end_time": None, "isp_start": None, "veto_reason": "", "target_kw": 800.0,
    "activation": {"status": "active", "expected_kw": 861.2,
                   "target": {"target_kw": 800.0, "expected_kw": 861.2, "shortfall_kw": 0.0, "measured_kw": 412.5}},
}


class SignalViewSet(BodyLimitMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Imbalance signals of the calling BRP (a BRP sees only its own).

    A refusal answers `{"code": ..., "detail": ...}` (400, or 409 for a clash with the signal's
    state); the codes are `FlexibilityErrorCode`'s, listed in the schema.
    """

    serializer_class = SignalSerializer
    authentication_classes = [BrpTokenAuthentication]
    permission_classes = [IsBrp]
    throttle_classes = [BrpRateThrottle]
    pagination_class = StrictLimitOffsetPagination
    schema = ApiSchema()
    lookup_value_regex = "[^/]+"  # a malformed id reaches the view: JSON 404, not Django's HTML page
    conflict_actions = ("create", "cancel")
    error_codes = FlexibilityErrorCode

    def get_queryset(self):
        return Signal.objects.filter(brp=self.request.auth).select_related("activation", "activation__signal")

    def list(self, request):
        """A page of signals; their delivery counts in one query (a restored activation's other
        figures are on its row), so the page costs the same for 5 signals as for 50."""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        delivery = summary.delivery_counts_of(filter(None, map(summary.activation_id_of, page)))
        data = self.get_serializer(page, many=True, context={**self.get_serializer_context(), "delivery": delivery})
        return self.get_paginated_response(data.data)

    @extend_schema(request=SignalCreateSerializer, responses={200: SignalSerializer, 202: SignalSerializer},
                   examples=[OpenApiExample("relay until the next ISP boundary", request_only=True,
                                            value={"external_id": "2025-05-06T17:04-1",
                                                   "direction": "reduce_consumption"}),
                             OpenApiExample("ask for 800 kW: the fewest sessions, chosen fairly", request_only=True,
                                            value={"external_id": "2025-05-06T17:04-2",
                                                   "direction": "reduce_consumption", "target_kw": 800}),
                             OpenApiExample("target refused", response_only=True, status_codes=["400"],
                                            value={"code": "target_above_fleet_max",
                                                   "detail": "target_kw 90000 is above the fleet's physical "
                                                             "maximum of 41234 kW"}),
                             OpenApiExample("the same target-kW signal sent again, after relay", response_only=True,
                                            status_codes=["200"], value=TARGET_SIGNAL_EXAMPLE)])
    def create(self, request):
        data = SignalCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        intake = services.receive_signal(request.auth, **data.validated_data)  # a refusal answers its code
        code = status.HTTP_202_ACCEPTED if intake.created else status.HTTP_200_OK
        return Response(self.get_serializer(intake.signal).data, status=code)

    @extend_schema(request=None, responses={200: SignalSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        signal = services.end_early(self.get_object().pk, label=f"brp:{request.auth.name}", cancel=True)
        return Response(self.get_serializer(signal).data)


class CanViewResponsiveness(permissions.BasePermission):
    message = "the EVSE report is for staff with the view permission"

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "is_staff", False)
                    and user.has_perm("flexibility.view_evseresponsiveness"))


class EvseResponsivenessViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Staff: EVSEs whose caps were not delivered by measurement (`?flagged=1`, `?party=<id>`)."""

    serializer_class = EvseResponsivenessSerializer
    # The BRP scheme first: an anonymous call gets its 401 challenge; a BRP token is refused (403).
    authentication_classes = [BrpTokenAuthentication, authentication.SessionAuthentication]
    permission_classes = [CanViewResponsiveness]
    pagination_class = StrictLimitOffsetPagination
    schema = ApiSchema()

    def get_queryset(self):
        party = self.request.query_params.get("party", "")
        return responsiveness.report_rows(int(party) if party.isdigit() else None,
                                          flagged_only=self.request.query_params.get("flagged") == "1")
