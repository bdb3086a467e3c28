"""Study configuration: frozen dataclasses, and a strict loader for TOML files.

A config names one or more events, the baskets of tickers to study, the
benchmark(s), the expected-return model and the windows. Everything is checked
here, once: an unknown key or a bad value raises :class:`ConfigError` naming
the key, the file and what is allowed, so later stages can trust their input.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import stat
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from evstudy.errors import ConfigError

Timing = Literal["before_open", "during", "after_close"]
ModelName = Literal["market", "market_adjusted", "constant_mean", "two_index", "factor", "dimson"]
FactorUnits = Literal["percent", "decimal"]

TIMINGS: tuple[str, ...] = get_args(Timing)
MODELS: tuple[str, ...] = get_args(ModelName)

DEFAULT_BENCHMARK = "SPY"
DEFAULT_ESTIMATION = (-250, -11)
DEFAULT_WINDOWS = ((0, 0), (-1, 1), (0, 1), (0, 5), (-5, 5), (-10, 10))
DEFAULT_AR_SPAN = (-10, 10)
DEFAULT_MIN_RETURNS = 120
DEFAULT_MAX_ZERO_SHARE = 0.5
DEFAULT_PLACEBO_DATES = 1000
DEFAULT_SEED = 12345
MAX_PLACEBO_DATES = 100_000
MAX_OFFSET = 10_000  # trading days (about 40 years): any window or estimation offset beyond is a typo
MAX_SEED = 2**63 - 1  # numpy seeds are unsigned 64-bit; a larger one would overflow downstream
MAX_PERMUTATIONS = 1_000_000  # label shuffles of the permutation test: p-values resolved to 1e-6
DEFAULT_DRIFT = (-20, -1)
AD_HOC_BASKET = "all"
AD_HOC_EVENT = "event"

# Matched with fullmatch: "$" alone would let a trailing newline through into folder names and CSV fields.
_TICKER_RE = re.compile(r"[A-Z0-9^][A-Z0-9.\-^=_]{0,19}")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?")


@dataclass(frozen=True, order=True)
class Window:
    """An inclusive range of trading days relative to day 0, e.g. [-1, +1]."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def label(self) -> str:
        return f"[{self.start:+d},{self.end:+d}]".replace("+0", "0")

    def __str__(self) -> str:
        return self.label


def covering_window(*windows: Window) -> Window:
    """The smallest window holding every one of ``windows`` (a study's or request's event span)."""
    return Window(min(w.start for w in windows), max(w.end for w in windows))


@dataclass(frozen=True)
class Confounder:
    """Other news on a nearby date that moves the same stocks."""

    date: dt.date
    label: str


@dataclass(frozen=True)
class EventSpec:
    """When news reached the market: a date plus timing, or a zoned timestamp."""

    id: str
    date: dt.date
    timing: Timing | None = None
    timestamp: dt.datetime | None = None
    label: str = ""
    baskets: tuple[str, ...] = ()
    confounders: tuple[Confounder, ...] = ()


