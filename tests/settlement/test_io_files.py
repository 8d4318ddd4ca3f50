"""The file door's two readers of S.csv agree: the fast path for clean files, the checking path for the rest."""

from __future__ import annotations

import pytest

from settlement.io import files

HEADER = "session_id,evse_uid,timestamp,kwh,current_l1_a,current_l2_a,current_l3_a,station_id\n"
CLEAN = (HEADER
         + " s1 ,E1,2025-05-06T23:04:00Z,0.1,16.0,16.0,16.0,L1\n"  # blanks around an id are not part of it
         + "s1,E1,2025-05-06 23:09:00+02,1.0000000000000002, 8 ,,,L1\n"  # hour-only offset; blank currents
         + "s2,E2,2025-05-06t21:05:00.5z,3e-1,,,, \n"  # lower case designators; kWh only; blank station
         + "\n"  # a blank line is skipped by both
         + "s2,E2,2025-05-06T21:10:00,0.75,0,0,0,\n")  # no designator: UTC


def test_a_clean_file_reads_the_same_by_both_paths(tmp_path):
    path = tmp_path / "S.csv"
    path.write_text(CLEAN)
    fast = files._read_clean_states(path)
    assert fast is not None  # the fast path vouched for it
    assert fast.equals(files._read_states_checked(path))
    assert fast["session_id"].tolist() == ["s1", "s1", "s2", "s2"]
    assert str(fast["timestamp"].iloc[1]) == "2025-05-06 21:09:00+00:00"
    assert fast["kwh"].iloc[1] == 1.0000000000000002


@pytest.mark.parametrize(("row", "where"), [
    ("s3,E3,2025-05-06T23:04:00Z,nan,1,1,1,L3", "line 3, column kwh"),
    ("s3,E3,2025-05-06T23:04:00Z,-1,1,1,1,L3", "line 3, column kwh"),
    ("s3,E3,2025-05-06T25:04:00Z,1,1,1,1,L3", "line 3, column timestamp"),
    ("s3,,2025-05-06T23:04:00Z,1,1,1,1,L3", "line 3, column evse_uid"),
    ("s3,E3,2025-05-06T23:04:00Z,1,inf,1,1,L3", "line 3, column current_l1_a"),
])
def test_a_bad_row_leaves_the_fast_path_and_is_named_by_the_checking_path(tmp_path, row, where):
    path = tmp_path / "S.csv"
    path.write_text(HEADER + "s1,E1,2025-05-06T23:00:00Z,0.1,16,16,16,L1\n" + row + "\n")
    assert files._read_clean_states(path) is None
    with pytest.raises(files.InputFileError, match=where):
        files.read_states(path)
