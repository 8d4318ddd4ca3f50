from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from .. import services
from ..models import Signal
from .auth import BrpRateThrottle, BrpTokenAuthentication, IsBrp
from .limits import BodyLimitMixin
from .schema import ApiSchema, StrictLimitOffsetPagination
from .serializers import SignalCreateSerializer, SignalSerializer


class SignalViewSet(BodyLimitMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Imbalance signals of the calling BRP (a BRP sees only its own)."""

    serializer_class = SignalSerializer
    authentication_classes = [BrpTokenAuthentication]
    permission_classes = [IsBrp]
    throttle_classes = [BrpRateThrottle]
    pagination_class = StrictLimitOffsetPagination
    schema = ApiSchema()
    lookup_value_regex = "[^/]+"  # a malformed id reaches the view: JSON 404, not Django's HTML page
    conflict_actions = ("create", "cancel")

    def get_queryset(self):
        return Signal.objects.filter(brp=self.request.auth).select_related("activation", "activation__signal")

    @extend_schema(request=SignalCreateSerializer, responses={200: SignalSerializer, 202: SignalSerializer},
                   examples=[OpenApiExample("relay until the next ISP boundary", request_only=True,
                                            value={"external_id": "2025-05-06T17:04-1",
                                                   "direction": "reduce_consumption"})])
    def create(self, request):
        data = SignalCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            intake = services.receive_signal(request.auth, **data.validated_data)
        except services.SignalConflict as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except services.SignalRefused as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        code = status.HTTP_202_ACCEPTED if intake.created else status.HTTP_200_OK
        return Response(self.get_serializer(intake.signal).data, status=code)

    @extend_schema(request=None, responses={200: SignalSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        signal = self.get_object()
        try:
            signal = services.end_early(signal.pk, label=f"brp:{request.auth.name}", cancel=True)
        except services.SignalRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(self.get_serializer(signal).data)