@dataclass(frozen=True)
class Basket:
    """A named group of tickers, measured against one or more benchmarks."""

    name: str
    tickers: tuple[str, ...]
    benchmarks: tuple[str, ...]
    label: str = ""
    event: str = ""  # the event whose own `tickers` formed this basket; "" for a shared basket
    sector: str = ""  # the second index of model "two_index" (e.g. REMX); "" otherwise

    @property
    def title(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class FactorSpec:
    """A user-supplied daily factor file for model "factor" (read by :mod:`evstudy.prices.factors`).

    ``file`` is resolved against the config file's folder; ``units`` says
    whether its numbers are percent (Kenneth French's files: 0.05 = 0.05%)
    or decimals; ``columns`` picks the factors (empty: every column except the
    date and ``rf``); ``rf`` names the risk-free column.
    """

    file: str
    units: FactorUnits
    columns: tuple[str, ...] = ()
    rf: str = "RF"
    name: str = ""

    @property
    def label(self) -> str:
        """How results name the factor set in their benchmark column."""
        return self.name or Path(self.file).stem


@dataclass(frozen=True)
class StudyConfig:
    """Everything that defines a study; results carry it for reproducibility."""

    name: str
    events: tuple[EventSpec, ...]
    baskets: tuple[Basket, ...]
    benchmark: str = DEFAULT_BENCHMARK
    model: ModelName = "market"
    estimation_window: Window = Window(*DEFAULT_ESTIMATION)
    windows: tuple[Window, ...] = tuple(Window(*w) for w in DEFAULT_WINDOWS)
    ar_span: Window = Window(*DEFAULT_AR_SPAN)
    min_estimation_returns: int = DEFAULT_MIN_RETURNS
    max_zero_share: float = DEFAULT_MAX_ZERO_SHARE
    placebo_dates: int = DEFAULT_PLACEBO_DATES  # pseudo-event days for the placebo tests; 0 switches them off
    seed: int = DEFAULT_SEED  # seeds the draw of pseudo-event days
    drift_window: Window = Window(*DEFAULT_DRIFT)
    title: str = ""
    description: str = ""
    source_file: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    active_from: Mapping[str, dt.date] = field(default_factory=dict)  # ticker -> first day of its active regime
    accept_breaks: bool = False  # estimate from a detected variance break (see evstudy.diagnostics)
    factors: FactorSpec | None = None

    def __post_init__(self) -> None:
        _check_study(self)

    @property
    def event_span(self) -> Window:
        """The smallest window holding the AR span and every event window."""
        return covering_window(self.ar_span, *self.windows)

    def baskets_for(self, event: EventSpec) -> tuple[Basket, ...]:
        """The event's named baskets, or else every shared basket (not another event's own tickers)."""
        if not event.baskets:
            return tuple(b for b in self.baskets if not b.event)
        by_name = {b.name: b for b in self.baskets}
        return tuple(by_name[name] for name in event.baskets)

    @property
    def drift_overlap(self) -> Window | None:
        """The days the drift window shares with the estimation window (their ARs are in-sample), if any."""
        start = max(self.drift_window.start, self.estimation_window.start)
        end = min(self.drift_window.end, self.estimation_window.end)
        return Window(start, end) if start <= end else None

    def tickers(self) -> list[str]:
        """Every ticker and benchmark the study needs, without repeats."""
        seen: dict[str, None] = {self.benchmark: None}
        for basket in self.baskets:
            for ticker in (*basket.tickers, *basket.benchmarks, *((basket.sector,) if basket.sector else ())):
                seen.setdefault(ticker, None)
        return list(seen)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready echo of the parameters, for results files."""
        return {
            "name": self.name,
            "title": self.title,
            "source_file": self.source_file,
            "benchmark": self.benchmark,
            "model": self.model,
            "estimation_window": [self.estimation_window.start, self.estimation_window.end],
            "windows": [[w.start, w.end] for w in self.windows],
            "ar_span": [self.ar_span.start, self.ar_span.end],
            "min_estimation_returns": self.min_estimation_returns,
            "max_zero_share": self.max_zero_share,
            "placebo_dates": self.placebo_dates,
            "seed": self.seed,
            "active_from": {ticker: day.isoformat() for ticker, day in self.active_from.items()},
            "accept_breaks": self.accept_breaks,
            "sectors": {b.name: b.sector for b in self.baskets if b.sector},
            "factors": None if self.factors is None else {
                "file": self.factors.file, "units": self.factors.units, "columns": list(self.factors.columns),
                "rf": self.factors.rf, "name": self.factors.label,
            },
            "drift_window": [self.drift_window.start, self.drift_window.end],
            "events": [
                {
                    "id": e.id,
                    "label": e.label,
                    "date": e.date.isoformat(),
                    "timing": e.timing,
                    "timestamp": e.timestamp.isoformat() if e.timestamp else None,
                    "baskets": list(e.baskets),
                    "confounders": [{"date": c.date.isoformat(), "label": c.label} for c in e.confounders],
                }
                for e in self.events
            ],
            "baskets": [
                {"name": b.name, "label": b.label, "tickers": list(b.tickers), "benchmarks": list(b.benchmarks),
                 "event": b.event or None}
                for b in self.baskets
            ],
        }


# --------------------------------------------------------------------------- checks


def _check_study(cfg: StudyConfig) -> None:
    where = f" in {cfg.source_file}" if cfg.source_file else ""
    if not cfg.events:
        raise ConfigError(f"no event given{where}: add an [[events]] table (or --event DATE)")
    if not cfg.baskets:
        raise ConfigError(f"no tickers given{where}: add a [[baskets]] table (or --tickers A,B)")
    if cfg.model not in MODELS:
        raise ConfigError(f"model {cfg.model!r}{where} is not one of {', '.join(MODELS)}")
    _check_model_inputs(cfg, where)
    est = cfg.estimation_window
    if est.start > est.end:
        raise ConfigError(f"estimation window [{est.start},{est.end}]{where} is reversed: give [start,end] with start <= end")
    for window in (*cfg.windows, cfg.ar_span):
        if window.start > window.end:
            raise ConfigError(f"event window [{window.start},{window.end}]{where} is reversed: give [start,end] with start <= end")
    span = cfg.event_span
    if est.end >= span.start:
        raise ConfigError(
            f"estimation window {est.label}{where} overlaps the event windows (earliest day {span.start:+d}): "
            f"the estimation window must end before day {span.start:+d}"
        )
    drift = cfg.drift_window
    if drift.start > drift.end or drift.end >= 0:
        raise ConfigError(
            f"drift_window {drift.label}{where} must be a pre-event window [start,end] with start <= end < 0, "
            f"e.g. [-20, -1]"
        )
    if isinstance(cfg.min_estimation_returns, bool) or not isinstance(cfg.min_estimation_returns, int):
        raise ConfigError(f"min_estimation_returns = {cfg.min_estimation_returns!r}{where}: give a whole number")
    if cfg.min_estimation_returns < 3:
        raise ConfigError(f"min_estimation_returns = {cfg.min_estimation_returns}{where}: needs at least 3")
    if cfg.min_estimation_returns > est.length:
        raise ConfigError(
            f"min_estimation_returns = {cfg.min_estimation_returns}{where} exceeds the estimation window's "
            f"{est.length} days {est.label}"
        )
    if not 0.0 < cfg.max_zero_share <= 1.0:
        raise ConfigError(f"max_zero_share = {cfg.max_zero_share}{where}: give a share in (0, 1]")
    if isinstance(cfg.placebo_dates, bool) or not isinstance(cfg.placebo_dates, int) \
            or not 0 <= cfg.placebo_dates <= MAX_PLACEBO_DATES:
        raise ConfigError(
            f"placebo_dates = {cfg.placebo_dates!r}{where}: give a whole number of pseudo-event days from 0 "
            f"(no placebo tests) to {MAX_PLACEBO_DATES:,}, e.g. 1000"
        )
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError(f"seed = {cfg.seed!r}{where}: give a whole number from 0 to {MAX_SEED}, e.g. 12345")
    names = [b.name for b in cfg.baskets]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"basket name {dupes[0]!r} is used twice{where}: basket names must be unique")
    ids = [e.id for e in cfg.events]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(f"event id {dupes[0]!r} is used twice{where}: event ids must be unique")
    for event in cfg.events:
        for name in event.baskets:
            if name not in names:
                raise ConfigError(
                    f"event {event.id!r}{where} names basket {name!r}, which is not defined; "
                    f"defined baskets: {', '.join(names)}"
                )
        if not cfg.baskets_for(event):
            raise ConfigError(
                f"event {event.id!r}{where} has no tickers: give it `tickers = [...]` or `baskets = [...]`, "
                f"or add a shared [[baskets]] table"
            )
    event_ids = set(ids)
    for basket in cfg.baskets:
        if basket.event and basket.event not in event_ids:
            raise ConfigError(
                f"basket {basket.name!r}{where} belongs to event {basket.event!r}, which is not defined; "
                f"defined events: {', '.join(ids)}"
            )


def _check_model_inputs(cfg: StudyConfig, where: str) -> None:
    """Two-index baskets need a sector index, the factor model a factor file; active_from names basket tickers."""
    for basket in cfg.baskets:
        if cfg.model == "two_index" and not basket.sector:
            raise ConfigError(
                f"basket {basket.name!r}{where} has no 'sector': model \"two_index\" regresses each stock on its "
                f"benchmark and a sector index; add e.g. sector = \"REMX\" to the basket"
            )
        if basket.sector and cfg.model != "two_index":
            raise ConfigError(
                f"key 'sector' in basket {basket.name!r}{where} is used only by model = \"two_index\" "
                f"(the model is {cfg.model!r}): remove it or change the model"
            )
        if basket.sector in basket.benchmarks:
            raise ConfigError(
                f"{basket.sector} is both the sector and a benchmark of basket {basket.name!r}{where}: with "
                f"model \"two_index\" 'benchmarks' are the market indexes and 'sector' the second index"
            )
    if cfg.model == "factor" and cfg.factors is None:
        raise ConfigError(
            f"model \"factor\"{where} needs a [factors] table with 'file' and 'units' (\"percent\" or \"decimal\")"
        )
    if cfg.factors is not None and cfg.model != "factor":
        raise ConfigError(f"the [factors] table{where} is used only by model = \"factor\" (the model is {cfg.model!r})")
    known = list(dict.fromkeys(t for b in cfg.baskets for t in b.tickers))
    for ticker in cfg.active_from:
        if ticker not in known:
            shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
            raise ConfigError(
                f"key 'active_from.{ticker}'{where}: {ticker} is in no basket; active_from takes the baskets' "
                f"tickers ({shown})"
            )


def normalize_ticker(raw: object, where: str = "") -> str:
    """Upper-case a ticker and check it looks like one (``BRK-B``, ``^GSPC``, ``BRK.B``)."""
    if not isinstance(raw, str):
        raise ConfigError(f"ticker {raw!r}{where} must be a string such as \"MP\"")
    ticker = raw.strip().upper()
    if not _TICKER_RE.fullmatch(ticker):
        raise ConfigError(
            f"ticker {raw!r}{where} is not a valid symbol: use 1-20 letters, digits, '.', '-', '^', '=' or '_' "
            f"(e.g. MP, BRK-B, ^GSPC)"
        )
    return ticker


def parse_tickers(raw: Iterable[object], where: str = "") -> tuple[str, ...]:
    """Normalize a ticker list, rejecting an empty list and duplicates."""
    tickers = [normalize_ticker(t, where) for t in raw]
    if not tickers:
        raise ConfigError(f"empty ticker list{where}: give at least one ticker")
    dupes = sorted(t for t, count in Counter(tickers).items() if count > 1)
    if dupes:
        raise ConfigError(f"ticker {dupes[0]} is listed twice{where}: list each ticker once")
    return tuple(tickers)


def check_window_layout(
    windows: tuple[Window, ...], estimation: Window, span: Window, *, where: str = "", flag: str = "window",
    also: tuple[Window, ...] = (),
) -> None:
    """Each event window listed once, no window reversed, the estimation window ending before ``span``.

    ``flag`` names the windows in the message (``--window`` on the command
    line), ``where`` the file; ``also`` are further windows to check for order.
    """
    repeated = sorted({w.label for w in windows if windows.count(w) > 1})
    if repeated:
        raise ConfigError(f"{flag} {repeated[0]}{where} is given twice: list each window once")
    for window in (*windows, *also, estimation):
        if window.start > window.end:
            raise ConfigError(f"window {window.label}{where} is reversed: give START,END with START <= END")
    if estimation.end >= span.start:
        raise ConfigError(
            f"estimation window {estimation.label}{where} overlaps the event windows (earliest day {span.start:+d}): "
            f"it must end before day {span.start:+d}"
        )


def parse_window(raw: object, where: str = "") -> Window:
    """A window from ``[a, b]`` or ``"a,b"``."""
    values: Sequence[object]
    if isinstance(raw, str):
        values = [v.strip() for v in raw.split(",")]
    elif isinstance(raw, (list, tuple)):
        values = raw
    else:
        values = []
    try:
        if len(values) != 2 or any(isinstance(v, (bool, float)) for v in values):
            raise ValueError
        start, end = (int(v) for v in values)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigError(
            f"window {raw!r}{where} is not a pair of whole trading-day offsets such as [-1, 1] or \"-1,1\""
        ) from None
    if not (-MAX_OFFSET <= start <= MAX_OFFSET and -MAX_OFFSET <= end <= MAX_OFFSET):
        raise ConfigError(
            f"window {raw!r}{where} has an offset beyond ±{MAX_OFFSET:,} trading days (about 40 years): "
            f"give offsets such as [-250, -11] or \"-1,1\""
        )
    if start > end:
        raise ConfigError(f"window [{start},{end}]{where} is reversed: give [start,end] with start <= end")
    return Window(start, end)


def parse_event(text: str, *, event_id: str = AD_HOC_EVENT, label: str = "") -> EventSpec:
    """Parse ``DATE[:timing]`` or an ISO timestamp with a time zone (``--event``)."""
    text = text.strip()
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?::([a-z_]+))?", text)
    if match:
        date = _parse_date(match.group(1), " in --event")
        timing = match.group(2)
        if timing is not None and timing not in TIMINGS:
            raise ConfigError(f"timing {timing!r} in --event {text!r} is not one of {', '.join(TIMINGS)}")
        return EventSpec(id=event_id, date=date, timing=timing, label=label)  # type: ignore[arg-type]
    timestamp = _parse_timestamp(text, " in --event")
    return EventSpec(id=event_id, date=timestamp.date(), timestamp=timestamp, label=label)


def _parse_date(raw: object, where: str) -> dt.date:
    if isinstance(raw, dt.datetime):
        raise ConfigError(f"date {raw!r}{where} has a time: use `timestamp` for a time, `date` for a day")
    if isinstance(raw, dt.date):
        return raw
    if isinstance(raw, str) and _ISO_DATE_RE.fullmatch(raw.strip()):
        try:  # the pattern first: fromisoformat also takes 20251013 and 2025-W42-1
            return dt.date.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise ConfigError(f"date {raw!r}{where} is not a date in the form YYYY-MM-DD")


def _parse_timestamp(raw: object, where: str) -> dt.datetime:
    value: dt.datetime | None = None
    if isinstance(raw, dt.datetime):
        value = raw
    elif isinstance(raw, str) and _ISO_TIMESTAMP_RE.fullmatch(raw.strip()):
        try:
            value = dt.datetime.fromisoformat(raw.strip())
        except ValueError:
            value = None
    if value is None:
        raise ConfigError(
            f"{raw!r}{where} is neither YYYY-MM-DD[:before_open|during|after_close] nor an ISO timestamp "
            f"with a time zone such as 2025-10-13T08:00:00-04:00"
        )
    if value.tzinfo is None:
        raise ConfigError(
            f"timestamp {raw!r}{where} has no time zone: add one, e.g. 2025-10-13T08:00:00-04:00 (New York)"
        )
    return value


# --------------------------------------------------------------------------- TOML


_TOP_KEYS = {
    "name": str,
    "title": str,
    "description": str,
    "benchmark": str,
    "model": str,
    "estimation_window": list,
    "windows": list,
    "ar_span": list,
    "min_estimation_returns": int,
    "max_zero_share": float,
    "placebo_dates": int,
    "seed": int,
    "active_from": dict,
    "accept_breaks": bool,
    "factors": dict,
    "drift_window": list,
    "events": list,
    "baskets": list,
    "confounders": list,
}
_EVENT_KEYS = {
    "id": str,
    "label": str,
    "date": (str, dt.date),
    "timing": str,
    "timestamp": (str, dt.datetime),
    "baskets": list,
    "confounders": list,
    "tickers": list,
    "benchmark": str,
    "benchmarks": list,
}
_BASKET_KEYS = {"name": str, "label": str, "tickers": list, "benchmarks": list, "benchmark": str, "sector": str}
_FACTOR_KEYS = {"file": str, "units": str, "columns": list, "rf": str, "name": str}
_CONFOUNDER_KEYS = {"date": (str, dt.date), "label": str}


def _check_keys(table: Mapping[str, Any], allowed: Mapping[str, Any], where: str) -> None:
    for key, value in table.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown key {key!r} {where}{hint}; allowed keys: {', '.join(sorted(allowed))}"
            )
        expected = allowed[key]
        types = expected if isinstance(expected, tuple) else (expected,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            names = " or ".join(
                {str: "a string", int: "a whole number", float: "a number", list: "a list",
                 dt.date: "a date", dt.datetime: "a timestamp", dict: "a table", bool: "true or false"}[t]
                for t in types
            )
            raise ConfigError(f"key {key!r} {where} is {value!r}; expected {names}")


def _check_id(value: object, key: str, where: str) -> str:
    """A study, basket or event id: short, of letters, digits, '_', '-' or '.' (it names files and rows)."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ConfigError(
            f"key {key!r} {where} is {value!r}; give a short id (at most 64 characters) of letters, digits, "
            f"'_', '-' or '.', without spaces, line breaks or other control characters"
        )
    return value


