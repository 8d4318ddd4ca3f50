"""`manage.py settle` end to end on small generated files, without a database."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from tests.settlement.helpers import at, frame, sampled_session
from tests.settlement.test_settle import throttled

DATA = Path(__file__).parent / "data"


def write_states(path: Path, n: int = 6) -> pd.DataFrame:
    rows = []
    for i in range(n):
        rows += sampled_session(f"s{i}", f"evse{i}", at("22:30:00") + pd.Timedelta(seconds=11 * i),
                                at("23:50:00"), throttled)
    states = frame(rows)
    out = states.copy()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    out["station_id"] = [f"st{int(s[1:]) // 2}" for s in out["session_id"]]
    out.to_csv(path, index=False)
    return states


def write_activations(path: Path) -> None:
    path.write_text("activation_id,t_signal,t_clear\na1,2025-05-06T23:04:00Z,2025-05-06T23:15:00Z\n")


@pytest.fixture
def inputs(tmp_path):
    write_states(tmp_path / "S.csv")
    write_activations(tmp_path / "A.csv")
    (tmp_path / "P.csv").write_text("isp_start,price_eur_per_mwh\n2025-05-06T23:00:00Z,250\n")
    return tmp_path


def test_settle_files_end_to_end(inputs):
    out = inputs / "out"
    call_command("settle", states=str(inputs / "S.csv"), activations=str(inputs / "A.csv"),
                 prices=str(inputs / "P.csv"), out=str(out), baseline="all", verbosity=0)
    with open(out / "activations.csv") as fh:
        header = next(csv.reader(fh))
    assert header[:9] == ["activation_id", "t_signal", "t_clear", "p_signal_kw", "p_clear_kw", "baseline_kwh",
                          "delivered_kwh", "shed_kwh", "sessions"]
    with open(out / "isp.csv") as fh:
        assert next(csv.reader(fh))[:7] == ["isp_start", "activation_id", "baseline_kwh", "delivered_kwh",
                                            "shed_kwh", "price_eur_per_mwh", "value_eur"]
    act = pd.read_csv(out / "activations.csv")
    # 6 sessions: baseline 6 x 11.04 = 66.24 kW for 11 min = 12.144 kWh; delivered 6 x 1.058 = 6.348 kWh.
    assert act["baseline_kwh"].iloc[0] == pytest.approx(12.144, rel=1e-6)
    assert act["delivered_kwh"].iloc[0] == pytest.approx(6.348, rel=2e-3)
    isp = pd.read_csv(out / "isp.csv")
    # value = shed (MWh) x 250 EUR/MWh, EUR to 2 decimals.
    assert isp["value_eur"].iloc[0] == pytest.approx(isp["shed_kwh"].iloc[0] / 1000 * 250, abs=0.005)
    assert act["t_signal"].iloc[0] == "2025-05-06T23:04:00Z"
    book = pd.read_excel(out / "settlement.xlsx", sheet_name=None)
    assert {"activations", "isp", "sessions", "non_responders", "erasable_by_time_of_day"} <= set(book)
    assert book["activations"]["baseline_kwh"].iloc[0] == pytest.approx(12.144, rel=1e-6)
    for name in ("activation_a1_shed.png", "activation_a1_theoretical.png", "erasable_by_time_of_day.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_meters_reconciliation_through_the_command(inputs):
    states = pd.read_csv(inputs / "S.csv")
    # Meter = the true energy per station and ISP + 4.5 W idle (1.125 Wh per 15 min).
    rows = []
    for start in pd.date_range("2025-05-06T22:30Z", "2025-05-06T23:30Z", freq="15min"):
        for station in sorted(states["station_id"].unique()):
            sessions = [int(s[1:]) for s in states.loc[states["station_id"] == station, "session_id"].unique()]
            energy = 0.0
            for i in sessions:
                begin = max(start, at("22:30:00") + pd.Timedelta(seconds=11 * i))
                end = start + pd.Timedelta(minutes=15)
                energy += sum(throttled(t) for t in pd.date_range(begin, end, freq="1s", inclusive="left")) \
                    * 3 * 0.23 / 3600
            rows.append({"station_id": station, "interval_start": start.isoformat(),
                         "energy_kwh": energy + 0.001125})
    pd.DataFrame(rows).to_csv(inputs / "M.csv", index=False)
    out = inputs / "out"
    call_command("settle", states=str(inputs / "S.csv"), activations=str(inputs / "A.csv"),
                 meters=str(inputs / "M.csv"), out=str(out), verbosity=0)
    summary = pd.read_csv(out / "meters_summary.csv").iloc[0]
    # Without the idle term the reconstruction misses 1.125 Wh of every interval; with it, near zero.
    assert summary["error_before"] < 0
    assert abs(summary["error_after"]) < abs(summary["error_before"]) / 5


@pytest.mark.parametrize(("states_text", "message"), [
    ("session_id,evse_uid,timestamp,kwh,current_l1_a,current_l2_a,current_l3_a\n"
     "s,e,2025-05-06T23:00:00Z,0,16,,\ns,e,2025-05-06T23:05:00Z,abc,16,,\n",
     r"S.csv line 3, column kwh: 'abc' is not a number"),
    ("session_id,evse_uid,timestamp,kwh,current_l1_a,current_l2_a,current_l3_a\n"
     "s,e,2025-05-06T23:00:00Z,0,16,,\ns,e,06/05/2025 23:05,1,16,,\n",
     r"S.csv line 3, column timestamp: '06/05/2025 23:05' is not an ISO 8601 date-time"),
    ("session_id,evse_uid,timestamp,kwh,current_l1_a,current_l2_a\ns,e,2025-05-06T23:00:00Z,0,16,\n",
     r"S.csv line 1: missing column\(s\) current_l3_a"),
    ("session_id,evse_uid,timestamp,kwh,current_l1_a,current_l2_a,current_l3_a\n"
     "s,e,2025-05-06T23:00:00Z,0,-16,,\n", r"S.csv line 2, column current_l1_a: '-16' is below 0"),
])
def test_bad_states_file_is_a_clear_error_and_writes_nothing(tmp_path, states_text, message):
    (tmp_path / "S.csv").write_text(states_text)
    write_activations(tmp_path / "A.csv")
    with pytest.raises(CommandError, match=message):
        call_command("settle", states=str(tmp_path / "S.csv"), activations=str(tmp_path / "A.csv"),
                     out=str(tmp_path / "out"), verbosity=0)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_activation_file_names_line_and_column(inputs):
    (inputs / "A.csv").write_text("activation_id,t_signal,t_clear\na,2025-05-06T23:04:00Z,2025-05-06T23:00:00Z\n")
    with pytest.raises(CommandError, match=r"A.csv line 2, column t_clear: .* is not after t_signal"):
        call_command("settle", states=str(inputs / "S.csv"), activations=str(inputs / "A.csv"),
                     out=str(inputs / "out"), verbosity=0)


def test_bad_price_file_is_reported(inputs):
    (inputs / "P.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(CommandError, match=r"P\.csv line 1: unknown price format"):
        call_command("settle", states=str(inputs / "S.csv"), activations=str(inputs / "A.csv"),
                     prices=str(inputs / "P.csv"), out=str(inputs / "out"), verbosity=0)


def test_real_price_file_through_the_command(tmp_path):
    # The generated day is 2025-05-06, inside the real NL week: 23:00Z SHORT price from the file.
    write_states(tmp_path / "S.csv", n=2)
    write_activations(tmp_path / "A.csv")
    call_command("settle", states=str(tmp_path / "S.csv"), activations=str(tmp_path / "A.csv"),
                 prices=str(DATA / "nl-2025-05-week.csv"), out=str(tmp_path / "out"), verbosity=0)
    isp = pd.read_csv(tmp_path / "out" / "isp.csv")
    with open(DATA / "nl-2025-05-week.csv") as fh:
        short = {row["START_DATETIME_UTC"]: float(row["IMBALANCE_SHORT_EUR_MWH"]) for row in csv.DictReader(fh)}
    assert isp["price_eur_per_mwh"].iloc[0] == short["2025-05-06 23:00:00.000 Z"]
