"""Prices from local files (``--prices PATH``): per-ticker files, a long file or a wide file.

Every shape is reduced to the same triple (day number, output column, close)
and pivoted with numpy, so all shapes share one set of rules: dates are
calendar days, duplicate dates keep the last row (and say so), NaN means "no
close", nothing is forward-filled and non-positive closes pass through.
Pandas/pyarrow failures never escape: they become DataSourceError naming the
file and the shapes that are accepted.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from evstudy.config import check_regular_file, normalize_ticker
from evstudy.errors import ConfigError, DataSourceError, UnknownTickerError
from evstudy.prices.base import PriceData

SHAPES_HELP = (
    "accepted shapes: a directory of per-ticker files TICKER.csv/TICKER.parquet with columns "
    "Date,Close (or Date,Adj Close); a long CSV/Parquet file with columns date,ticker,close "
    "(or adj_close); a wide CSV/Parquet file with a date column and one column per ticker"
)
_DATE_NAMES = ("date", "datetime", "timestamp", "index", "__index_level_0__")
_TICKER_NAMES = ("ticker", "symbol")
_VALUE_NAMES = ("adj close", "adj_close", "adjclose", "close")  # adjusted first
_OHLCV_NAMES = frozenset({"open", "high", "low", "volume", "dividends", "stock splits", *_VALUE_NAMES})
_NA_TOKENS = frozenset({"", "nan", "na", "n/a", "#n/a", "null", "none", "-"})
# ISO dates, optionally with a time and a UTC offset; matched whole (no trailing text).
_ISO_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?\s?(Z|[+-]\d{2}:?\d{2})?")
_ZONE_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
_NUMERIC_DATE = re.compile(
    r"^(?P<a>\d{1,2})([/.\-])(?P<b>\d{1,2})\2(?P<year>\d{2,4})(?:[T ]\d{1,2}:\d{2}(?::\d{2})?)?$"
)
NEW_YORK = "America/New_York"
_EPOCH = dt.date(1970, 1, 1)
_MAX_EXAMPLES = 5


def _find(columns: Sequence[str], names: Iterable[str]) -> str | None:
    """The first column whose lower-cased, stripped name is in ``names`` (in ``names`` order)."""
    by_name = {str(col).strip().lower(): col for col in reversed(columns)}
    return next((by_name[name] for name in names if name in by_name), None)


def _day_number(day: dt.date) -> int:
    return (day - _EPOCH).days


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


# ---------------------------------------------------------------------------
# One CSV or Parquet file, read as an Arrow table (CSV cells as strings).


@dataclass(frozen=True)
class _File:
    path: Path
    columns: tuple[str, ...]
    parquet: pq.FileMetaData | None = None
    skip_rows_after_names: int = 0

    @classmethod
    def open(cls, path: Path) -> _File:
        """Read just the header (CSV) or the footer metadata (Parquet) of ``path``."""
        _check_regular(path)
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            try:
                metadata = pq.read_metadata(path)
                names = metadata.schema.to_arrow_schema().names
            except (OSError, pa.ArrowException) as exc:
                raise DataSourceError(f"cannot read Parquet file {path}: {exc}; {SHAPES_HELP}") from exc
            return cls(path, tuple(names), parquet=metadata)
        if suffix != ".csv":
            raise DataSourceError(f"unsupported price file {path}: expected .csv or .parquet; {SHAPES_HELP}")
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                rows = [row for _, row in zip(range(3), csv.reader(handle))]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DataSourceError(f"cannot read CSV file {path}: {exc}; {SHAPES_HELP}") from exc
        if not rows or not any(cell.strip() for cell in rows[0]):
            raise DataSourceError(f"empty CSV file {path}; {SHAPES_HELP}")
        header = [cell.strip() for cell in rows[0]]
        # yfinance >= 0.2.51 exports three header rows: Price,Close,... / Ticker,MP,... / Date,,...
        yfinance_export = (
            header[0].lower() == "price"
            and len(rows) == 3
            and rows[1][:1] == ["Ticker"]
            and rows[2][:1] == ["Date"]
        )
        if yfinance_export and len(set(rows[1][1:])) > 1:
            raise DataSourceError(
                f"{path} is a multi-ticker yfinance export (three header rows): save the closes "
                f"alone, e.g. yf.download(...)['Close'].to_csv(path), which is the wide shape; {SHAPES_HELP}"
            )
        duplicated = sorted({name for name in header if header.count(name) > 1})
        if duplicated:
            raise DataSourceError(f"CSV file {path} has duplicate column names {duplicated}")
        if yfinance_export:
            return cls(path, ("Date", *header[1:]), skip_rows_after_names=2)
        return cls(path, tuple(header))

    def read(
        self,
        columns: Sequence[str],
        row_filter: pc.Expression | None = None,
        row_groups: list[int] | None = None,
    ) -> pa.Table:
        """The given columns, only rows matching ``row_filter`` (of ``row_groups`` if given)."""
        try:
            if self.parquet is not None and row_groups is not None:
                table = pq.ParquetFile(self.path).read_row_groups(row_groups, columns=list(columns))
            elif self.parquet is not None:
                return pq.read_table(self.path, columns=list(columns), filters=row_filter)
            else:
                table = pa_csv.read_csv(
                    self.path,
                    read_options=pa_csv.ReadOptions(
                        column_names=list(self.columns),
                        skip_rows=1,
                        skip_rows_after_names=self.skip_rows_after_names,
                    ),
                    convert_options=pa_csv.ConvertOptions(
                        include_columns=list(columns),
                        column_types={name: pa.string() for name in columns},
                        strings_can_be_null=False,
                    ),
                )
            return table.filter(row_filter) if row_filter is not None else table
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise DataSourceError(f"cannot read {self.path}: {exc}; {SHAPES_HELP}") from exc

    def row_groups(self, column: str, values: Sequence[str]) -> list[int] | None:
        """Parquet row groups whose min/max of ``column`` may hold one of ``values``.

        pyarrow does not prune row groups on a dictionary (category) column by
        itself; doing it here makes reading 50 tickers of a 12k-ticker file
        read a few row groups instead of all. None when statistics are missing.
        """
        if self.parquet is None:
            return None
        groups = []
        for group in range(self.parquet.num_row_groups):
            metadata = self.parquet.row_group(group)
            chunks = (metadata.column(i) for i in range(metadata.num_columns))
            chunk = next((c for c in chunks if c.path_in_schema == column), None)
            stats = chunk.statistics if chunk is not None else None
            if stats is None or not stats.has_min_max or not isinstance(stats.min, str):
                return None
            if any(stats.min <= value <= stats.max for value in values):
                groups.append(group)
        return groups

    def date_filter(self, column: str, start: dt.date, end: dt.date) -> pc.Expression | None:
        """A filter on a Parquet date column for [start, end], where its type allows one."""
        if self.parquet is None:
            return None
        kind = self.parquet.schema.to_arrow_schema().field(column).type
        after_end = end + dt.timedelta(days=1)
        if pa.types.is_date(kind):
            low, high = pa.scalar(start, pa.date32()), pa.scalar(after_end, pa.date32())
        elif pa.types.is_timestamp(kind) and kind.tz is None:
            low = pa.scalar(dt.datetime.combine(start, dt.time()), kind)
            high = pa.scalar(dt.datetime.combine(after_end, dt.time()), kind)
        else:
            return None
        return (pc.field(column) >= low) & (pc.field(column) < high)


# ---------------------------------------------------------------------------
# Column conversions: Arrow column -> numpy, with errors that name the value.


def _concat(column: pa.ChunkedArray) -> np.ndarray:
    """A chunked column as one numpy array (per-chunk conversion is much faster on big columns)."""
    if not column.num_chunks:
        return column.combine_chunks().to_numpy(zero_copy_only=False)
    return np.concatenate([chunk.to_numpy(zero_copy_only=False) for chunk in column.chunks])


def _first_bad(mask: np.ndarray, values: pd.Series) -> str:
    positions = np.flatnonzero(mask)[:_MAX_EXAMPLES]
    return ", ".join(f"{values.iloc[i]!r} (data row {i + 1})" for i in positions)


def _days(column: pa.ChunkedArray, where: str) -> np.ndarray:
    """Day numbers (days since 1970-01-01) of a date column; local dates for tz-aware times."""
    if column.null_count:
        missing = np.flatnonzero(_concat(column.is_null()))[:_MAX_EXAMPLES] + 1
        raise DataSourceError(f"{where}: missing dates in data rows {list(missing)}; {SHAPES_HELP}")
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            # The trading day is New York's: a close stamped in another zone may fall on the next local date.
            column = pc.local_timestamp(column.cast(pa.timestamp(kind.unit, tz=NEW_YORK)))
        dates = pc.cast(column, pa.date32(), safe=False)
        return _concat(dates.cast(pa.int32()))
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataSourceError(f"{where}: dates of type {kind} cannot be read; {SHAPES_HELP}")
    return _text_days(column.to_pandas().str.strip(), where)


def _text_days(text: pd.Series, where: str) -> np.ndarray:
    """Day numbers of dates written as text, read strictly: a date is never guessed.

    ISO dates (``2025-10-13``, optionally with a time) are read as written; a
    time with a UTC offset is converted to New York time first, so a close
    stamped ``2025-10-14T05:00+09:00`` stays on its New York trading day
    2025-10-13. Numeric dates such as ``13/10/2025`` are read day-first or
    month-first only when some value decides it (a field above 12), for the
    whole column at once; a column where both readings fit is refused, as is
    a two-digit year. Anything else (``Oct 13, 2025``) must name a
    four-digit year.
    """
    if text.empty:
        return np.empty(0, np.int64)
    iso = text.str.fullmatch(_ISO_TEXT)
    if iso.all():
        plain_days = bool((text.str.len() == 10).all())  # the common case: no time, so no zone to look for
        zoned = pd.Series(False, index=text.index) if plain_days else text.str.contains(_ZONE_SUFFIX)
        if zoned.any() and not zoned.all():
            raise DataSourceError(
                f"{where}: some times have a UTC offset and some do not, e.g. {text[zoned].iloc[0]!r} and "
                f"{text[~zoned].iloc[0]!r}; give every time with its offset, or dates alone; {SHAPES_HELP}"
            )
        if zoned.all():
            parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
            parsed = parsed.dt.tz_convert(NEW_YORK).dt.tz_localize(None)
        else:
            parsed = pd.to_datetime(text.str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
    elif (numeric := text.str.extract(_NUMERIC_DATE)).notna().all(axis=None):
        parsed = _numeric_dates(text, numeric, where)
    else:
        if (numeric_rows := numeric.notna().all(axis=1)).any():
            raise DataSourceError(
                f"{where}: dates in more than one format, e.g. {text[numeric_rows].iloc[0]!r} and "
                f"{text[~numeric_rows].iloc[0]!r}; write dates as YYYY-MM-DD; {SHAPES_HELP}"
            )
        if (not_iso := ~iso & ~text.str.contains(r"\d{4}")).any():
            raise DataSourceError(
                f"{where}: dates without a four-digit year (or unreadable), e.g. "
                f"{_first_bad(not_iso.to_numpy(), text)}; write dates as YYYY-MM-DD; {SHAPES_HELP}"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "could not infer format": we report bad rows ourselves
                parsed = pd.to_datetime(text, errors="coerce", format="mixed")
        except (ValueError, TypeError) as exc:
            raise DataSourceError(f"{where}: unparseable dates ({exc}); {SHAPES_HELP}") from exc
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            parsed = parsed.dt.tz_convert(NEW_YORK).dt.tz_localize(None)
        elif parsed.dtype == object:
            raise DataSourceError(
                f"{where}: dates with different time zones; write dates as YYYY-MM-DD; {SHAPES_HELP}"
            )
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise DataSourceError(f"{where}: unparseable dates {_first_bad(bad, text)}; {SHAPES_HELP}")
    return parsed.to_numpy().astype("datetime64[D]").astype(np.int64)


def _numeric_dates(text: pd.Series, fields: pd.DataFrame, where: str) -> pd.Series:
    """``a/b/yyyy`` dates (also with '.' or '-'): day-first or month-first, as the whole column decides."""
    short_year = fields["year"].str.len() != 4
    if short_year.any():
        raise DataSourceError(
            f"{where}: two-digit years are ambiguous, e.g. {_first_bad(short_year.to_numpy(), text)}; "
            f"write dates as YYYY-MM-DD; {SHAPES_HELP}"
        )
    first, second = fields["a"].astype(int), fields["b"].astype(int)
    day_first, month_first = bool((first > 12).any()), bool((second > 12).any())
    if day_first == month_first:
        example = text.iloc[0]
        why = ("both readings fit every date" if not day_first
               else "some dates read only day-first, others only month-first")
        raise DataSourceError(
            f"{where}: dates such as {example!r} could be day/month/year or month/day/year ({why}); "
            f"write dates as YYYY-MM-DD; {SHAPES_HELP}"
        )
    day, month = (first, second) if day_first else (second, first)
    frame = pd.DataFrame({"year": fields["year"].astype(int), "month": month, "day": day})
    return pd.to_datetime(frame, errors="coerce")


def _floats(column: pa.ChunkedArray, where: str) -> np.ndarray:
    """Float64 closes of a column (nulls and NA markers become NaN); reject non-numbers."""
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return _concat(pc.cast(column, pa.float64())).astype(np.float64, copy=False)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataSourceError(f"{where}: prices of type {kind} are not numbers; {SHAPES_HELP}")
    text = column.to_pandas().str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    bad = (numbers.isna() & ~text.str.lower().isin(_NA_TOKENS)).to_numpy()
    if bad.any():
        raise DataSourceError(f"{where}: non-numeric prices {_first_bad(bad, text)}; {SHAPES_HELP}")
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str | None]]:
    """Integer codes (-1 for null) and the distinct raw names of a ticker column."""
    if not pa.types.is_dictionary(column.type):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            column = pc.cast(column, pa.string())
        column = column.dictionary_encode()
    array = column.unify_dictionaries().combine_chunks()
    indices = array.indices if not array.indices.null_count else pc.fill_null(array.indices, -1)
    return indices.to_numpy(zero_copy_only=False), array.dictionary.to_pylist()


# ---------------------------------------------------------------------------
# The pivot shared by every shape.


@dataclass(frozen=True)
class _Wide:
    """Closes as a day-by-column matrix, with per-column duplicate-date counts."""

    days: np.ndarray
    values: np.ndarray
    duplicates: np.ndarray


def _pivot(days: np.ndarray, cols: np.ndarray, values: np.ndarray, ncols: int, first: int, last: int) -> _Wide:
    """Place each (day, column, close) in a matrix; rows outside [first, last] or column -1 dropped.

    Several closes for the same day and column keep the one read last. The
    matrix is filled column by column (a file sorted by ticker then date is
    written sequentially) and handed over transposed, which is the memory
    layout pandas keeps for a float frame anyway.
    """
    if len(days) and (days.min() < first or days.max() > last or cols.min() < 0):
        keep = (days >= first) & (days <= last) & (cols >= 0)
        days, cols, values = days[keep], cols[keep], values[keep]
    if not len(days):
        return _Wide(np.empty(0, np.int64), np.empty((0, ncols)), np.zeros(ncols, np.int64))
    low = int(days.min())
    offsets = days - low
    present = np.zeros(int(days.max()) - low + 1, dtype=bool)
    present[offsets] = True
    unique_days = np.flatnonzero(present) + low
    nrows = len(unique_days)
    keys = cols.astype(np.int64) * nrows + (np.cumsum(present) - 1)[offsets]
    duplicates = np.zeros(ncols, np.int64)
    if not (np.diff(keys) > 0).all():  # unsorted input, or duplicates
        seen = np.zeros(ncols * nrows, dtype=bool)
        seen[keys] = True
        if np.count_nonzero(seen) < len(keys):
            dropped = pd.Series(keys).duplicated(keep="last").to_numpy()
            duplicates = np.bincount(cols[dropped], minlength=ncols)
            keys, values = keys[~dropped], values[~dropped]
    matrix = np.full(ncols * nrows, np.nan)
    matrix[keys] = values
    return _Wide(unique_days, matrix.reshape(ncols, nrows).T, duplicates)


def _frame(wide: _Wide, columns: list[str]) -> pd.DataFrame:
    """The PriceData frame: midnight DatetimeIndex named date, float64, no all-NaN rows.

    Every ``_Wide`` holds a matrix of its own (a fancy-indexed gather or a fresh pivot, dropped after
    this call), so the frame takes it over in the column-major layout pandas would copy it into,
    without that copy (~0.06 CPU s for a 200-event catalogue's 3,000 tickers; benchmarks/README.md,
    catalogue, tenth round): the same layout, so every later sum runs in the same order.
    """
    has_data = ~np.isnan(wide.values).all(axis=1)
    values, days = wide.values, wide.days
    if not has_data.all():  # rows dropped through the transpose: the kept rows come out column-major, one copy
        values, days = values.T.compress(has_data, axis=1).T, days[has_data]
    index = pd.DatetimeIndex(days.astype("datetime64[D]").astype("datetime64[ns]"), name="date")
    return pd.DataFrame(np.asfortranarray(values), index=index, columns=columns, copy=False)


def _duplicate_note(wide: _Wide, columns: list[str], where: str) -> list[str]:
    counted = [(name, int(n)) for name, n in zip(columns, wide.duplicates) if n]
    if not counted:
        return []
    listed = ", ".join(f"{name} ({n})" for name, n in counted[:10])
    more = f" and {len(counted) - 10} more tickers" if len(counted) > 10 else ""
    return [f"{where}: duplicate dates for {listed}{more}; kept the last row of each"]


# ---------------------------------------------------------------------------
# The three shapes.


def _check_regular(path: Path) -> None:
    """A FIFO or device as a price file would block or never end: refused before opening (exit 2)."""
    try:
        check_regular_file(path, "price source")
    except ConfigError as exc:
        raise DataSourceError(f"{exc}; {SHAPES_HELP}") from None


def _skipped_note(raw_names: Iterable[object], where: str) -> list[str]:
    """Names in a source that are not ticker symbols (``B,B``, ``"X"``): left out, and said so."""
    bad = [str(name) for name in raw_names if name is not None and _try_normalize(name) is None]
    if not bad:
        return []
    listed = ", ".join(repr(name) for name in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    return [f"{where}: {_plural(len(bad), 'name')} that {'is' if len(bad) == 1 else 'are'} not a ticker symbol "
            f"left out: {listed} (a ticker is 1-20 letters, digits, '.', '-', '^', '=' or '_')"]


def _try_normalize(raw: object) -> str | None:
    """The normalized ticker for a name found in a source, None where it cannot be a ticker.

    The rule is the config's (:func:`evstudy.config.normalize_ticker`): a name
    that could not be asked for on the command line is not a ticker here
    either, so no comma, quote or line break reaches a CSV or a report.
    """
    if raw is None:
        return None
    try:
        return normalize_ticker(str(raw))
    except ConfigError:
        return None


def _normalize_used(codes: np.ndarray, raw_names: list) -> list[str | None]:
    """Normalized name per code, for the codes that occur (a file's dictionary lists all tickers)."""
    normalized: list[str | None] = [None] * len(raw_names)
    counts = np.bincount(codes.astype(np.int64) + 1, minlength=len(raw_names) + 1)[1:]
    for code in np.flatnonzero(counts):
        normalized[code] = _try_normalize(raw_names[code])
    return normalized


def _normalized_names(raw_names: Iterable[object]) -> dict[str, list]:
    """Normalized ticker -> the raw spellings in the source that map to it (invalid names skipped)."""
    names: dict[str, list] = {}
    for raw in raw_names:
        ticker = _try_normalize(raw)
        if ticker is not None:
            names.setdefault(ticker, []).append(raw)
    return names


def _close_matches(ticker: str, choices: list[str]) -> list[str]:
    """Up to 3 similar tickers, those sharing the longest prefix first (typos sit at the end)."""
    candidates = difflib.get_close_matches(ticker, choices, n=50)

    def rank(name: str) -> tuple[int, float, str]:
        prefix = len(os.path.commonprefix([ticker, name]))
        return -prefix, -difflib.SequenceMatcher(None, ticker, name).ratio(), name

    return sorted(candidates, key=rank)[:3]


def _unknown_error(absent: list[str], universe: Sequence[str], where: str) -> UnknownTickerError:
    """Name every absent ticker, the source and its size, and up to 3 close matches each."""
    choices = list(universe)
    hints = {}
    for ticker in absent:
        close = _close_matches(ticker, choices)
        hints[ticker] = f"did you mean {', '.join(close)}?" if close else "no close match"
    size = _plural(len(choices), "ticker")
    if len(absent) == 1:
        message = f"ticker {absent[0]!r} not found in {where} ({size}); {hints[absent[0]]}"
    else:
        listed = "; ".join(f"{t!r}: {hint}" for t, hint in hints.items())
        message = f"{len(absent)} tickers not found in {where} ({size}): {listed}"
    return UnknownTickerError(message, list(absent))


class _Shape(Protocol):
    """How one kind of source turns tickers into a day-by-ticker matrix."""

    where: str
    notes: list[str]  # what the last pivot left out, and why

    def pivot(self, tickers: list[str] | None, first: int, last: int) -> tuple[_Wide, list[str]]:
        """Closes of ``tickers`` (all when None) in days [first, last], and the column names."""
        ...


class _Directory:
    """A directory of TICKER.csv / TICKER.parquet files, matched case-insensitively."""

    def __init__(self, path: Path):
        self.path = path
        self.where = f"directory {path}"
        self.notes: list[str] = []

    @cached_property
    def _files(self) -> dict[str, list[Path]]:
        try:
            entries = sorted(self.path.iterdir())
        except OSError as exc:
            raise DataSourceError(f"cannot list {self.path}: {exc}") from exc
        files = [p for p in entries if p.suffix.lower() in (".csv", ".parquet") and p.is_file()]
        self._name_notes = _skipped_note([p.stem for p in files], self.where)
        by_ticker: dict[str, list[Path]] = {}
        for file in files:
            ticker = _try_normalize(file.stem)
            if ticker is not None:
                by_ticker.setdefault(ticker, []).append(file)
        return by_ticker

    def pivot(self, tickers: list[str] | None, first: int, last: int) -> tuple[_Wide, list[str]]:
        files = self._files
        self.notes = list(self._name_notes)
        columns = sorted(files) if tickers is None else tickers
        absent = [t for t in columns if t not in files]
        if absent:
            raise _unknown_error(absent, sorted(files), self.where)
        parts, unreadable = [], []
        for ticker in columns:
            try:
                if len(files[ticker]) > 1:
                    raise DataSourceError(
                        f"ticker {ticker!r} is ambiguous in {self.where}: "
                        f"{', '.join(p.name for p in files[ticker])}; keep one file per ticker"
                    )
                days, values = _read_ticker_file(files[ticker][0])
            except DataSourceError as exc:
                if tickers is not None:  # a ticker the study names must be readable
                    raise
                why = str(exc).split("; accepted shapes")[0]
                unreadable.append(f"{files[ticker][0].name} ({why[:160] + '…' if len(why) > 160 else why})")
                continue
            parts.append((ticker, days, values))
        if unreadable:  # the whole folder was asked for (a scan): one stray file must not stop it
            columns = [ticker for ticker, _, _ in parts]
            shown = "; ".join(unreadable[:5]) + (f"; and {len(unreadable) - 5} more" if len(unreadable) > 5 else "")
            self.notes.append(
                f"{self.where}: {_plural(len(unreadable), 'file')} skipped (not price files, or one of two files "
                f"for a ticker): {shown}"
            )
        parts = [(days, np.full(len(days), col, np.int64), values) for col, (_, days, values) in enumerate(parts)]
        if not parts:
            return _pivot(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), 0, first, last), []
        days, cols, values = (np.concatenate(arrays) for arrays in zip(*parts))
        return _pivot(days, cols, values, len(columns), first, last), columns


