"""The database door's states loader: the PostgreSQL COPY path gives exactly the ORM path's frame."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pandas as pd
import pytest
from django.db import connection

from ocpi.models import OcpiParty, Session, SessionState
from settlement.io import db as loaders

T0 = datetime(2025, 5, 6, 8, 0, 0, 500_000, tzinfo=UTC)  # a fractional second on purpose


@pytest.mark.django_db
def test_copy_path_equals_orm_path():
    if connection.vendor != "postgresql":
        pytest.skip("the COPY path is PostgreSQL only (DATABASE_URL=postgres://...)")
    party = OcpiParty.objects.create(name="cpo", token_ours_hash="h" * 64, status="REGISTERED",
                                     country_code="NL", party_id="CPO")
    for n, evse in enumerate(["EVSE-1", "EVSE,2 \"quoted\""]):
        s = Session.objects.create(party=party, country_code="NL", ocpi_party_id="CPO", session_id=f"S{n}",
                                   location_id="L", evse_uid=evse, connector_id="1", status="ACTIVE",
                                   start_date_time=T0, kwh=0.0, last_updated=T0)
        for k in range(3):
            SessionState.objects.create(session=s, timestamp=T0 + timedelta(minutes=5 * k), kwh=1.25 * k,
                                        current_l1_a=16.0, current_l2_a=None if n else 0.0,
                                        current_l3_a=None, status="ACTIVE")
    start, end = T0 - timedelta(hours=1), T0 + timedelta(hours=1)
    copied = loaders.states_frame(start, end)
    with mock.patch.object(loaders.connection, "vendor", "other"):
        plain = loaders.states_frame(start, end)
    key = ["session_id", "timestamp"]
    assert len(copied) == 6
    pd.testing.assert_frame_equal(copied.sort_values(key).reset_index(drop=True),
                                  plain.sort_values(key).reset_index(drop=True), check_dtype=False)
    assert copied["current_l3_a"].isna().all() and copied["timestamp"].iloc[0].microsecond in (0, 500_000)
