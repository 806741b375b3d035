"""Import vendor CSV exports of OHLCV bars into :class:`envs.data.bars.Bars`.

Entry points: :func:`read_bars_csv` and :func:`parse_timeframe`.

Layout
  * Delimiter ``,`` (also ``;``, tab and ``|``, sniffed from the header line).
  * Banner lines before the header are skipped: the header is the first of the
    first ``HEADER_SCAN_LINES`` lines that names open/high/low/close columns.
    Blank lines (trailing or in between) are ignored.
  * Header names in any case, ``<OPEN>``-style brackets, ``_`` for spaces and a
    trailing unit in brackets (``Open (USD)``) are all accepted.

Columns (aliases, case-insensitive)
  * open: open, o, open price, opening price
  * high: high, h, high price;  low: low, l, low price
  * close: close, close price, closing price, last, last price, price, c -- the
    first of these present wins; ``adj close`` is never used as close.
  * volume (optional): the first column named ``volume*`` (``Volume BTC``),
    vol, vol., v, tick volume, tickvol, real volume. No volume column gives
    volume 1.0 and ``has_volume=False``; an empty volume cell is 0.0.
  * time: a ``Date`` + ``Time`` pair (time of day in the second column), or one
    of timestamp, datetime, date time, gmt time, local time, utc time, open time,
    time, date, unix, unix timestamp, epoch.

Timestamps (the bar's open; naive times are taken as UTC, offsets converted)
  * ISO 8601: ``2024-01-02 09:30:00``, ``2024-01-02T09:30Z``,
    ``2024-01-02 09:30:00+02:00``, ``2024-01-02``, ``2024.01.02 09:30``, ``20240102``
  * Dukascopy ``02.01.2024 09:30:00.000`` (optionally `` GMT+0200``)
  * US ``1/2/2024``, ``1/2/2024 9:30``, ``1/2/2024 09:30:00``, with AM/PM too;
    day-first ``d/m/yyyy`` is chosen only when month-first cannot parse a row
  * CryptoDataDownload ``2020-03-13 08-PM``
  * epoch seconds, milliseconds, microseconds or nanoseconds (by magnitude)

Rows may come newest-first (they are sorted); gaps are kept, never filled. The
bar length is the most common spacing between consecutive bars.

Every problem raises :class:`DataError` naming the file and the 1-based line of
the file as an editor shows it (banner and header lines counted).
"""
from __future__ import annotations

import csv
import io
import os
import re

import numpy as np
import pandas as pd

from envs.data.bars import Bars, check_bars
from envs.data.errors import DataError

__all__ = ["read_bars_csv", "parse_timeframe"]

HEADER_SCAN_LINES = 30
DELIMITERS = (",", ";", "\t", "|")

OPEN_NAMES = ("open", "o", "open price", "opening price")
HIGH_NAMES = ("high", "h", "high price")
LOW_NAMES = ("low", "l", "low price")
CLOSE_NAMES = ("close", "close price", "closing price", "last", "last price", "price", "c")
VOLUME_NAMES = ("vol", "vol.", "v", "tick volume", "tickvol", "real volume")
TIME_NAMES = (
    "timestamp", "datetime", "date time", "gmt time", "local time", "utc time",
    "time utc", "open time", "time", "date", "unix", "unix timestamp", "epoch",
)
SPLIT_DATE_NAMES = ("date", "day", "trade date")
SPLIT_TIME_NAMES = ("time", "time of day")
TIME_ROLES = ("time", "date_part", "time_part")
PRICE_ROLES = ("open", "high", "low", "close")

