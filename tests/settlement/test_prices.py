"""Imbalance price files: the two real Dutch formats, the plain CSV, DST days and clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from settlement.io.prices import PriceFileError, load_prices, parse_prices

DATA = Path(__file__).parent / "data"


def test_real_nl_csv_uses_the_short_price():
    prices = load_prices(DATA / "nl-2025-05-week.csv")
    assert len(prices) == 672  # one week of 15-minute ISPs
    assert prices.index[0] == pd.Timestamp("2025-05-04T22:00Z")
    assert prices.index[-1] == pd.Timestamp("2025-05-11T21:45Z")
    assert prices.iloc[0] == 36.76
    # 2025-05-05 00:00Z: LONG 65.5, SHORT 84 -> SHORT; 21:00Z on the 11th: LONG 63, SHORT 149.4.
    assert prices.loc[pd.Timestamp("2025-05-05T00:00Z")] == 84.0
    assert prices.loc[pd.Timestamp("2025-05-11T21:00Z")] == 149.4
    assert prices.loc[pd.Timestamp("2025-05-05T06:30Z")] == -34.0  # negative prices kept
    assert prices.min() == -581.13 and prices.max() == 2940.0
    assert str(prices.index.tz) == "UTC"


def test_real_tennet_xml_uses_take_from_system_in_utc():
    prices = load_prices(DATA / "nl-tennet-export-2022-03-19.xml")
    assert len(prices) == 96
    # 19 March 2022 is winter time (UTC+1): PTU 1 = 00:00 local = 23:00Z the day before.
    assert prices.index[0] == pd.Timestamp("2022-03-18T23:00Z")
    assert prices.index[-1] == pd.Timestamp("2022-03-19T22:45Z")
    assert prices.iloc[0] == -5.0
    # PTU 37 (09:00 local = 08:00Z): TAKE_FROM_SYSTEM 501.44; PTU 39: -487.03.
    assert prices.loc[pd.Timestamp("2022-03-19T08:00Z")] == 501.44
    assert prices.loc[pd.Timestamp("2022-03-19T08:30Z")] == -487.03


def xml(date: str, ptus: list[tuple[int, str]]) -> str:
    records = "".join(f"<Record><DATE>{date}</DATE><PTU>{p}</PTU><PERIOD_FROM>{f}</PERIOD_FROM>"
                      f"<TAKE_FROM_SYSTEM>{p}.5</TAKE_FROM_SYSTEM></Record>" for p, f in ptus)
    return f"<export><ImbalancePrice>{records}</ImbalancePrice></export>"


def test_spring_dst_day_has_92_ptus():
    # 27 March 2022: 02:00 local does not exist. PTU 8 = 01:45 CET = 00:45Z; PTU 9 = 03:00 CEST = 01:00Z.
    prices = parse_prices(xml("03/27/2022", [(8, "01:45"), (9, "03:00"), (92, "23:45")]))
    assert list(prices.index) == [pd.Timestamp("2022-03-27T00:45Z"), pd.Timestamp("2022-03-27T01:00Z"),
                                  pd.Timestamp("2022-03-27T21:45Z")]
    with pytest.raises(PriceFileError, match=r"PTU 93 outside 1\.\.92"):
        parse_prices(xml("03/27/2022", [(93, "00:00")]))


def test_autumn_dst_day_has_100_ptus_and_repeated_hour():
    # 30 October 2022: 02:00-02:45 local twice. PTU 9 = 02:00 CEST = 00:00Z; PTU 13 = 02:00 CET = 01:00Z.
    prices = parse_prices(xml("10/30/2022", [(9, "02:00"), (13, "02:00"), (100, "23:45")]))
    assert list(prices.index) == [pd.Timestamp("2022-10-30T00:00Z"), pd.Timestamp("2022-10-30T01:00Z"),
                                  pd.Timestamp("2022-10-30T22:45Z")]
    assert list(prices) == [9.5, 13.5, 100.5]


def test_period_from_must_match_the_ptu():
    with pytest.raises(PriceFileError, match="PERIOD_FROM 02:00 does not match PTU 9 on 2022-03-27"):
        parse_prices(xml("03/27/2022", [(9, "02:00")]))


def test_plain_csv():
    text = "isp_start,price_eur_per_mwh\n2025-05-06T23:00:00+02:00,120.5\n2025-05-06T21:15:00Z,-3\n"
    prices = parse_prices(text)
    assert list(prices.index) == [pd.Timestamp("2025-05-06T21:00Z"), pd.Timestamp("2025-05-06T21:15Z")]
    assert list(prices) == [120.5, -3.0]


@pytest.mark.parametrize(("text", "message"), [
    ("time,price\n1,2\n", "line 1: unknown price format"),
    ("isp_start,price_eur_per_mwh\n2025-05-06T23:00:00Z,abc\n", "line 2, column price_eur_per_mwh: 'abc' is not"),
    ("isp_start,price_eur_per_mwh\n2025-05-06T23:00:00Z,1\n2025-05-06T24:15:00Z,1\n",
     "line 3, column isp_start: '2025-05-06T24:15:00Z' is not an ISO 8601 date-time"),
    ("isp_start,price_eur_per_mwh\n2025-05-06T23:00:00Z,1\n2025-05-06T23:07:00Z,1\n", "line 3.*not an ISP start"),
    ("isp_start,price_eur_per_mwh\n2025-05-06T23:00:00Z,1\n2025-05-06T23:00:00Z,2\n", "conflicting prices"),
    ("<export><broken>", "not well-formed XML"),
])
def test_bad_files_give_clear_errors(text, message):
    with pytest.raises(PriceFileError, match=message):
        parse_prices(text, "P.csv")
