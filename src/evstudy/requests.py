"""Request files: one row per firm-event (event_id, ticker, date [, timing, benchmark, group, label]).

Researchers give a study as a table of (firm, date) pairs, as WRDS Event
Study, EventStudyTools' ARC or Stata's eventstudy2 take it. This module reads
and checks that table (CSV or Parquet) and the settings that go with it
(command-line options, or a TOML config with ``events_file = "..."``), at the
config stage: a malformed *file* is a ConfigError, a malformed *row* is kept
aside with its reason for excluded.csv and never stops the other rows.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evstudy.config import (
    _ID_RE, _TICKER_RE, DEFAULT_AR_SPAN, DEFAULT_BENCHMARK, DEFAULT_ESTIMATION, DEFAULT_MAX_ZERO_SHARE,
    DEFAULT_MIN_RETURNS, DEFAULT_WINDOWS, TIMINGS, ModelName, Window, _check_id, _check_keys, check_window_layout,
    covering_window,
    normalize_ticker, parse_window,
)
from evstudy.errors import ConfigError

REQUEST_MODELS: tuple[str, ...] = ("market", "constant_mean", "market_adjusted")  # need only the benchmark
REQUIRED_COLUMNS: tuple[str, ...] = ("event_id", "ticker", "date")
OPTIONAL_COLUMNS: tuple[str, ...] = ("timing", "benchmark", "group", "label")
DEFAULT_GROUP = "all"
EXCLUDED_COLUMNS: list[str] = ["row", "event_id", "ticker", "date", "group", "reason"]
ROW_COLUMNS: list[str] = ["row", "event_id", "ticker", "date", "timing", "benchmark", "group", "label"]

_CONFIG_KEYS: dict[str, Any] = {
    "name": str, "title": str, "description": str, "events_file": str, "benchmark": str, "model": str,
    "estimation_window": list, "windows": list, "ar_span": list, "min_estimation_returns": int,
    "max_zero_share": float, "drop_overlaps": bool,
}


@dataclass(frozen=True)
class RequestConfig:
    """The settings of a request-file study; checked once, here.

    ``benchmark`` is the default market index of a row without one, and its
    trading days are the calendar every firm-event's windows are counted on.
    ``drop_overlaps`` moves firm-events that overlap another event of the same
    firm into excluded.csv instead of only flagging them.
    """

    events_file: str
    name: str = "request"
    title: str = ""
    benchmark: str = DEFAULT_BENCHMARK
    model: ModelName = "market"
    estimation_window: Window = Window(*DEFAULT_ESTIMATION)
    windows: tuple[Window, ...] = tuple(Window(*w) for w in DEFAULT_WINDOWS)
    ar_span: Window = Window(*DEFAULT_AR_SPAN)
    min_estimation_returns: int = DEFAULT_MIN_RETURNS
    max_zero_share: float = DEFAULT_MAX_ZERO_SHARE
    drop_overlaps: bool = False
    source_file: str | None = None

    def __post_init__(self) -> None:
        where = f" in {self.source_file}" if self.source_file else ""
        object.__setattr__(self, "benchmark", normalize_ticker(self.benchmark, f" (benchmark{where})"))
        if self.model not in REQUEST_MODELS:
            raise ConfigError(
                f"model {self.model!r}{where} cannot be used with a request file: choose one of "
                f"{', '.join(REQUEST_MODELS)} (models that need only each row's benchmark)"
            )
        if not self.windows:
            raise ConfigError(f"no event window given{where}: give at least one window such as 0,0")
        check_window_layout(self.windows, self.estimation_window, self.event_span, where=where, also=(self.ar_span,))
        est = self.estimation_window
        if not 3 <= self.min_estimation_returns <= est.length:
            raise ConfigError(
                f"min_estimation_returns {self.min_estimation_returns}{where}: give 3 to {est.length} "
                f"(the estimation window {est.label} has {est.length} days)"
            )
        if not 0.0 < self.max_zero_share <= 1.0:
            raise ConfigError(f"max_zero_share {self.max_zero_share}{where}: give a share in (0, 1]")

    @property
    def event_span(self) -> Window:
        """The days whose abnormal returns are computed: every window and the AR span (for CAAR paths)."""
        return covering_window(self.ar_span, *self.windows)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready echo of the settings, for results.json."""
        return {
            "name": self.name,
            "title": self.title,
            "events_file": self.events_file,
            "source_file": self.source_file,
            "benchmark": self.benchmark,
            "model": self.model,
            "estimation_window": [self.estimation_window.start, self.estimation_window.end],
            "windows": [[w.start, w.end] for w in self.windows],
            "ar_span": [self.ar_span.start, self.ar_span.end],
            "min_estimation_returns": self.min_estimation_returns,
            "max_zero_share": self.max_zero_share,
            "drop_overlaps": self.drop_overlaps,
        }


