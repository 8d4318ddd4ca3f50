"""The refusal convention (smatch/errors.py): one body shape for domain and DRF refusals."""

from __future__ import annotations

from enum import StrEnum

from rest_framework import exceptions

from smatch.errors import Conflict, Refusal, codes_of, exception_handler


class ShopCode(StrEnum):
    SOLD_OUT = "sold_out"
    CLOSED = "closed"


def test_a_refusal_answers_its_code_and_message_with_400() -> None:
    response = exception_handler(Refusal(ShopCode.SOLD_OUT, "no bread left"), {})
    assert (response.status_code, response.data) == (400, {"code": "sold_out", "detail": "no bread left"})


def test_a_conflict_answers_409() -> None:
    response = exception_handler(Conflict(ShopCode.CLOSED, "the shop closed at six"), {})
    assert (response.status_code, response.data) == (409, {"code": "closed", "detail": "the shop closed at six"})


def test_drf_refusals_get_the_same_shape_with_drfs_code() -> None:
    response = exception_handler(exceptions.NotAuthenticated(), {})
    assert response.status_code == 401
    assert response.data["code"] == "not_authenticated" and set(response.data) == {"code", "detail"}


def test_invalid_fields_keep_drfs_shape() -> None:
    response = exception_handler(exceptions.ValidationError({"code": ["Not a valid string."]}), {})
    assert (response.status_code, response.data) == (400, {"code": ["Not a valid string."]})


def test_codes_of_lists_every_enum_in_order() -> None:
    class Other(StrEnum):
        LATE = "late"

    assert codes_of((ShopCode, Other)) == ["sold_out", "closed", "late"]
    assert codes_of(None) == []