def _read_ticker_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Days and closes of a per-ticker file (Date + Adj Close or Close)."""
    file = _File.open(path)
    value = _find(file.columns, _VALUE_NAMES)
    if value is None:
        raise DataSourceError(
            f"{path}: no Close or Adj Close column (columns: {list(file.columns)}); {SHAPES_HELP}"
        )
    date = _find(file.columns, _DATE_NAMES) or file.columns[0]
    if date == value:
        raise DataSourceError(f"{path}: no date column (columns: {list(file.columns)}); {SHAPES_HELP}")
    table = file.read([date, value])
    return (
        _days(table.column(date), f"{path}, column {date!r}"),
        _floats(table.column(value), f"{path}, column {value!r}"),
    )


class _Long:
    """A long file: one row per (date, ticker) with a close."""

    def __init__(self, file: _File, date: str, ticker: str, value: str):
        self.file, self.date, self.ticker, self.value = file, date, ticker, value
        self.where = str(file.path)
        self.notes: list[str] = []

    def universe(self) -> dict[str, list[str]]:
        names = pc.unique(self.file.read([self.ticker]).column(self.ticker))
        if pa.types.is_dictionary(names.type):
            names = names.dictionary_decode()
        return _normalized_names(names.to_pylist())

    def _read(self, raw_names: list[str] | None, start: dt.date, end: dt.date) -> pa.Table:
        row_filter = self.file.date_filter(self.date, start, end)
        row_groups = None
        if raw_names is not None:
            wanted = pc.field(self.ticker).isin(raw_names)
            row_filter = wanted if row_filter is None else row_filter & wanted
            row_groups = self.file.row_groups(self.ticker, raw_names)
        return self.file.read([self.date, self.ticker, self.value], row_filter, row_groups)

    def pivot(self, tickers: list[str] | None, first: int, last: int) -> tuple[_Wide, list[str]]:
        start, end = _EPOCH + dt.timedelta(days=first), _EPOCH + dt.timedelta(days=last)
        table = self._read(tickers, start, end)
        codes, raw_names = _codes(table.column(self.ticker))
        normalized = _normalize_used(codes, raw_names)
        if tickers is not None:
            read = set(normalized)
            absent = [t for t in tickers if t not in read]
            if absent:
                # No rows read for these: maybe none in range, or spelled differently in the file.
                universe = self.universe()
                unknown = [t for t in absent if t not in universe]
                if unknown:
                    raise _unknown_error(unknown, sorted(universe), self.where)
                respelled = [raw for t in absent for raw in universe[t] if raw != t]
                if respelled:
                    table = pa.concat_tables(
                        [table, self._read(respelled, start, end)], promote_options="permissive"
                    )
                    codes, raw_names = _codes(table.column(self.ticker))
                    normalized = _normalize_used(codes, raw_names)
        if tickers is None:
            used = np.bincount(codes.astype(np.int64) + 1, minlength=len(raw_names) + 1)[1:] > 0
            self.notes = _skipped_note([raw for raw, u in zip(raw_names, used) if u], self.where)
        columns = sorted({n for n in normalized if n is not None}) if tickers is None else tickers
        position = {name: i for i, name in enumerate(columns)}
        # One slot per code, plus a last one that code -1 (a null ticker) indexes.
        col_of_code = np.array([position.get(n, -1) for n in normalized] + [-1], dtype=np.int64)
        days = _days(table.column(self.date), f"{self.where}, column {self.date!r}")
        values = _floats(table.column(self.value), f"{self.where}, column {self.value!r}")
        return _pivot(days, col_of_code[codes], values, len(columns), first, last), columns


class _WideFile:
    """A wide file: a date column and one close column per ticker."""

    def __init__(self, file: _File, date: str, raw_columns: list[str]):
        self.file, self.date = file, date
        self.where = str(file.path)
        self._columns = _normalized_names(raw_columns)
        self.notes = _skipped_note(raw_columns, self.where)

    def pivot(self, tickers: list[str] | None, first: int, last: int) -> tuple[_Wide, list[str]]:
        columns = sorted(self._columns) if tickers is None else tickers
        present = [t for t in columns if t in self._columns]
        for ticker in present:
            if len(self._columns[ticker]) > 1:
                raise DataSourceError(
                    f"ticker {ticker!r} is ambiguous in {self.where}: columns {self._columns[ticker]}"
                )
        raw = [self._columns[t][0] for t in present]
        table = self.file.read([self.date, *raw])
        days = _days(table.column(self.date), f"{self.where}, column {self.date!r}")
        absent = [t for t in columns if t not in self._columns]
        if absent:
            raise _unknown_error(absent, sorted(self._columns), self.where)
        values = [_floats(table.column(name), f"{self.where}, column {name!r}") for name in raw]
        cols = np.repeat(np.arange(len(columns), dtype=np.int64), len(days))
        flat = np.concatenate(values) if values else np.empty(0)
        return _pivot(np.tile(days, len(columns)), cols, flat, len(columns), first, last), columns


def _detect(path: Path) -> _Shape:
    """Decide which of the three shapes ``path`` is, from its listing, header or schema."""
    if path.is_dir():
        return _Directory(path)
    file = _File.open(path)
    columns = list(file.columns)
    ticker, value = _find(columns, _TICKER_NAMES), _find(columns, _VALUE_NAMES)
    date = _find(columns, _DATE_NAMES)
    if ticker is not None:
        if value is None or date is None:
            raise DataSourceError(
                f"{path} has a {ticker!r} column but no "
                f"{'close (close/adj_close)' if value is None else 'date'} column "
                f"(columns: {columns}); {SHAPES_HELP}"
            )
        return _Long(file, date, ticker, value)
    date = date or columns[0]
    others = [col for col in columns if col != date]
    if not others:
        raise DataSourceError(f"{path} has no price columns (columns: {columns}); {SHAPES_HELP}")
    if all(str(col).strip().lower() in _OHLCV_NAMES for col in others):
        raise DataSourceError(
            f"{path} looks like a single-ticker file (columns: {columns}): put such files in a "
            f"directory, one per ticker, named TICKER.csv; {SHAPES_HELP}"
        )
    return _WideFile(file, date, others)


class FileSource:
    """Adjusted closes from a local path in one of three auto-detected shapes."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise DataSourceError(f"price source {self.path} does not exist; {SHAPES_HELP}")
        _check_regular(self.path)

    @cached_property
    def _shape(self) -> _Shape:
        return _detect(self.path)

    def _pivot(self, tickers: list[str] | None, first: int, last: int) -> tuple[_Wide, list[str]]:
        """The shape's pivot, answered from the file's local index where one can (prices/dataset.py)."""
        from evstudy.prices.dataset import indexed_pivot

        indexed = indexed_pivot(self.path, self._shape, tickers, first, last)
        return indexed if indexed is not None else self._shape.pivot(tickers, first, last)

    def load(self, tickers: Sequence[str], start: dt.date, end: dt.date) -> PriceData:
        """Closes of ``tickers`` for [start, end]; UnknownTickerError if any is absent."""
        wanted = list(dict.fromkeys(normalize_ticker(t) for t in tickers))
        _check_range(start, end)
        wide, columns = self._pivot(wanted, _day_number(start), _day_number(end))
        if not len(wide.days) and columns:
            raise self._no_data_error(wanted, start, end)
        notes = _duplicate_note(wide, columns, str(self.path))
        return PriceData(_frame(wide, columns), "files", str(self.path), notes=tuple(notes))

    def load_all(self, start: dt.date, end: dt.date, min_rows: int = 0) -> PriceData:
        """Every ticker with at least ``max(min_rows, 1)`` closes in [start, end], columns sorted.

        Built for whole-market scans: a long Parquet file is read once and
        pivoted in numpy, without a per-ticker loop.
        """
        _check_range(start, end)
        wide, columns = self._pivot(None, _day_number(start), _day_number(end))
        if not len(wide.days) and columns:
            raise self._no_data_error(None, start, end)
        notes = [*self._shape.notes, *_duplicate_note(wide, columns, str(self.path))]
        counts = np.count_nonzero(~np.isnan(wide.values), axis=0)
        keep = counts >= max(min_rows, 1)
        if not keep.all():
            notes.append(
                f"{_plural(int((~keep).sum()), 'ticker')} with fewer than {max(min_rows, 1)} closes "
                f"in {start}..{end} left out"
            )
            wide = _Wide(wide.days, wide.values[:, keep], wide.duplicates[keep])
            columns = [name for name, kept in zip(columns, keep) if kept]
        return PriceData(_frame(wide, columns), "files", str(self.path), notes=tuple(notes))


    def _no_data_error(self, tickers: list[str] | None, start: dt.date, end: dt.date) -> DataSourceError:
        """No close at all in [start, end]: say so with the dates the source does hold (read only on this path)."""
        wide, _ = self._shape.pivot(tickers, _day_number(dt.date(1800, 1, 1)), _day_number(dt.date(2300, 1, 1)))
        if len(wide.days):
            first, last = (_EPOCH + dt.timedelta(days=int(d)) for d in (wide.days[0], wide.days[-1]))
            held = f"its closes{' of these tickers' if tickers else ''} run from {first} to {last}"
        else:
            held = "it holds no closes at all"
        return DataSourceError(
            f"{self.path} has no close between {start} and {end}, the dates the event needs; {held}: "
            f"choose an event inside the data, or load data that covers it"
        )


def _check_range(start: dt.date, end: dt.date) -> None:
    if start > end:
        raise ConfigError(f"start date {start} is after end date {end}")