def _confounders(raw: list[Any], where: str) -> tuple[Confounder, ...]:
    out = []
    for i, item in enumerate(raw):
        here = f"in confounder #{i + 1} {where}"
        if not isinstance(item, dict):
            raise ConfigError(f"confounder #{i + 1} {where} must be a table with `date` and `label`")
        _check_keys(item, _CONFOUNDER_KEYS, here)
        if "date" not in item:
            raise ConfigError(f"missing key 'date' {here}")
        out.append(Confounder(_parse_date(item["date"], f" {here}"), str(item.get("label", ""))))
    return tuple(out)


def _event_basket(
    table: Mapping[str, Any], event_id: str, default_benchmark: str, baskets: Sequence[Basket], here: str
) -> Basket | None:
    """The basket an event's own `tickers` form, named after the event and measured against its benchmark(s)."""
    bench_keys = [k for k in ("benchmark", "benchmarks") if k in table]
    if "tickers" not in table:
        if bench_keys:
            raise ConfigError(
                f"key {bench_keys[0]!r} {here} applies only to the event's own `tickers`, and it has none: "
                f"add `tickers = [...]`, or set the benchmark on the [[baskets]] it uses"
            )
        return None
    if len(bench_keys) == 2:
        raise ConfigError(f"{here}: give either 'benchmark' or 'benchmarks', not both")
    if any(b.name == event_id for b in baskets):
        raise ConfigError(
            f"the tickers {here} form a basket named after the event, {event_id!r}, but a [[baskets]] table "
            f"already has that name: rename the event id or the basket"
        )
    tickers = parse_tickers(table["tickers"], f" (key 'tickers' {here})")
    bench_raw = table.get("benchmarks", [table["benchmark"]] if "benchmark" in table else [default_benchmark])
    benchmarks = parse_tickers(bench_raw, f" (benchmarks {here})")
    for bench in benchmarks:
        if bench in tickers:
            raise ConfigError(f"{bench} is both a ticker and a benchmark {here}: a stock cannot be its own benchmark")
    shown = ", ".join(tickers[:6]) + (f" and {len(tickers) - 6} more" if len(tickers) > 6 else "")
    return Basket(name=event_id, tickers=tickers, benchmarks=benchmarks, label=shown, event=event_id)


