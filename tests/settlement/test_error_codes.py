"""Settlement's refusals follow the project's convention: a `Refusal` (smatch/errors.py) with a
`SettlementErrorCode`, answered by the one REST exception handler."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from settlement import services
from settlement.error_codes import SettlementError, SettlementErrorCode
from smatch.errors import Refusal, exception_handler

FROM, TO = datetime(2025, 5, 6, tzinfo=UTC), datetime(2025, 5, 7, tzinfo=UTC)


def test_a_settlement_error_is_a_refusal_with_its_code_and_sentence():
    exc = SettlementError(SettlementErrorCode.NO_STATES, "no session states around the activations")
    assert isinstance(exc, Refusal) and isinstance(exc, ValueError)  # callers catching ValueError still do
    assert exc.code is SettlementErrorCode.NO_STATES and exc.code == "no_states"
    assert exc.message == str(exc) == "no session states around the activations"
    assert exc.http_status == 400


@pytest.mark.parametrize(("args", "code"), [
    ((FROM.replace(tzinfo=None), TO, "sessions", 60.0), SettlementErrorCode.NAIVE_PERIOD),
    ((TO, FROM, "sessions", 60.0), SettlementErrorCode.EMPTY_PERIOD),
    ((FROM, TO, "nonsense", 60.0), SettlementErrorCode.UNKNOWN_BASELINE),
    ((FROM, TO, "sessions", 0.5), SettlementErrorCode.GRID_S_OUT_OF_RANGE),
])
def test_check_run_refuses_with_a_code(args, code):
    with pytest.raises(Refusal) as refused:
        services.check_run(*args)
    assert isinstance(refused.value, SettlementError) and refused.value.code == code


def test_the_rest_handler_answers_code_and_detail():
    response = exception_handler(SettlementError(SettlementErrorCode.EMPTY_PERIOD,
                                                 "period_to must be after period_from"), {})
    assert response.status_code == 400
    assert response.data == {"code": "empty_period", "detail": "period_to must be after period_from"}
