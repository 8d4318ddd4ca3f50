"""Refusals: one convention for every domain and every door.

A refusal is a request that breaks a rule of the product (not a bug, not an outage). It carries

- `code`: a member of its domain's error-code enum (`flexibility/error_codes.py`,
  `settlement/error_codes.py`, `ocpi/error_codes.py`), a `StrEnum` whose values are stable
  snake_case strings: clients, admin forms and tests match on the code;
- a message: one English sentence for people (the BRP, the operator), free to be reworded.

Each domain raises `Refusal` (or `Conflict`, for a clash with an object's current state) or a
subclass of its own; services raise, doors translate:

- REST (DRF): `exception_handler` below (settings' `REST_FRAMEWORK["EXCEPTION_HANDLER"]`) answers
  `{"code": ..., "detail": ...}` with `http_status` (400, or 409 for a `Conflict`). DRF's own
  refusals (401, 403, 404, 429, ...) get the same shape, their code being DRF's (`not_authenticated`,
  `permission_denied`, `not_found`, `throttled`, ...). Invalid fields keep DRF's shape
  `{"<field>": ["<message>", ...]}`: a field may be named `code`, so nothing is mixed into it.
- Admin forms: `forms.ValidationError(refusal.message, code=refusal.code)`.
- Commands: `CommandError(refusal.message)`; the code is for programs, the sentence for people.
- OCPI: not this convention: the OCPI modules answer the spec's `status_code` (2xxx/3xxx) envelope
  (`ocpi/errors.py`).

The OpenAPI schema (drf-spectacular, `smatch/rest/schema.py`) documents the body as `REFUSAL_SCHEMA`;
a view lists the codes it can answer with in `error_codes` (an enum, or a tuple of enums), which the
schema gives as the `code` property's `enum` on its 400 and 409 responses.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Refusal(ValueError):
    """A request that breaks a rule: `code` says which (for programs), the message says it in words."""

    http_status = status.HTTP_400_BAD_REQUEST

    def __init__(self, code: StrEnum, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def message(self) -> str:
        return str(self)


class Conflict(Refusal):
    """A request that clashes with an object's current state (HTTP 409)."""

    http_status = status.HTTP_409_CONFLICT


def refusal_body(code: str, detail: str) -> dict[str, str]:
    """The JSON body of every non-field refusal."""
    return {"code": str(code), "detail": detail}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus: a `Refusal` answers its code and message; DRF's `{"detail": ...}` gets its code."""
    if isinstance(exc, Refusal):
        return Response(refusal_body(exc.code, exc.message), status=exc.http_status)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and set(response.data) == {"detail"}:
        detail = response.data["detail"]
        code = getattr(detail, "code", None)  # DRF's ErrorDetail carries one
        if isinstance(detail, str) and code:
            response.data = refusal_body(code, str(detail))
    return response


# The schema of that body, for drf-spectacular. `code` is not marked required: an older client
# reading only `detail` keeps working, and the schema stays true for any response built by hand.
REFUSAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "description": "which rule refused the request; stable, for programs"},
        "detail": {"type": "string", "description": "the same in one English sentence, for people"},
    },
}


def codes_of(enums: type[StrEnum] | tuple[type[StrEnum], ...] | None) -> list[str]:
    """The values of one error-code enum or several, in declaration order, for a schema's `enum`."""
    if enums is None:
        return []
    return [member.value for enum in (enums if isinstance(enums, tuple) else (enums,)) for member in enum]