def _active_from(table: Mapping[str, Any], where: str) -> dict[str, dt.date]:
    """``[active_from]``: ticker = first day of the regime to estimate on (e.g. a SPAC's merger date)."""
    out: dict[str, dt.date] = {}
    for key, value in table.items():
        here = f" (key 'active_from.{key}' {where})"
        out[normalize_ticker(key, here)] = _parse_date(value, here)
    return out


def _factor_spec(table: Mapping[str, Any], source: str, where: str) -> FactorSpec:
    """``[factors]``: the factor file, its units and columns; a relative path is relative to the config."""
    here = f"in [factors] {where}"
    _check_keys(table, _FACTOR_KEYS, here)
    for key in ("file", "units"):
        if key not in table:
            raise ConfigError(
                f"missing key {key!r} {here}: give file = \"factors.csv\" and units = \"percent\" or \"decimal\""
            )
    if table["units"] not in get_args(FactorUnits):
        raise ConfigError(f"key 'units' {here} is {table['units']!r}; allowed: percent, decimal")
    columns = table.get("columns", [])
    if not all(isinstance(c, str) and c for c in columns) or len(set(columns)) != len(columns):
        raise ConfigError(f"key 'columns' {here} is {columns!r}; give distinct column names such as [\"Mkt-RF\", \"SMB\"]")
    path = Path(table["file"]).expanduser()
    if not path.is_absolute() and not source.startswith("<"):
        path = Path(source).parent / path
    rf = table.get("rf", "RF")
    if rf in columns:
        raise ConfigError(f"key 'columns' {here} lists the risk-free column {rf!r}: it is subtracted, not a factor")
    return FactorSpec(file=str(path), units=table["units"], columns=tuple(columns), rf=rf, name=table.get("name", ""))