# Tried in order over a sample; ISO 8601 comes first and covers most vendors.
DATE_FORMATS = (
    "ISO8601",
    "%Y-%m-%d %I-%p",
    "%Y-%m-%d %I:%M:%S %p",
    "%Y-%m-%d %I:%M %p",
    "%d.%m.%Y %H:%M:%S.%f",
    "%d.%m.%Y %H:%M:%S.%f GMT%z",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%y",
    "%m/%d/%y %H:%M",
    "%d/%m/%Y",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y%m%d",
    "%Y%m%d %H:%M",
    "%Y%m%d %H:%M:%S",
    "%Y%m%d %H%M",
    "%Y%m%d %H%M%S",
    "%Y-%m-%d %H:%M:%S UTC",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y",
    "%b %d, %Y",
    "%d %b %Y",
)
_SAMPLE = 300
_TIME_OF_DAY = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(\s*[AaPp][Mm])?$|^\d{3,6}$")
_NAN_TEXT = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


# ----------------------------------------------------------------- timeframe

_UNIT_SECONDS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "t": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "wk": 604800, "week": 604800, "weeks": 604800,
}
_WORD_SECONDS = {"hourly": 3600, "daily": 86400, "weekly": 604800}


def parse_timeframe(text: str | int) -> int:
    """Bar length in seconds from ``300``, ``"300"``, ``"5min"``, ``"5m"``,
    ``"1h"``, ``"1H"``, ``"1d"``, ``"D"``, ``"daily"``, ``"30s"``, ``"M5"`` ..."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        seconds = int(text)
    elif isinstance(text, str):
        seconds = _timeframe_from_text(text)
    else:
        raise ValueError(f"timeframe must be a string or an int, got {text!r}")
    if seconds <= 0:
        raise ValueError(f"timeframe must be positive, got {text!r}")
    return seconds


def _timeframe_from_text(text: str) -> int:
    raw = text.strip()
    low = raw.lower()
    if low in _WORD_SECONDS:
        return _WORD_SECONDS[low]
    if re.fullmatch(r"[+-]?\d+", low):
        return int(low)
    m = re.fullmatch(r"(\d+)?\s*([a-z]+)", low)
    if m is None:  # MetaTrader style: M5, H1, D1, W1
        m2 = re.fullmatch(r"([a-z])(\d+)", low)
        if m2 and m2.group(1) in "mhdw":
            return int(m2.group(2)) * _UNIT_SECONDS[m2.group(1)]
        raise ValueError(f"cannot read timeframe {text!r}; use e.g. 300, '5min', '1h', '1d'")
    count, unit = m.group(1), m.group(2)
    if unit not in _UNIT_SECONDS:
        raise ValueError(f"unknown timeframe unit in {text!r}; use s, min, h, d or w")
    if raw.rstrip().endswith("M") and unit == "m":
        raise ValueError(f"timeframe {text!r} is ambiguous (month or minute?); write '{count or 1}min'")
    return int(count or 1) * _UNIT_SECONDS[unit]


# ------------------------------------------------------------------- reading

def read_bars_csv(path, timeframe: str | int | None = None) -> Bars:
    """Read an OHLCV CSV export into ``Bars`` (see the module docstring)."""
    path_s = os.fspath(path)
    try:
        wanted = None if timeframe is None else parse_timeframe(timeframe)
    except ValueError as err:
        raise DataError(path_s, None, str(err)) from None
    lines = _read_lines(path_s)
    header_idx, sep, names = _find_header(path_s, lines)
    roles = _map_columns(names)
    _require_columns(path_s, header_idx, names, roles)
    table, line_no = _read_table(path_s, lines, header_idx, sep, len(names), roles)
    if len(table) == 0:
        raise DataError(path_s, None, f"no data rows after the header on line {header_idx + 1}")

    stamps = _timestamps(path_s, table, roles, line_no)
    commas: dict = {}
    cols = {r: _column_floats(path_s, table[roles[r]], r, line_no, sep, commas=commas) for r in PRICE_ROLES}
    if commas:
        _check_commas(path_s, cols, commas, line_no, sep)
    if "volume" in roles:
        vol = _column_floats(path_s, table[roles["volume"]], "volume", line_no, sep, empty=0.0)
    else:
        vol = np.ones(len(table))

    order = np.argsort(stamps, kind="stable")
    stamps, line_no = stamps[order], line_no[order]
    cols = {r: a[order] for r, a in cols.items()}
    vol = vol[order]
    _check_rows(path_s, stamps, cols, line_no)
    freq = _bar_spacing(path_s, stamps, wanted, line_no)
    bars = Bars(
        timestamp=stamps, volume=vol, freq_seconds=freq,
        has_volume="volume" in roles, source=f"csv:{os.path.basename(path_s)}", **cols,
    )
    try:
        check_bars(bars, path_s)
    except DataError as err:  # same checks, reported at the file's line
        raise DataError(path_s, None if err.row is None else int(line_no[err.row]), err.problem) from None
    return bars


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as err:
        raise DataError(path, None, f"cannot read file: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if not text.strip():
        raise DataError(path, None, "file is empty")
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _norm(name: str) -> str:
    name = name.strip().strip("\"'").strip().strip("<>").lower().replace("_", " ")
    name = re.sub(r"\s*[\(\[].*?[\)\]]", "", name)
    return " ".join(name.split())


def _split_header(line: str, sep: str) -> list[str]:
    return next(csv.reader([line], delimiter=sep))


def _map_columns(names: list[str]) -> dict[str, int]:
    """role -> column index for open/high/low/close/volume/time/date_part/time_part."""
    normed = [_norm(n) for n in names]
    roles: dict[str, int] = {}
    for role, aliases in (("open", OPEN_NAMES), ("high", HIGH_NAMES), ("low", LOW_NAMES),
                          ("close", CLOSE_NAMES), ("time", TIME_NAMES),
                          ("date_part", SPLIT_DATE_NAMES), ("time_part", SPLIT_TIME_NAMES)):
        for alias in aliases:  # alias order is the preference
            if alias in normed:
                roles[role] = normed.index(alias)
                break
    for i, n in enumerate(normed):
        if n.startswith("volume") or n in VOLUME_NAMES:
            roles["volume"] = i
            break
    return roles


def _find_header(path: str, lines: list[str]) -> tuple[int, str, list[str]]:
    best = None  # (score, line index, sep, names), the first of the best
    for idx, line in enumerate(lines[:HEADER_SCAN_LINES]):
        if not line.strip():
            continue
        for sep in DELIMITERS:
            if sep not in line and sep != ",":
                continue
            names = _split_header(line, sep)
            roles = _map_columns(names)
            score = sum(r in roles for r in PRICE_ROLES)
            if score == 4:
                return idx, sep, names
            if best is None or score > best[0]:
                best = (score, idx, sep, names)
    assert best is not None  # the file is not blank
    score, idx, sep, names = best
    roles = _map_columns(names)
    missing = [r for r in PRICE_ROLES if r not in roles]
    where = f"the best candidate, line {idx + 1}," if score else f"line {idx + 1}"
    raise DataError(path, None,
                    f"no header with open/high/low/close columns in the first {HEADER_SCAN_LINES} lines; "
                    f"missing column(s): {', '.join(missing)}; {where} has: {_shown(names)}")


def _shown(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(repr(n.strip()[:40]) for n in names[:limit])
    return shown + (f", ... ({len(names)} columns)" if len(names) > limit else "")


def _require_columns(path: str, header_idx: int, names: list[str], roles: dict[str, int]) -> None:
    if "time" in roles or "date_part" in roles:
        return
    raise DataError(path, None,
                    f"header on line {header_idx + 1} has no timestamp column "
                    f"(one of: {', '.join(TIME_NAMES)}, or Date + Time); found: {_shown(names)}")


def _read_table(path: str, lines: list[str], header_idx: int, sep: str, ncols: int,
                roles: dict[str, int]) -> tuple[pd.DataFrame, np.ndarray]:
    """Every column (time ones as text, the rest typed by the parser where
    it can, blank cells as NaN), and the 1-based file line of each row."""
    keep = [i for i in range(header_idx + 1, len(lines)) if lines[i].strip()]
    body = "\n".join([lines[i] for i in keep])
    line_no = np.asarray(keep, dtype=np.int64) + 1
    if not keep:
        return pd.DataFrame(columns=range(ncols)), line_no
    try:
        table = pd.read_csv(io.StringIO(body), sep=sep, header=None, names=list(range(ncols)),
                            index_col=False,
                            dtype={roles[r]: str for r in TIME_ROLES if r in roles},
                            keep_default_na=False, na_values=[""],
                            skipinitialspace=True, skip_blank_lines=False)
    except pd.errors.ParserError as err:
        m = re.search(r"line (\d+), saw (\d+)", str(err))
        if m and 1 <= int(m.group(1)) <= len(keep):
            raise DataError(path, int(line_no[int(m.group(1)) - 1]),
                            f"expected {ncols} fields like the header, saw {m.group(2)}") from None
        raise DataError(path, None, f"cannot parse CSV: {err}") from None
    if len(table) != len(keep):  # quoted newlines would break the line map
        raise DataError(path, None, "cannot map rows to lines (a quoted field spans lines?)")
    return table, line_no


# ---------------------------------------------------------------- timestamps

def _timestamps(path: str, table: pd.DataFrame, roles: dict[str, int], line_no: np.ndarray) -> np.ndarray:
    text = None
    if "date_part" in roles and "time_part" in roles:
        date_s = _strip(table[roles["date_part"]])
        time_s = _strip(table[roles["time_part"]])
        first = next((t for t in time_s[:50] if t), "")
        if _TIME_OF_DAY.match(first):
            if time_s.str.fullmatch(r"\d{3,6}").all():  # hhmm / hhmmss
                width = 4 if time_s.str.len().max() <= 4 else 6
                time_s = time_s.str.zfill(width)
            text = (date_s + " " + time_s).str.strip()
    if text is None:
        text = _strip(table[roles["time"] if "time" in roles else roles["date_part"]])
    secs, bad, how = _parse_times(text)
    if bad.any():
        i = int(np.argmax(bad))
        shown = text.iloc[i]
        problem = ("timestamp is empty" if not shown else
                   f"cannot parse timestamp {shown!r}" + (f" (other rows {how})" if how else
                                                         "; no supported date format matches"))
        raise DataError(path, int(line_no[i]), problem)
    return secs


def _strip(col: pd.Series) -> pd.Series:
    return col.fillna("").astype(str).str.strip().str.strip("\"'")


def _parse_times(text: pd.Series) -> tuple[np.ndarray, np.ndarray, str]:
    """Epoch seconds, the mask of unparseable rows and what the rows looked like."""
    if _numeric_share(text.iloc[_sample_index(len(text))]) > 0.5:
        num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        ok = np.isfinite(num)
    else:
        num, ok = None, np.zeros(len(text), dtype=bool)
    if ok.mean() > 0.5 and not _looks_yyyymmdd(num[ok]):
        mag = np.abs(num[ok])  # the unit is read per row: some exports mix s and ms
        scale = np.select([mag < 1e11, mag < 1e14, mag < 1e17], [1.0, 1e3, 1e6], 1e9)
        unit = {1.0: "s", 1e3: "ms", 1e6: "us", 1e9: "ns"}[float(np.sort(scale)[len(scale) // 2])]
        secs = np.zeros(len(num), dtype=np.int64)
        secs[ok] = np.floor(num[ok] / scale).astype(np.int64)
        return secs, ~ok, f"are epoch {unit}"
    fmt, parsed = _best_format(text)
    if fmt is None:
        return np.zeros(len(text), dtype=np.int64), np.ones(len(text), dtype=bool), ""
    bad = parsed.isna().to_numpy()
    naive = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    secs = naive.to_numpy(dtype="datetime64[ns]", na_value=np.datetime64(0, "ns"))
    secs = secs.astype("datetime64[s]").astype(np.int64)
    return secs, bad, f"match format {fmt}"


def _numeric_share(text: pd.Series) -> float:
    num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return float(np.isfinite(num).mean()) if len(num) else 0.0


def _sample_index(n: int) -> np.ndarray:
    """Head, tail and an even spread of rows."""
    return np.unique(np.r_[np.arange(min(n, _SAMPLE)), np.arange(max(0, n - _SAMPLE), n),
                           np.linspace(0, n - 1, min(n, _SAMPLE)).astype(np.int64)])


def _looks_yyyymmdd(values: np.ndarray) -> bool:
    return bool(len(values)) and bool(np.all((values >= 1e7) & (values < 1e8) & (values == np.floor(values))))


def _to_datetime(text: pd.Series, fmt: str) -> pd.Series:
    return pd.to_datetime(text, format=fmt, errors="coerce", utc=True)


def _best_format(text: pd.Series) -> tuple[str | None, pd.Series | None]:
    """The format that parses the whole column, else the one parsing the most rows."""
    n = len(text)
    sample = text.iloc[_sample_index(n)]
    scores = [(int(_to_datetime(sample, f).notna().sum()), -k, f) for k, f in enumerate(DATE_FORMATS)]
    scores.sort(reverse=True)
    best_fmt, best_parsed, best_count = None, None, 0
    whole = []
    for count, _, fmt in scores[:4]:
        if count == 0:
            break
        parsed = _to_datetime(text, fmt)
        full = int(parsed.notna().sum())
        if full == n:
            whole.append((fmt, parsed))
        elif full > best_count and not whole:
            best_fmt, best_parsed, best_count = fmt, parsed, full
    if whole:
        # Several formats read every row only when days and months are both
        # <= 12 (3/4/2024): the data decides, by the reading whose bars lie
        # closest together (ten daily bars are ten days, not ten months).
        return min(whole, key=lambda fp: (_span(fp[1]), [f for f, _ in whole].index(fp[0])))
    return best_fmt, best_parsed


def _span(parsed: pd.Series) -> float:
    """Time from the first to the last bar, in seconds, as one reading has it."""
    return float((parsed.max() - parsed.min()).total_seconds())


# -------------------------------------------------------------------- values

def _column_floats(path: str, col: pd.Series, role: str, line_no: np.ndarray, sep: str,
                   empty: float | None = None, commas: dict | None = None) -> np.ndarray:
    """The column as floats. ``commas`` (when given) receives ``role ->
    (mask, text)`` of the cells that held a comma, for ``_check_commas``."""
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)  # the fast path
        text = None
        blank = np.isnan(values)
    else:  # the parser met text: NaN, inf, words, "1,234.5"
        values, text = _text_floats(col, sep)
        blank = (text == "").to_numpy()
        if commas is not None:
            mask = text.str.contains(",", regex=False).to_numpy()
            if mask.any():
                commas[role] = (mask, text)
    if empty is not None:
        values[blank] = empty
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        cell = "" if text is None else text.iloc[i]
        if np.isinf(values[i]) or cell.lower() in _NAN_TEXT:
            problem = f"{role} is NaN or infinite ({cell or values[i]})"
        elif not cell:
            problem = f"{role} is empty"
        else:
            problem = f"{role} is not a number: {cell[:40]!r}"
        raise DataError(path, int(line_no[i]), problem)
    return values


def _text_floats(col: pd.Series, sep: str) -> tuple[np.ndarray, pd.Series]:
    text = _strip(col)
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    failed = np.isnan(values) & (text != "").to_numpy()
    if failed.any() and text[failed].str.contains(",").any():  # "1,234.5" or "1,5"
        fixed = text.str.replace(",", "" if sep == "," else ".", regex=False)
        retry = pd.to_numeric(fixed, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        values = np.where(failed, retry, values)
    return values, text


def _check_commas(path: str, cols: dict[str, np.ndarray], commas: dict, line_no: np.ndarray, sep: str) -> None:
    """A price whose comma was read as a separator ("100,032" -> 100032 in a
    comma-separated file, or 100.032 in a semicolon one) must be near the
    bar's other prices; a tenfold difference means the comma meant the other
    thing, and the row is named instead of a misleading high/low message."""
    roles = list(cols)
    stacked = np.stack([cols[r] for r in roles])
    for role, (mask, text) in commas.items():
        others = np.median(np.delete(stacked, roles.index(role), axis=0), axis=0)
        ratio = cols[role] / np.where(others > 0, others, np.nan)
        bad = mask & ((ratio > 10) | (ratio < 0.1))
        if bad.any():
            i = _earliest(bad, line_no)
            reading = "a thousands separator" if sep == "," else "a decimal point"
            raise DataError(
                path, int(line_no[i]),
                f"{role} {text.iloc[i]!r} reads as {cols[role][i]:g} with the comma as {reading}, far from the bar's other prices "
                f"(about {others[i]:g}); write prices without thousands separators, with '.' as the decimal point",
            )


def _check_rows(path: str, stamps: np.ndarray, cols: dict[str, np.ndarray], line_no: np.ndarray) -> None:
    """Row checks on sorted rows; each reports the earliest offending file line."""
    for role in PRICE_ROLES:
        bad = cols[role] <= 0
        if bad.any():
            i = _earliest(bad, line_no)
            raise DataError(path, int(line_no[i]), f"{role} must be positive, got {cols[role][i]:g}")
    bad = cols["high"] < cols["low"]
    if bad.any():
        i = _earliest(bad, line_no)
        raise DataError(path, int(line_no[i]), f"high {cols['high'][i]:g} is below low {cols['low'][i]:g}")
    dup = np.flatnonzero(np.diff(stamps) == 0)
    if len(dup):
        pairs = np.stack([line_no[dup], line_no[dup + 1]])
        later = np.max(pairs, axis=0)
        k = int(np.argmin(later))
        when = pd.Timestamp(int(stamps[dup[k]]), unit="s").strftime("%Y-%m-%d %H:%M:%S")
        raise DataError(path, int(later[k]),
                        f"duplicate timestamp {when} UTC (also on line {int(np.min(pairs[:, k]))})")
    if len(stamps) < 2:
        raise DataError(path, None, f"only {len(stamps)} bar (line {int(line_no[0])}); need at least 2")


def _earliest(mask: np.ndarray, line_no: np.ndarray) -> int:
    hits = np.flatnonzero(mask)
    return int(hits[np.argmin(line_no[hits])])


def _bar_spacing(path: str, stamps: np.ndarray, wanted: int | None, line_no: np.ndarray | None = None) -> int:
    """The most common spacing; it must equal ``wanted`` when that is given.
    A bar that starts sooner than one bar length after the one before would
    overlap it: bars of mixed lengths in one file are refused (the first
    such line named), never read as the longer length."""
    steps = np.diff(stamps)
    values, counts = np.unique(steps[steps > 0], return_counts=True)
    spacing = int(values[np.argmax(counts)])  # ties: the shortest spacing
    if wanted is not None and wanted != spacing:
        raise DataError(path, None, f"bars are {spacing} s apart but --timeframe is {wanted} s")
    short = np.flatnonzero((steps > 0) & (steps < spacing))
    if len(short):
        i = int(short[0]) + 1
        line = None if line_no is None else int(line_no[i])
        raise DataError(
            path, line,
            f"mixed bar lengths: this bar starts {int(steps[i - 1])} s after the one before, but most bars are {spacing} s apart "
            f"({len(short)} such rows); keep one timeframe per file",
        )
    return spacing
