"""What the REST API answers besides success, in its OpenAPI schema; strict paging parameters.

Clients (and the schemathesis fuzz in tests/trust) learn from the schema which refusals to expect:
400 bad input, 401 no or unknown credentials, 403 not allowed, 404 not yours or not there, 409 a
conflict with the current state, 413 a body too large, 429 too many requests. Every refusal's body is
`{"code": ..., "detail": ...}` (`smatch.errors`); a view lists its domain codes in `error_codes`.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_examples_list
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

from smatch.errors import REFUSAL_SCHEMA, codes_of

_DETAIL = REFUSAL_SCHEMA
_FIELD_ERRORS = {"type": "object", "additionalProperties": True,
                 "description": "each invalid field with a list of messages"}


def _with_codes(codes: list[str]) -> dict:
    """The refusal body whose `code` is one of `codes` (the view's domain codes)."""
    if not codes:
        return REFUSAL_SCHEMA
    code = {**REFUSAL_SCHEMA["properties"]["code"], "enum": codes}
    return {**REFUSAL_SCHEMA, "properties": {**REFUSAL_SCHEMA["properties"], "code": code}}


def _error(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


class ApiSchema(AutoSchema):
    """AutoSchema plus the refusals each operation can answer. A view lists its 409 actions in
    `conflict_actions`."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        codes = codes_of(getattr(self.view, "error_codes", None))
        refusals = {
            "401": _error("no, unknown or revoked credentials", _DETAIL),
            "403": _error("these credentials may not do this", _DETAIL),
        }
        if self.method in ("POST", "PUT", "PATCH") or self._is_list_view():
            # DRF's own codes too: a body that is not JSON, or a field-free ValidationError.
            refused = _with_codes([*codes, "invalid", "parse_error"] if codes else [])
            refusals["400"] = _error("invalid input: a refusal, or the invalid fields",
                                     {"anyOf": [refused, _FIELD_ERRORS]})
        if self.method in ("POST", "PUT", "PATCH"):
            refusals["413"] = _error("request body too large", _DETAIL)
        if "{" in self.path:
            refusals["404"] = _error("no such object among yours", _DETAIL)
        if getattr(self.view, "action", None) in getattr(self.view, "conflict_actions", ()):
            refusals["409"] = _error("conflicts with the object's current state", _with_codes(codes))
        if getattr(self.view, "throttle_classes", None):
            refusals["429"] = _error("too many requests; retry after the Retry-After header", _DETAIL)
        for code, response in refusals.items():
            if code not in responses:
                responses[code] = response
                # The view's response examples for a refusal added here (spectacular drops them).
                examples = [e for e in self.get_examples()
                            if not e.request_only and code in {str(c) for c in e.status_codes or ()}]
                if examples:
                    response["content"]["application/json"]["examples"] = build_examples_list(examples)
        return responses


class StrictLimitOffsetPagination(LimitOffsetPagination):
    """limit / offset that are not whole numbers in range get a 400 instead of silently page one."""

    max_limit = 1000
    max_offset = 2**31 - 1

    def get_limit(self, request):
        return self._strict(request, self.limit_query_param, 1, self.max_limit, self.default_limit)

    def get_offset(self, request):
        return self._strict(request, self.offset_query_param, 0, self.max_offset, 0)

    @staticmethod
    def _strict(request, name: str, minimum: int, maximum: int, default):
        raw = request.query_params.getlist(name)
        if not raw:
            return default
        if len(raw) > 1:
            raise ValidationError({name: ["give it once"]})
        try:
            value = int(raw[0])
        except ValueError:
            raise ValidationError({name: [f"expected a whole number from {minimum} to {maximum}"]}) from None
        if not minimum <= value <= maximum:
            raise ValidationError({name: [f"expected a whole number from {minimum} to {maximum}"]})
        return value

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {self.limit_query_param: (1, self.max_limit), self.offset_query_param: (0, self.max_offset)}
        for parameter in parameters:
            low, high = bounds[parameter["name"]]
            parameter["schema"].update(minimum=low, maximum=high)
        return parameters