def check_regular_file(path: Path, what: str) -> None:
    """Refuse a FIFO, socket or device before opening it: reading one blocks forever or never ends.

    A missing path passes (the caller's own open reports it); a folder passes
    too, for callers that accept one. Only a path that exists as something
    other than a regular file or folder is refused.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ConfigError(f"{what} {path} is not a regular file (a pipe, socket or device): give a file on disk")


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a TOML study config; every error names the file and key."""
    path = Path(path)
    check_regular_file(path, "config file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    default_name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", path.stem).strip("-.") or "study"
    return config_from_dict(raw, source=str(path), default_name=default_name)


def config_from_dict(raw: Mapping[str, Any], *, source: str = "<dict>", default_name: str = "study") -> StudyConfig:
    """Validate an already-parsed mapping (the TOML loader and notebooks use this)."""
    where_file = f"in {source}"
    if "events_file" in raw:
        raise ConfigError(
            f"{source} names an events_file (a request-file study): run it with `evstudy run {source}`; "
            f"this command takes a config of [[events]] and [[baskets]]"
        )
    _check_keys(raw, _TOP_KEYS, where_file)

    benchmark = normalize_ticker(raw.get("benchmark", DEFAULT_BENCHMARK), f" (key 'benchmark' {where_file})")
    model = raw.get("model", "market")
    if model not in MODELS:
        raise ConfigError(f"key 'model' {where_file} is {model!r}; allowed: {', '.join(MODELS)}")

    shared_confounders = _confounders(raw.get("confounders", []), where_file)

    baskets = []
    for i, table in enumerate(raw.get("baskets", [])):
        here = f"in basket #{i + 1} {where_file}"
        if not isinstance(table, dict):
            raise ConfigError(f"basket #{i + 1} {where_file} must be a table ([[baskets]])")
        _check_keys(table, _BASKET_KEYS, here)
        name = _check_id(table.get("name"), "name", here)
        here = f"in basket {name!r} {where_file}"
        if "tickers" not in table:
            raise ConfigError(f"missing key 'tickers' {here}")
        tickers = parse_tickers(table["tickers"], f" ({here})")
        if "benchmark" in table and "benchmarks" in table:
            raise ConfigError(f"{here}: give either 'benchmark' or 'benchmarks', not both")
        bench_raw = table.get("benchmarks", [table["benchmark"]] if "benchmark" in table else [benchmark])
        benchmarks = parse_tickers(bench_raw, f" (benchmarks {here})")
        for bench in benchmarks:
            if bench in tickers:
                raise ConfigError(f"{bench} is both a ticker and a benchmark {here}: a stock cannot be its own benchmark")
        sector = normalize_ticker(table["sector"], f" (key 'sector' {here})") if "sector" in table else ""
        if sector in tickers:
            raise ConfigError(f"{sector} is both a ticker and the sector index {here}: a stock cannot be its own index")
        baskets.append(
            Basket(name=name, tickers=tickers, benchmarks=benchmarks, label=table.get("label", ""), sector=sector)
        )

    events = []
    for i, table in enumerate(raw.get("events", [])):
        here = f"in event #{i + 1} {where_file}"
        if not isinstance(table, dict):
            raise ConfigError(f"event #{i + 1} {where_file} must be a table ([[events]])")
        _check_keys(table, _EVENT_KEYS, here)
        default_id = f"event{i + 1}" if len(raw.get("events", [])) > 1 else AD_HOC_EVENT
        event_id = _check_id(table.get("id", default_id), "id", here)
        timing = table.get("timing")
        if timing is not None and timing not in TIMINGS:
            raise ConfigError(f"key 'timing' {here} is {timing!r}; allowed: {', '.join(TIMINGS)}")
        timestamp = None
        if "timestamp" in table:
            if "timing" in table:
                raise ConfigError(f"{here}: give either 'timestamp' or 'date' with 'timing', not both")
            timestamp = _parse_timestamp(table["timestamp"], f" (key 'timestamp' {here})")
            date = timestamp.date()
            if "date" in table and _parse_date(table["date"], f" (key 'date' {here})") != date:
                raise ConfigError(f"{here}: 'date' and 'timestamp' disagree; give only the timestamp")
        elif "date" in table:
            date = _parse_date(table["date"], f" (key 'date' {here})")
        else:
            raise ConfigError(f"missing key 'date' (or 'timestamp') {here}")
        own = _event_basket(table, event_id, benchmark, baskets, here)
        if own is not None:
            baskets.append(own)
        events.append(
            EventSpec(
                id=event_id,
                date=date,
                timing=timing,
                timestamp=timestamp,
                label=table.get("label", ""),
                baskets=((own.name,) if own else ()) + tuple(str(b) for b in table.get("baskets", [])),
                confounders=shared_confounders + _confounders(table.get("confounders", []), here),
            )
        )

    def window(key: str, default: tuple[int, int]) -> Window:
        return parse_window(raw[key], f" (key '{key}' {where_file})") if key in raw else Window(*default)

    windows = tuple(parse_window(w, f" (key 'windows' {where_file})") for w in raw.get("windows", DEFAULT_WINDOWS))
    repeated = sorted({w.label for w in windows if windows.count(w) > 1})
    if repeated:
        raise ConfigError(f"window {repeated[0]} is listed twice in key 'windows' {where_file}: list each window once")
    if not windows:
        raise ConfigError(f"key 'windows' {where_file} is empty: give at least one window such as [0, 0]")
    name = _check_id(raw.get("name", default_name), "name", where_file)
    return StudyConfig(
        name=name,
        title=raw.get("title", ""),
        description=raw.get("description", ""),
        events=tuple(events),
        baskets=tuple(baskets),
        benchmark=benchmark,
        model=model,
        estimation_window=window("estimation_window", DEFAULT_ESTIMATION),
        windows=windows,
        ar_span=window("ar_span", DEFAULT_AR_SPAN),
        min_estimation_returns=raw.get("min_estimation_returns", DEFAULT_MIN_RETURNS),
        max_zero_share=float(raw.get("max_zero_share", DEFAULT_MAX_ZERO_SHARE)),
        placebo_dates=raw.get("placebo_dates", DEFAULT_PLACEBO_DATES),
        seed=raw.get("seed", DEFAULT_SEED),
        active_from=_active_from(raw.get("active_from", {}), where_file),
        accept_breaks=raw.get("accept_breaks", False),
        factors=_factor_spec(raw["factors"], source, where_file) if "factors" in raw else None,
        drift_window=window("drift_window", DEFAULT_DRIFT),
        source_file=source,
    )


