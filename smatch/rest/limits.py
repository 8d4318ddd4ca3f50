"""A body over DATA_UPLOAD_MAX_MEMORY_SIZE gets a JSON 413, not Django's HTML "Bad Request" page."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.response import Response

from smatch.errors import refusal_body


class BodyLimitMixin:
    def handle_exception(self, exc):
        if isinstance(exc, RequestDataTooBig):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return Response(refusal_body("body_too_large", f"request body exceeds the limit of {limit} bytes"),
                            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        return super().handle_exception(exc)
