"""`GET /api/v1/flexibility/?from=&to=`: what the fleet can shed per ISP, for a BRP to plan and bid with."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from smatch.rest.schema import ApiSchema
from smatch.rest.throttles import BrpRateThrottle

from .. import forecast_service
from ..error_codes import FlexibilityErrorCode
from .auth import BrpTokenAuthentication, IsBrp

WINDOW_CODES = [c.value for c in FlexibilityErrorCode if c.name.startswith("WINDOW_")]


class FlexibilityIspSerializer(serializers.Serializer):
    isp_start = serializers.DateTimeField()
    horizon_min = serializers.FloatField(help_text="minutes from now to the ISP's start (0: the ISP now)")
    sheddable_now_kw = serializers.FloatField(allow_null=True, help_text="the ISP now only: active sessions "
                                              "above 8 A with budget left, unresponsive EVSEs counted out")
    p10_kw = serializers.FloatField(allow_null=True, help_text="null for an ISP already over")
    p50_kw = serializers.FloatField(allow_null=True)
    p90_kw = serializers.FloatField(allow_null=True)


class WindowRefusedSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=WINDOW_CODES)
    detail = serializers.CharField(help_text="the rule the window breaks")


REFUSED = OpenApiResponse(
    response=WindowRefusedSerializer,
    description="a bad window; `code` names the rule: " + ", ".join(WINDOW_CODES),
    examples=[OpenApiExample("backwards", value={"code": "window_backwards", "detail": "to must be after from"})])


class FlexibilityForecastView(APIView):
    """Per ISP of [from, to): the sheddable power now and a P10/P50/P90 forecast (docs/forecast.md)."""

    authentication_classes = [BrpTokenAuthentication]
    permission_classes = [IsBrp]
    throttle_classes = [BrpRateThrottle]
    schema = ApiSchema()

    @extend_schema(
        parameters=[OpenApiParameter("from", OpenApiTypes.DATETIME, required=True, description="an ISP boundary"),
                    OpenApiParameter("to", OpenApiTypes.DATETIME, required=True,
                                     description="an ISP boundary after `from`, at most 7 days later")],
        responses={200: FlexibilityIspSerializer(many=True), 400: REFUSED},
        examples=[OpenApiExample("the ISP now (the list has one such row per ISP)", response_only=True,
                                 status_codes=["200"],
                                 value={"isp_start": "2026-12-02T18:00:00Z", "horizon_min": 0,
                                        "sheddable_now_kw": 812.4, "p10_kw": 640.2, "p50_kw": 805.0,
                                        "p90_kw": 950.7})])
    def get(self, request):
        # A bad window raises a Refusal: the project's handler answers 400 {code, detail}.
        rows = forecast_service.forecast_rows(request.query_params.get("from"), request.query_params.get("to"))
        return Response(FlexibilityIspSerializer(rows, many=True).data)
