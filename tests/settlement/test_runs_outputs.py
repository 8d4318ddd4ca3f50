"""A settlement run cannot hang (lease, sweep, every exception fails it); outputs an analyst can hand on;
timestamps as the wire sends them."""

from __future__ import annotations

import stat
from datetime import timedelta

import openpyxl
import pandas as pd
import pytest

from settlement import services
from settlement.core import settle_frames
from settlement.io import files
from settlement.models import SettlementRun
from settlement.outputs.exports import write_outputs
from smatch import clock as product_clock
from tests.settlement.helpers import at
from tests.settlement.test_settle import activations, figure8_states

HEADER = "session_id,evse_uid,timestamp,kwh,current_l1_a,current_l2_a,current_l3_a\n"


@pytest.fixture
def analyst_run(db, clock, settings, tmp_path):
    settings.SETTLEMENT_OUTPUT_DIR = tmp_path / "runs"
    settings.SETTLEMENT_LEASE_S = 600
    settings.SETTLEMENT_MAX_ATTEMPTS = 2

    def make(status: str, heartbeat_age_s: float | None, attempts: int) -> SettlementRun:
        now = product_clock.now()
        return SettlementRun.objects.create(
            period_from=at("00:00:00"), period_to=at("23:00:00"), status=status, attempts=attempts,
            heartbeat_at=None if heartbeat_age_s is None else now - timedelta(seconds=heartbeat_age_s))
    return make


def test_sweep_requeues_a_run_whose_worker_died_then_fails_it(analyst_run, monkeypatch):
    queued = []
    monkeypatch.setattr(services, "queue_run", queued.append)  # observe what the sweep queues
    dead_once = analyst_run(SettlementRun.Status.RUNNING, 601, attempts=1)
    dead_twice = analyst_run(SettlementRun.Status.RUNNING, 601, attempts=2)
    alive = analyst_run(SettlementRun.Status.RUNNING, 30, attempts=1)
    report = services.sweep_stale_runs()
    assert report.requeued == [dead_once.pk] and report.failed == [dead_twice.pk]
    assert queued == [dead_once.pk]
    dead_once.refresh_from_db(), dead_twice.refresh_from_db(), alive.refresh_from_db()
    assert dead_once.status == SettlementRun.Status.PENDING
    assert dead_twice.status == SettlementRun.Status.FAILED
    assert dead_twice.error.startswith("worker lost: no heartbeat since ") and "after 2 attempt(s)" in dead_twice.error
    assert alive.status == SettlementRun.Status.RUNNING


def test_sweep_requeues_a_pending_run_whose_message_was_lost(analyst_run, monkeypatch, clock):
    queued = []
    monkeypatch.setattr(services, "queue_run", queued.append)
    lost = analyst_run(SettlementRun.Status.PENDING, None, attempts=0)
    assert services.sweep_stale_runs().requeued == []  # young: its task may still be on its way
    clock.advance(601)
    assert services.sweep_stale_runs().requeued == [lost.pk] and queued == [lost.pk]


def test_every_exception_ends_the_run_failed_with_its_message(analyst_run, monkeypatch):
    run = analyst_run(SettlementRun.Status.PENDING, None, attempts=0)

    def broken(*_args):
        raise RuntimeError("database went away")

    monkeypatch.setattr("settlement.io.db.activations_frame", broken)
    services.run_settlement(run.pk)
    run.refresh_from_db()
    assert run.status == SettlementRun.Status.FAILED
    assert run.error == "RuntimeError: database went away"
    assert run.attempts == 1 and run.finished_at is not None


def test_a_claimed_run_is_not_run_twice(analyst_run, monkeypatch):
    run = analyst_run(SettlementRun.Status.RUNNING, 0, attempts=1)
    called = []
    monkeypatch.setattr("settlement.io.db.activations_frame", lambda *a: called.append(a))
    services.run_settlement(run.pk)  # a redelivered task: the conditional claim finds nothing pending
    run.refresh_from_db()
    assert called == [] and run.status == SettlementRun.Status.RUNNING and run.attempts == 1


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("x") / "out"
    index = pd.date_range(at("22:00:00"), periods=12, freq="15min")
    result = settle_frames(figure8_states(4), activations(), pd.Series(100.0, index=index),
                           baseline="all")
    write_outputs(result, out)
    return result, out


