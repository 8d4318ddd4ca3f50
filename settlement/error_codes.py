"""Settlement's refusals: one code per rule (stable snake_case values, for programs and tests) and a
sentence for people, by the project's refusal convention (smatch/errors.py): `SettlementError` is a
`Refusal` carrying a `SettlementErrorCode`, so the REST door's exception handler answers it as
`{"code": ..., "detail": ...}` with HTTP 400 like every other domain's refusal.
"""

from __future__ import annotations

from enum import StrEnum

from smatch.errors import Refusal


class SettlementErrorCode(StrEnum):
    # A database run's parameters (API, admin form, `settle --from/--to`).
    NAIVE_PERIOD = "naive_period"  # period_from / period_to without a UTC offset
    EMPTY_PERIOD = "empty_period"  # period_to not after period_from
    UNKNOWN_BASELINE = "unknown_baseline"
    GRID_S_OUT_OF_RANGE = "grid_s_out_of_range"
    # What a run or the file door finds in its inputs.
    NO_ACTIVATIONS = "no_activations"  # none relayed in the period
    NO_STATES = "no_states"  # no session state around the activations
    BAD_INPUT_FILE = "bad_input_file"  # S.csv / A.csv / M.csv: the message names file, line and column
    BAD_PRICE_FILE = "bad_price_file"
    BAD_INPUT = "bad_input"  # frames or parameters the core refuses (settlement.core.frames.FrameError, ...)
    # Outputs and the run's lease.
    NO_SUCH_OUTPUT = "no_such_output"
    LEASE_LOST = "lease_lost"  # the sweep took the run away; this attempt's results were discarded


class SettlementError(Refusal):
    """A settlement refused: `code` says which rule (a SettlementErrorCode), the message says it in
    words and where; nothing was written."""
