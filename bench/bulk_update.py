"""Why dispatch writes answers with one VALUES join, not Django's bulk_update: both, same rows, same run.

    python bench/bulk_update.py [--rows 2000] [--repeat 3] [--quick] [--json OUT]

Creates a fresh PostgreSQL database (bench-only), N ChargingProfileCall rows, and writes the same
outcome fields onto them with `QuerySet.bulk_update` (CASE WHEN per row) and with
`smatch.db.update_from_values` (UPDATE ... FROM (VALUES ...)), interleaved, and prints the ratio.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Row, bench_args, finish, fresh_database, manage, production_env

FIELDS = ["answered_at", "http_status", "response_result", "error"]


def main() -> int:
    p = bench_args(__doc__)
    p.add_argument("--rows", type=int, default=2000)
    args = p.parse_args()
    n = 200 if args.quick else args.rows
    env = production_env(fresh_database("smatch_bench_bulk"))
    manage(env, "migrate", "--noinput", "-v", "0")
    os.environ.update(DATABASE_URL=env["DATABASE_URL"], DEBUG="false", DJANGO_SETTINGS_MODULE="smatch.settings")
    import django

    django.setup()
    from ocpi.models import ChargingProfileCall, OcpiParty, Session
    from smatch.db import update_from_values

    now = datetime.now(UTC)
    party = OcpiParty.objects.create(name="bench", country_code="NL", party_id="BEN", role="CPO")
    session = Session.objects.create(party=party, country_code="NL", ocpi_party_id="BEN", session_id="S1",
                                     location_id="L", evse_uid="E", connector_id="1", status="ACTIVE",
                                     start_date_time=now, kwh=0, last_updated=now)
    calls = ChargingProfileCall.objects.bulk_create(
        ChargingProfileCall(id=uuid.uuid4(), session=session, kind="SET") for _ in range(n))
    django_s, values_s = [], []
    for r in range(args.repeat):
        for c in calls:
            c.answered_at, c.http_status, c.response_result, c.error = now, 200 + r, "ACCEPTED", ""
        t = time.perf_counter()
        ChargingProfileCall.objects.bulk_update(calls, FIELDS, batch_size=1000)
        django_s.append(time.perf_counter() - t)
        rows = [{"pk": c.id, "answered_at": now, "http_status": 300 + r, "response_result": "ACCEPTED", "error": ""}
                for c in calls]
        t = time.perf_counter()
        update_from_values(ChargingProfileCall, rows, FIELDS)
        values_s.append(time.perf_counter() - t)
    case = f"{n:,} rows, PostgreSQL"
    finish([
        Row.of("bulk_update", case, "Django bulk_update (CASE WHEN)", "s", django_s),
        Row.of("bulk_update", case, "update_from_values (VALUES join)", "s", values_s),
        Row.of("bulk_update", case, "ratio bulk_update / VALUES join", "x",
               [a / b for a, b in zip(django_s, values_s, strict=True)]),
    ], args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