def test_output_folder_and_files_are_group_readable_not_private(written):
    _result, out = written
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o640}


def test_xlsx_times_are_real_utc_datetimes_said_in_the_header(written):
    _result, out = written
    sheet = openpyxl.load_workbook(out / "settlement.xlsx")["activations"]
    header = [c.value for c in sheet[1]]
    col = header.index("t_signal (UTC)") + 1
    cell = sheet.cell(row=2, column=col)
    assert cell.is_date and cell.value == at("23:04:00").tz_localize(None).to_pydatetime()
    assert "t_signal" not in header  # no tz-less twin that could be misread


def test_figures_are_rounded_to_their_meaning_and_counts_are_integers(written):
    result, out = written
    act = pd.read_csv(out / "activations.csv", dtype=str)
    for col, decimals in (("delivered_kwh", 3), ("p_signal_kw", 3), ("value_eur", 2), ("net_value_eur", 2)):
        assert len(act[col].iloc[0].partition(".")[2]) <= decimals, (col, act[col].iloc[0])
    assert act["sessions"].iloc[0] == "4" and act["flagged_sessions"].iloc[0] == "0"
    assert float(act["delivered_kwh"].iloc[0]) == pytest.approx(result.activations["delivered_kwh"].iloc[0],
                                                                abs=5e-4)
    assert act["baseline"].iloc[0] == "trapezoid"
    assert act["t_signal"].iloc[0] == "2025-05-06T23:04:00Z"  # CSV: ISO 8601 UTC text


def test_activations_keep_the_input_order():
    acts = pd.DataFrame({"activation_id": ["late", "early"], "t_signal": [at("23:30:00"), at("23:04:00")],
                         "t_clear": [at("23:40:00"), at("23:15:00")]})
    result = settle_frames(figure8_states(2), acts)
    assert result.activations["activation_id"].tolist() == ["late", "early"]
    assert result.isp["activation_id"].tolist()[0] == "late"


def test_wire_timestamp_forms_are_read(tmp_path):
    path = tmp_path / "S.csv"
    path.write_text(HEADER
                    + "s,e,2025-05-06t23:00:00z,0,16,,\n"  # lowercase designators
                    + "s,e,2025-05-07T01:05:00+02,0.5,16,,\n"  # hour-only offset, mixed with others
                    + "s,e,2025-05-06T23:10:00,1.0,16,,\n"  # no designator = UTC (OCPI)
                    + "s,e,2025-05-06T23:15:00.250+0000,1.5,16,,\n")
    got = files.read_states(path)["timestamp"].tolist()
    assert got == [at("23:00:00"), at("23:05:00"), at("23:10:00"), at("23:15:00") + pd.Timedelta(milliseconds=250)]


@pytest.mark.parametrize("bad", ["2025-05-06T23:61:00Z", "6 May 2025 23:00", "2025-05-06T23:00:00+2", ""])
def test_a_bad_timestamp_names_its_row(tmp_path, bad):
    path = tmp_path / "S.csv"
    path.write_text(HEADER + "s,e,2025-05-06T23:00:00Z,0,16,,\n" + f"s,e,{bad},0.5,16,,\n")
    with pytest.raises(files.InputFileError, match=r"S.csv line 3, column timestamp: "):
        files.read_states(path)


def test_the_sweep_is_on_the_beat_schedule(settings):
    from smatch.celery import app

    entry = app.conf.beat_schedule["settlement.sweep_stale_runs"]
    assert entry["task"] == "settlement.sweep_stale_runs"
    assert entry["schedule"] == settings.SETTLEMENT_SWEEP_INTERVAL_S
    assert "settlement.sweep_stale_runs" in app.tasks