@dataclass(frozen=True)
class EventRequest:
    """The rows of a request file: those that parsed, and those that did not (with their reason).

    ``rows`` has :data:`ROW_COLUMNS`: ``row`` is the 1-based data row of the
    file, ``date`` a datetime64 day, ``timing`` "" where not given,
    ``benchmark`` filled with the study's default, ``group`` with
    :data:`DEFAULT_GROUP`. ``excluded`` has :data:`EXCLUDED_COLUMNS`.
    """

    file: str
    rows: pd.DataFrame
    excluded: pd.DataFrame

    @property
    def n_rows(self) -> int:
        return len(self.rows) + len(self.excluded)

    def subset(self, positions: np.ndarray) -> EventRequest:
        """The request restricted to some rows (a date block of a distributed run)."""
        return EventRequest(self.file, self.rows.iloc[positions].reset_index(drop=True), self.excluded.iloc[:0])


def request_config_from_dict(raw: Mapping[str, Any], *, source: str, default_name: str = "request") -> RequestConfig:
    """Validate a parsed TOML mapping holding ``events_file``; a relative path is relative to the config."""
    where = f"in {source}"
    for key in raw:
        if key not in _CONFIG_KEYS:
            raise ConfigError(
                f"key {key!r} {where} cannot be used with 'events_file' (the request file gives the events and "
                f"tickers); allowed keys: {', '.join(sorted(_CONFIG_KEYS))}"
            )
    _check_keys(raw, _CONFIG_KEYS, where)
    path = Path(raw["events_file"]).expanduser()
    if not path.is_absolute() and not source.startswith("<"):
        path = Path(source).parent / path

    def window(key: str, default: tuple[int, int]) -> Window:
        return parse_window(raw[key], f" (key '{key}' {where})") if key in raw else Window(*default)

    windows = tuple(parse_window(w, f" (key 'windows' {where})") for w in raw.get("windows", DEFAULT_WINDOWS))
    return RequestConfig(
        events_file=str(path),
        name=_check_id(raw.get("name", default_name), "name", where),
        title=raw.get("title", ""),
        benchmark=raw.get("benchmark", DEFAULT_BENCHMARK),
        model=raw.get("model", "market"),
        estimation_window=window("estimation_window", DEFAULT_ESTIMATION),
        windows=windows,
        ar_span=window("ar_span", DEFAULT_AR_SPAN),
        min_estimation_returns=raw.get("min_estimation_returns", DEFAULT_MIN_RETURNS),
        max_zero_share=float(raw.get("max_zero_share", DEFAULT_MAX_ZERO_SHARE)),
        drop_overlaps=raw.get("drop_overlaps", False),
        source_file=source,
    )


def load_request_config(path: str | Path, raw: Mapping[str, Any] | None = None) -> RequestConfig:
    """Read a TOML config that names an ``events_file``."""
    path = Path(path)
    if raw is None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in path.stem).strip("-.") or "request"
    return request_config_from_dict(raw, source=str(path), default_name=name)


def request_config_in(path: str | Path) -> RequestConfig | None:
    """The request settings if the TOML file at ``path`` names an ``events_file``; None for any other file.

    A file that cannot be read or parsed is None too: the study config loader reports it.
    """
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return load_request_config(path, raw) if "events_file" in raw else None


