"""Vendor CSV import: accepted layouts, one-line errors with file line numbers."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from envs.data.csv_import import parse_timeframe, read_bars_csv
from envs.data.errors import DataError


def _utc(*texts: str) -> list[int]:
    return [int(pd.Timestamp(t, tz="UTC").timestamp()) for t in texts]


def _write(tmp_path, text: str, name: str = "bars.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# name, file text, expected bar-open times (UTC), closes, freq_seconds, volumes (None: no volume)
GOOD = [
    (
        "date_time_split",
        "Date,Time,Open,High,Low,Close,Volume\n"
        "2024-01-02,09:30,100,101,99,100.5,1000\n"
        "2024-01-02,09:35,100.5,102,100,101.5,1200\n"
        "2024-01-02,09:40,101.5,103,101,102.5,900\n",
        _utc("2024-01-02 09:30", "2024-01-02 09:35", "2024-01-02 09:40"),
        [100.5, 101.5, 102.5], 300, [1000, 1200, 900],
    ),
    (
        "iso_with_tz_offset",
        "timestamp,open,high,low,close,volume\n"
        "2024-01-02T09:30:00+02:00,1.10,1.12,1.09,1.11,5\n"
        "2024-01-02T09:45:00+02:00,1.11,1.13,1.10,1.12,6\n"
        "2024-01-02T10:00:00+02:00,1.12,1.14,1.11,1.13,7\n",
        _utc("2024-01-02 07:30", "2024-01-02 07:45", "2024-01-02 08:00"),
        [1.11, 1.12, 1.13], 900, [5, 6, 7],
    ),
    (
        "iso_z_no_seconds",
        "Datetime,Open,High,Low,Close,Volume\n"
        "2024-01-02T09:30Z,10,11,9,10.5,1\n"
        "2024-01-02T09:31Z,10.5,11,10,10.7,2\n",
        _utc("2024-01-02 09:30", "2024-01-02 09:31"), [10.5, 10.7], 60, [1, 2],
    ),
    (
        "dukascopy",
        "Gmt time,Open,High,Low,Close,Volume\n"
        "02.01.2024 00:00:00.000,1.10381,1.10420,1.10350,1.10400,1234.56\n"
        "02.01.2024 01:00:00.000,1.10400,1.10500,1.10390,1.10480,2234.5\n"
        "02.01.2024 02:00:00.000,1.10480,1.10490,1.10300,1.10310,999\n",
        _utc("2024-01-02 00:00", "2024-01-02 01:00", "2024-01-02 02:00"),
        [1.10400, 1.10480, 1.10310], 3600, [1234.56, 2234.5, 999],
    ),
    (
        "us_daily_adj_close_ignored",
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "1/2/2024,187.15,188.44,183.89,185.64,184.9,82488700\n"
        "1/3/2024,184.22,185.88,183.43,184.25,183.5,58414500\n"
        "1/4/2024,182.15,183.09,180.88,181.91,181.2,71983600\n"
        "1/5/2024,181.99,182.76,180.17,181.18,180.4,62303300\n"
        "1/8/2024,182.09,185.60,181.50,185.56,184.8,59144500\n",
        _utc("2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"),
        [185.64, 184.25, 181.91, 181.18, 185.56], 86400,
        [82488700, 58414500, 71983600, 62303300, 59144500],
    ),
    (
        "cryptodatadownload_banner_newest_first",
        "https://www.CryptoDataDownload.com\n"
        "Unix Timestamp,Date,Symbol,Open,High,Low,Close,Volume BTC,Volume USD\n"
        "1584140400,2020-03-13 11-PM,BTCUSD,5600,5700,5500,5650,120.5,680000\n"
        "1584136800,2020-03-13 10-PM,BTCUSD,5500,5620,5450,5600,150.25,840000\n"
        "1584133200,2020-03-13 09-PM,BTCUSD,5400,5550,5380,5500,99,540000\n"
        "1584090000,2020-03-13 09-AM,BTCUSD,5000,5100,4900,5050,10,50000\n",
        _utc("2020-03-13 09:00", "2020-03-13 21:00", "2020-03-13 22:00", "2020-03-13 23:00"),
        [5050, 5500, 5600, 5650], 3600, [10, 99, 150.25, 120.5],
    ),
    (
        "epoch_seconds",
        "unix,open,high,low,close,volume\n"
        "1704187800,100,101,99,100.5,10\n"
        "1704187860,100.5,101,100,100.8,11\n"
        "1704187920,100.8,102,100.1,101.9,12\n",
        [1704187800, 1704187860, 1704187920], [100.5, 100.8, 101.9], 60, [10, 11, 12],
    ),
    (
        "epoch_milliseconds_short_names",
        "timestamp,o,h,l,c,v\n"
        "1704187800000,100,101,99,100.5,10\n"
        "1704188100000,100.5,101,100,100.8,11\n"
        "1704188400000,100.8,102,100.1,101.9,12\n",
        [1704187800, 1704188100, 1704188400], [100.5, 100.8, 101.9], 300, [10, 11, 12],
    ),
    (
        "no_volume_column",
        "date,open,high,low,close\n"
        "2024-01-02 09:30:00,1,2,0.5,1.5\n"
        "2024-01-02 09:35:00,1.5,2,1,1.8\n",
        _utc("2024-01-02 09:30", "2024-01-02 09:35"), [1.5, 1.8], 300, None,
    ),
    (
        "uppercase_headers",
        "DATETIME,OPEN,HIGH,LOW,CLOSE,VOLUME\n"
        "2024-01-02 09:30:00,1,2,0.5,1.5,3\n"
        "2024-01-02 09:35:00,1.5,2,1,1.8,4\n",
        _utc("2024-01-02 09:30", "2024-01-02 09:35"), [1.5, 1.8], 300, [3, 4],
    ),
    (
        "hourly_with_weekend_gap",
        "time,open,high,low,close,volume\n"
        "2024-01-05 20:00,1.1,1.2,1.0,1.15,1\n"
        "2024-01-05 21:00,1.15,1.2,1.1,1.18,1\n"
        "2024-01-05 22:00,1.18,1.2,1.1,1.12,1\n"
        "2024-01-07 22:00,1.13,1.2,1.1,1.14,1\n"
        "2024-01-07 23:00,1.14,1.2,1.1,1.16,1\n",
        _utc("2024-01-05 20:00", "2024-01-05 21:00", "2024-01-05 22:00",
             "2024-01-07 22:00", "2024-01-07 23:00"),
        [1.15, 1.18, 1.12, 1.14, 1.16], 3600, [1, 1, 1, 1, 1],
    ),
    (
        "metatrader_brackets_yyyymmdd_hhmmss",
        "<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<TICKVOL>,<VOL>\n"
        "20240102,093000,1.1,1.2,1.0,1.15,100,0\n"
        "20240102,094500,1.15,1.2,1.1,1.18,120,0\n",
        _utc("2024-01-02 09:30", "2024-01-02 09:45"), [1.15, 1.18], 900, [100, 120],
    ),
    (
        "yyyymmdd_daily_last_column",
        "Date,Open,High,Low,Last\n"
        "20240102,10,11,9,10.5\n"
        "20240103,10.5,12,10,11.5\n",
        _utc("2024-01-02", "2024-01-03"), [10.5, 11.5], 86400, None,
    ),
    (
        "us_minutes_and_seconds",
        "Date,Open,High,Low,Close,Volume\n"
        "1/2/2024 9:30,10,11,9,10.5,1\n"
        "1/2/2024 9:31,10.5,12,10,11.5,2\n",
        _utc("2024-01-02 09:30", "2024-01-02 09:31"), [10.5, 11.5], 60, [1, 2],
    ),
    (
        "us_with_seconds",
        "Date,Open,High,Low,Close,Volume\n"
        "12/29/2023 16:00:00,10,11,9,10.5,1\n"
        "12/29/2023 16:00:30,10.5,12,10,11.5,2\n",
        _utc("2023-12-29 16:00:00", "2023-12-29 16:00:30"), [10.5, 11.5], 30, [1, 2],
    ),
    (
        "semicolon_empty_volume_blank_lines",
        "Date;Open;High;Low;Close;Volume\n"
        "2024-01-02;10;11;9;10.5;\n"
        "\n"
        "2024-01-03;10.5;12;10;11.5;7\n"
        "\n\n",
        _utc("2024-01-02", "2024-01-03"), [10.5, 11.5], 86400, [0.0, 7],
    ),
    (
        "quoted_thousands_separators",
        'Date,Price,Open,High,Low,Vol.\n'
        '"Jan 03, 2024","1,234.50","1,230.00","1,240.00","1,220.00","5,000"\n'
        '"Jan 02, 2024","1,230.00","1,225.00","1,235.00","1,215.00","4,000"\n',
        _utc("2024-01-02", "2024-01-03"), [1230.0, 1234.5], 86400, [4000, 5000],
    ),
    (
        "tab_delimited_crlf",
        "Date\tOpen\tHigh\tLow\tClose\tVolume\r\n"
        "2024-01-02\t10\t11\t9\t10.5\t1\r\n"
        "2024-01-03\t10.5\t12\t10\t11.5\t2\r\n",
        _utc("2024-01-02", "2024-01-03"), [10.5, 11.5], 86400, [1, 2],
    ),
]


@pytest.mark.parametrize("name,text,stamps,closes,freq,volumes", GOOD, ids=[g[0] for g in GOOD])
def test_accepted_layouts(tmp_path, name, text, stamps, closes, freq, volumes):
    bars = read_bars_csv(_write(tmp_path, text, f"{name}.csv"))
    assert bars.timestamp.dtype == np.int64
    assert bars.timestamp.tolist() == stamps
    np.testing.assert_allclose(bars.close, closes)
    assert bars.freq_seconds == freq
    assert bars.source == f"csv:{name}.csv"
    assert not bars.has_labels
    if volumes is None:
        assert not bars.has_volume
        np.testing.assert_array_equal(bars.volume, np.ones(len(stamps)))
    else:
        assert bars.has_volume
        np.testing.assert_allclose(bars.volume, volumes)
    assert np.all(bars.high >= bars.low)


def test_ohlc_columns_follow_the_sort(tmp_path):
    text = ("Date,Time,Open,High,Low,Close\n"
            "2024-01-02,10:00,3,3.5,2.5,3.2\n"
            "2024-01-02,09:00,1,1.5,0.5,1.2\n"
            "2024-01-02,09:30,2,2.5,1.5,2.2\n")
    bars = read_bars_csv(_write(tmp_path, text))
    assert bars.open.tolist() == [1, 2, 3]
    assert bars.high.tolist() == [1.5, 2.5, 3.5]
    assert bars.low.tolist() == [0.5, 1.5, 2.5]
    assert bars.freq_seconds == 1800


def test_day_first_dates_when_month_first_cannot_parse(tmp_path):
    text = ("Date,Open,High,Low,Close\n"
            "02/01/2024,1,2,0.5,1.5\n"
            "03/01/2024,1,2,0.5,1.5\n"
            "13/01/2024,1,2,0.5,1.5\n")
    bars = read_bars_csv(_write(tmp_path, text))
    assert bars.timestamp.tolist() == _utc("2024-01-02", "2024-01-03", "2024-01-13")


def test_timeframe_argument(tmp_path):
    path = _write(tmp_path, GOOD[3][1])  # hourly Dukascopy
    assert read_bars_csv(path, timeframe="1h").freq_seconds == 3600
    assert read_bars_csv(path, timeframe=3600).freq_seconds == 3600
    with pytest.raises(DataError, match=r"bars are 3600 s apart but --timeframe is 300 s"):
        read_bars_csv(path, timeframe="5min")
    with pytest.raises(DataError, match=r"bars.csv: .*timeframe.*fast"):
        read_bars_csv(path, timeframe="fast")


def _bad(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


HEADER = "Date,Open,High,Low,Close,Volume"
# name, file text, expected line (None: no row), keywords expected in the message
BAD = [
    ("empty_file", "", None, ["empty"]),
    ("blank_file", "\n  \n\n", None, ["empty"]),
    ("no_header", _bad(["foo,bar,baz", "1,2,3"]), None, ["no header", "missing", "open", "close", "'foo'"]),
    ("missing_close", _bad(["Date,Open,High,Low,Volume", "2024-01-02,1,2,0.5,3"]), None,
     ["missing", "close", "'Date'", "'Volume'"]),
    ("adj_close_is_not_close", _bad(["Date,Open,High,Low,Adj Close", "2024-01-02,1,2,0.5,3"]), None,
     ["missing", "close"]),
    ("missing_timestamp", _bad(["Open,High,Low,Close", "1,2,0.5,1.5", "1,2,0.5,1.5"]), None,
     ["timestamp column", "'Open'"]),
    ("header_only", _bad(["banner", HEADER]), None, ["no data rows", "line 2"]),
    ("bad_timestamp", _bad(["some banner", HEADER, "2024-01-02,1,2,0.5,1.5,1",
                            "2024-01-03,1,2,0.5,1.5,1", "2024-13-45,1,2,0.5,1.5,1"]),
     5, ["timestamp", "'2024-13-45'"]),
    ("garbage_timestamps", _bad([HEADER, "hello,1,2,0.5,1.5,1", "world,1,2,0.5,1.5,1"]),
     2, ["timestamp", "'hello'"]),
    ("empty_timestamp", _bad([HEADER, "2024-01-02,1,2,0.5,1.5,1", ",1,2,0.5,1.5,1",
                              "2024-01-04,1,2,0.5,1.5,1"]), 3, ["timestamp is empty"]),
    ("bad_epoch", _bad(["unix,open,high,low,close", "1704187800,1,2,0.5,1.5",
                        "17041878xx,1,2,0.5,1.5", "1704187920,1,2,0.5,1.5"]), 3, ["timestamp", "17041878xx"]),
    ("duplicate_newest_first", _bad([HEADER, "2024-01-04,1,2,0.5,1.5,1", "2024-01-03,1,2,0.5,1.5,1",
                                     "2024-01-03,1,2,0.5,1.5,1", "2024-01-02,1,2,0.5,1.5,1"]),
     4, ["duplicate", "2024-01-03", "line 3"]),
    ("high_below_low", _bad([HEADER, "2024-01-02,1,2,0.5,1.5,1", "2024-01-03,1,0.4,0.5,1.5,1",
                             "2024-01-04,1,2,0.5,1.5,1"]), 3, ["high", "below low"]),
    ("high_below_low_newest_first", _bad(["banner", "", HEADER, "2024-01-04,1,2,0.5,1.5,1",
                                          "2024-01-03,1,2,0.5,1.5,1", "2024-01-02,1,0.4,0.5,1.5,1"]),
     6, ["below low"]),
    ("zero_price", _bad([HEADER, "2024-01-02,1,2,0.5,1.5,1", "2024-01-03,1,2,0.5,1.5,1",
                         "2024-01-04,1,2,0.5,0,1"]), 4, ["close", "positive"]),
    ("negative_price", _bad([HEADER, "2024-01-02,-1,2,0.5,1.5,1", "2024-01-03,1,2,0.5,1.5,1"]),
     2, ["open", "positive"]),
    ("nan_price", _bad([HEADER, "2024-01-02,1,2,0.5,1.5,1", "2024-01-03,1,NaN,0.5,1.5,1"]),
     3, ["high", "NaN"]),
    ("inf_price", _bad([HEADER, "2024-01-02,1,2,0.5,1.5,1", "2024-01-03,1,2,0.5,inf,1"]),
     3, ["close", "infinite"]),
    ("non_numeric_price", _bad([HEADER, "2024-01-02,1,2,0.5,1.5,1", "2024-01-03,1,2,abc,1.5,1"]),
     3, ["low", "not a number", "'abc'"]),
    ("empty_price", _bad([HEADER, "2024-01-02,1,2,0.5,1.5,1", "2024-01-03,,2,0.5,1.5,1"]),
     3, ["open is empty"]),
    ("non_numeric_volume", _bad([HEADER, "2024-01-02,1,2,0.5,1.5,x", "2024-01-03,1,2,0.5,1.5,1"]),
     2, ["volume", "not a number"]),
    ("negative_volume_newest_first", _bad([HEADER, "2024-01-04,1,2,0.5,1.5,1", "2024-01-03,1,2,0.5,1.5,1",
                                           "2024-01-02,1,2,0.5,1.5,-5"]), 4, ["volume", "negative"]),
    ("one_bar", _bad(["banner", HEADER, "2024-01-02,1,2,0.5,1.5,1"]), None, ["at least 2", "line 3"]),
    ("too_many_fields", _bad([HEADER, "2024-01-02,1,2,0.5,1.5,1", "2024-01-03,1,2,0.5,1.5,1",
                              "2024-01-04,1,2,0.5,1.5,1,9,9"]), 4, ["fields"]),
]


@pytest.mark.parametrize("name,text,line,keywords", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_file_line_and_problem(tmp_path, name, text, line, keywords):
    path = _write(tmp_path, text, f"{name}.csv")
    with pytest.raises(DataError) as info:
        read_bars_csv(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"{name}.csv" in msg
    assert info.value.row == line
    if line is None:
        assert ": row " not in msg
    else:
        assert f": row {line}: " in msg
    for word in keywords:
        assert word.lower() in msg.lower(), (word, msg)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_bars_csv(tmp_path / "nope.csv")


def test_mixed_second_and_millisecond_epochs(tmp_path):
    text = ("Unix,Open,High,Low,Close\n"
            "1704187800,1,2,0.5,1.5\n"
            "1704187860000,1,2,0.5,1.5\n"
            "1704187920,1,2,0.5,1.5\n")
    assert read_bars_csv(_write(tmp_path, text)).timestamp.tolist() == [1704187800, 1704187860, 1704187920]


@pytest.mark.parametrize("text,seconds", [
    ("5min", 300), ("5m", 300), ("1h", 3600), ("1H", 3600), ("60min", 3600), ("1d", 86400),
    ("daily", 86400), ("D", 86400), ("30s", 30), (300, 300), ("300", 300), (" 15 min ", 900),
    ("4hours", 14400), ("1w", 604800), ("M5", 300), ("H1", 3600), ("hourly", 3600), (np.int64(60), 60),
])
def test_parse_timeframe(text, seconds):
    assert parse_timeframe(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5x", "0min", "-5m", 0, -60, "1M", 1.5, None, True, "5 5m"])
def test_parse_timeframe_rejects(text):
    with pytest.raises(ValueError) as info:
        parse_timeframe(text)
    assert "\n" not in str(info.value)


def test_large_file_imports_quickly(tmp_path):
    n = 353_000
    rng = np.random.default_rng(0)
    stamps = np.datetime64("2020-01-01T00:00:00") + np.arange(n).astype("timedelta64[m]") * 5
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    volume = rng.integers(1, 1000, n)
    table = np.column_stack([np.datetime_as_string(stamps).astype(object), open_, high, low, close, volume])
    path = tmp_path / "big.csv"
    np.savetxt(path, table, fmt=["%s", "%.5f", "%.5f", "%.5f", "%.5f", "%d"], delimiter=",",
               header="timestamp,open,high,low,close,volume", comments="")
    start = time.perf_counter()
    bars = read_bars_csv(path)
    elapsed = time.perf_counter() - start
    assert len(bars) == n
    assert bars.freq_seconds == 300
    assert bars.timestamp[0] == _utc("2020-01-01")[0]
    assert np.all(np.diff(bars.timestamp) == 300)
    assert elapsed < 20, elapsed


def _rows(stamps, start=100.0):
    lines, price = [], start
    for t in stamps:
        lines.append(f"{t},{price:.2f},{price + 1:.2f},{price - 1:.2f},{price + 0.5:.2f},10")
        price += 0.5
    return "timestamp,open,high,low,close,volume\n" + "\n".join(lines) + "\n"


def test_mixed_bar_lengths_are_refused_at_the_first_short_step(tmp_path):
    five = [f"2024-01-02 09:{m:02d}" for m in range(0, 60, 5)]
    one = [f"2024-01-02 10:{m:02d}" for m in range(0, 4)]  # four 1-minute bars after twelve 5-minute ones
    path = _write(tmp_path, _rows(five + one))
    with pytest.raises(DataError, match=r"bars\.csv: row 15: mixed bar lengths: this bar starts 60 s after the one before, but most bars are 300 s apart \(3 such rows\)") as err:
        read_bars_csv(path)
    assert "\n" not in str(err.value)
    gaps = [f"2024-01-02 09:{m:02d}" for m in range(0, 30, 5)] + [f"2024-01-02 11:{m:02d}" for m in range(0, 30, 5)]
    assert read_bars_csv(_write(tmp_path, _rows(gaps), "gaps.csv")).freq_seconds == 300  # longer steps are gaps, not an error


def test_ambiguous_dates_are_read_the_way_that_keeps_bars_together(tmp_path):
    """10 daily bars written d/m/yyyy with every day <= 12 also parse
    month-first, as ten bars over ten months; the data decides."""
    day_first = [f"{d:02d}/02/2024" for d in range(1, 11)]
    bars = read_bars_csv(_write(tmp_path, _rows(day_first)))
    assert bars.freq_seconds == 86400
    assert list(bars.timestamp[:2]) == _utc("2024-02-01", "2024-02-02")
    month_first = [f"02/{d:02d}/2024" for d in range(1, 11)]
    bars = read_bars_csv(_write(tmp_path, _rows(month_first), "us.csv"))
    assert bars.freq_seconds == 86400 and list(bars.timestamp[:1]) == _utc("2024-02-01")


def test_a_thousands_comma_far_from_the_other_prices_names_the_row(tmp_path):
    text = (
        "timestamp,open,high,low,close\n"
        "2024-01-02 09:00,100.01,100.05,99.98,100.02\n"
        '2024-01-02 09:05,100.02,"100,032",99.99,100.03\n'
        "2024-01-02 09:10,100.03,100.06,100.00,100.04\n"
    )
    with pytest.raises(DataError, match=r"row 3: high '100,032' reads as 100032 with the comma as a thousands separator, far from the bar's other prices \(about 100\.02\)"):
        read_bars_csv(_write(tmp_path, text))
    good = (
        "timestamp,open,high,low,close\n"
        '2024-01-02 09:00,"1,100.01","1,100.05","1,099.98","1,100.02"\n'
        '2024-01-02 09:05,"1,100.02","1,100.06","1,099.99","1,100.03"\n'
        '2024-01-02 09:10,"1,100.03","1,100.07","1,100.00","1,100.04"\n'
    )
    assert list(read_bars_csv(_write(tmp_path, good, "good.csv")).close) == [1100.02, 1100.03, 1100.04]


@pytest.mark.parametrize("field,value,where", [("close", "101.5", "above the high"), ("open", "98.5", "below the low")])
def test_open_and_close_must_lie_within_the_bar(tmp_path, field, value, where):
    rows = {"open": "100", "high": "101", "low": "99", "close": "100.5"}
    rows[field] = value
    text = (
        "timestamp,open,high,low,close\n"
        "2024-01-02 09:00,100,101,99,100.5\n"
        f"2024-01-02 09:05,{rows['open']},{rows['high']},{rows['low']},{rows['close']}\n"
        "2024-01-02 09:10,100,101,99,100.5\n"
    )
    with pytest.raises(DataError, match=rf"row 3: impossible bar: {field} {value} is {where} \(high 101, low 99\)"):
        read_bars_csv(_write(tmp_path, text))


def test_higher_timeframe_bars_of_another_period_are_refused(tmp_path):
    import dataclasses

    from envs.data.bars import aggregate_bars
    from envs.data.dataset import build_market_file
    from envs.data.synthetic import generate_bars

    base = generate_bars("simple_markets", n_bars=3000, seed=3)

    htf = aggregate_bars(base, 6)
    years_earlier = dataclasses.replace(htf, timestamp=htf.timestamp - 3 * 365 * 86400)
    with pytest.raises(DataError, match=r"higher-timeframe bars \(\d{4}-\d\d-\d\d to .*\) do not cover the base bars .*same period"):
        build_market_file(base, tmp_path / "x.h5", htf=years_earlier, source_path="base.csv")
    assert not list(tmp_path.glob("*.h5*"))
    assert build_market_file(base, tmp_path / "ok.h5", htf=htf).exists()