def ad_hoc_config(
    *,
    event: str,
    tickers: Sequence[str],
    benchmark: str = DEFAULT_BENCHMARK,
    model: str = "market",
    estimation_window: Window | None = None,
    windows: Sequence[Window] | None = None,
    min_estimation_returns: int = DEFAULT_MIN_RETURNS,
    name: str = "adhoc",
) -> StudyConfig:
    """A one-event, one-basket (``all``) study, as ``evstudy run --event ... --tickers ...`` builds it."""
    bench = normalize_ticker(benchmark, " (--benchmark)")
    members = parse_tickers(tickers, " (--tickers)")
    if bench in members:
        raise ConfigError(f"{bench} is both in --tickers and the --benchmark: a stock cannot be its own benchmark")
    if model not in MODELS:
        raise ConfigError(f"--model {model!r} is not one of {', '.join(MODELS)}")
    if model in ("two_index", "factor"):
        raise ConfigError(
            f"--model {model} needs {'a sector index per basket' if model == 'two_index' else 'a factor file'}, "
            f"which only a config file can give: use a TOML config"
        )
    repeated = sorted({w.label for w in windows or () if list(windows or ()).count(w) > 1})
    if repeated:
        raise ConfigError(f"--window {repeated[0]} is given twice: list each window once")
    est = estimation_window or Window(*DEFAULT_ESTIMATION)
    earliest = min([DEFAULT_AR_SPAN[0], *(w.start for w in windows or ())])
    if est.end >= earliest:
        raise ConfigError(
            f"--estimation-window {est.start},{est.end} overlaps the event windows: it must end before day "
            f"{earliest:+d}, the earliest day of --window and of the {DEFAULT_AR_SPAN[0]:+d}..{DEFAULT_AR_SPAN[1]:+d} "
            f"day abnormal-return span, e.g. --estimation-window={earliest - 240},{earliest - 1}"
        )
    if min_estimation_returns > est.length:
        raise ConfigError(
            f"--min-returns {min_estimation_returns} exceeds the {est.length} days of the estimation window "
            f"{est.label}: give at most {est.length}, or a longer --estimation-window"
        )
    return StudyConfig(
        name=name,
        events=(parse_event(event),),
        baskets=(Basket(name=AD_HOC_BASKET, tickers=members, benchmarks=(bench,)),),
        benchmark=bench,
        model=model,  # type: ignore[arg-type]
        estimation_window=estimation_window or Window(*DEFAULT_ESTIMATION),
        windows=tuple(windows) if windows else tuple(Window(*w) for w in DEFAULT_WINDOWS),
        min_estimation_returns=min_estimation_returns,
    )