def _read_plain_csv(path: Path) -> pd.DataFrame | None:
    """The CSV as text columns by Arrow's reader (~10x pandas'), or None for a file it would read otherwise.

    A rectangular UTF-8 file with distinct, non-empty column names reads the
    same either way: every cell as its text, an empty cell as "", blank lines
    skipped, a byte-order mark dropped. Anything else (ragged rows, which
    pandas pads; a repeated or empty column name, which pandas renames; bytes
    that are not UTF-8; a file Arrow cannot parse) returns None, and pandas
    reads it with its own rules and messages.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    try:
        with pa_csv.open_csv(path, parse_options=pa_csv.ParseOptions(newlines_in_values=True)) as reader:
            names = reader.schema.names
        if len(set(names)) != len(names) or not all(names):
            return None
        table = pa_csv.read_csv(
            path,
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(column_types={name: pa.string() for name in names}),
        )
    except (pa.ArrowException, OSError, ValueError):
        return None
    return table.to_pandas()


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = _read_plain_csv(path)
            if frame is None:
                frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        else:
            raise ConfigError(f"request file {path}: expected a .csv or .parquet file with columns "
                              f"{', '.join(REQUIRED_COLUMNS)}")
    except FileNotFoundError:
        raise ConfigError(f"request file {path} does not exist") from None
    except ConfigError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"request file {path} cannot be read: {exc}") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"request file {path} has no column {missing[0]!r} (columns: {list(frame.columns)}); a request file "
            f"has columns {', '.join(REQUIRED_COLUMNS)} and optionally {', '.join(OPTIONAL_COLUMNS)}"
        )
    unknown = [c for c in frame.columns if c not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)]
    if unknown:
        raise ConfigError(
            f"request file {path} has the unknown column {unknown[0]!r}; allowed columns: "
            f"{', '.join((*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS))}"
        )
    return frame


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series("", index=frame.index, dtype=str)
    values = frame[column]
    return values.where(values.notna(), "").astype(str).str.strip()


def _matches(values: pd.Series, pattern: str) -> np.ndarray:
    """Whether each value matches ``pattern``, each distinct value tried once (10⁵ rows hold few tickers)."""
    codes, uniques = pd.factorize(values)
    return pd.Series(uniques, dtype=object).str.match(pattern).to_numpy(dtype=bool)[codes]


def read_request(path: str | Path, config: RequestConfig) -> EventRequest:
    """Read and check a request file; bad rows are kept aside with the reason, never dropped silently."""
    path = Path(path)
    frame = _read_table(path)
    n = len(frame)
    row = np.arange(1, n + 1)
    event_id = _text(frame, "event_id")
    ticker = _text(frame, "ticker").str.upper()
    timing = _text(frame, "timing")
    bench = _text(frame, "benchmark").str.upper()
    bench = bench.where(bench != "", config.benchmark)
    group = _text(frame, "group")
    group = group.where(group != "", DEFAULT_GROUP)
    label = _text(frame, "label")
    raw_date = frame["date"]
    if pd.api.types.is_datetime64_any_dtype(raw_date):
        stamps = pd.to_datetime(raw_date)
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_localize(None)
        has_time = (stamps.notna() & (stamps != stamps.dt.normalize())).to_numpy()
        date = stamps.dt.normalize()
        date_text = stamps.astype(str)
    else:
        date_text = _text(frame, "date")
        codes, uniques = pd.factorize(date_text)  # each distinct date parsed once
        date = pd.Series(pd.to_datetime(pd.Index(uniques, dtype=object), format="%Y-%m-%d", errors="coerce")
                         .take(codes), index=frame.index)
        has_time = np.zeros(n, dtype=bool)

    reason = np.full(n, "", dtype=object)

    def reject(mask: np.ndarray, make: Any) -> None:
        """Give each row selected by ``mask`` that has no reason yet the reason ``make(i)``."""
        for i in np.flatnonzero(np.asarray(mask) & (reason == "")):
            reason[i] = make(i)

    reject(~event_id.str.match(_ID_RE.pattern).to_numpy(dtype=bool), lambda i: (
        f"event_id {event_id.iat[i]!r} is not a short id of letters, digits, '_', '-' or '.'"
    ))
    reject(~_matches(ticker, _TICKER_RE.pattern), lambda i: (
        f"ticker {ticker.iat[i]!r} is not a valid symbol (1-20 letters, digits, '.', '-', '^', '=' or '_')"
    ))
    reject(date.isna().to_numpy(), lambda i: f"date {date_text.iat[i]!r} is not a date in the form YYYY-MM-DD")
    reject(has_time, lambda i: (
        f"date {date_text.iat[i]!r} has a time of day: give the date and the timing column "
        f"({', '.join(TIMINGS)})"
    ))
    reject(~timing.isin(["", *TIMINGS]).to_numpy(), lambda i: (
        f"timing {timing.iat[i]!r} is not one of {', '.join(TIMINGS)} (or empty: before the open)"
    ))
    reject(~_matches(bench, _TICKER_RE.pattern), lambda i: (
        f"benchmark {bench.iat[i]!r} is not a valid symbol"
    ))
    reject((bench == ticker).to_numpy(), lambda i: f"{ticker.iat[i]} is its own benchmark")
    key = event_id + "\x00" + ticker
    key_codes = pd.factorize(key)[0]  # codes in order of first appearance
    first_row = row[np.unique(key_codes, return_index=True)[1][key_codes]]
    reject(first_row != row, lambda i: (
        f"duplicate of row {first_row[i]} (event {event_id.iat[i]!r}, ticker {ticker.iat[i]}): one row per firm-event"
    ))
    good = reason == ""
    rows = pd.DataFrame({  # the text columns as they are: no round trip through Python strings
        "row": row, "event_id": event_id, "ticker": ticker, "date": date.astype("datetime64[ns]"), "timing": timing,
        "benchmark": bench, "group": group, "label": label,
    }, columns=ROW_COLUMNS)
    bad = ~good
    excluded = pd.DataFrame({
        "row": row[bad], "event_id": event_id[bad].to_numpy(), "ticker": ticker[bad].to_numpy(),
        "date": date_text[bad].to_numpy(), "group": group[bad].to_numpy(), "reason": reason[bad],
    }, columns=EXCLUDED_COLUMNS)
    return EventRequest(str(path), rows[good].reset_index(drop=True), excluded)
