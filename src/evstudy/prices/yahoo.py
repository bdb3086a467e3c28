"""Prices from Yahoo Finance (yfinance), kept in a per-ticker Parquet cache.

A load reads the cache, works out per ticker which calendar range is not yet
covered, and downloads those ranges in one batched ``yf.download`` call per
distinct range. Three details keep the cache honest:

* Coverage ends at yesterday at the latest: today's bar may still move.
* Weekend days at the edges of a missing range are not fetched (US listings
  have no weekend bars), so a cache filled on Friday still covers a request
  ending on Sunday.
* Yahoo's adjusted closes are rescaled after every split and dividend, so
  closes cached earlier can be on another basis than new ones. Each top-up
  therefore also asks for one cached day (the anchor) next to the gap; if Yahoo
  now reports a different close for it, the ticker's whole history is
  refetched rather than stitched into a fake jump.

The network fails politely. yfinance does not raise for a failed ticker: it
logs "['MP', 'SPY']: DNSError('... curl: (6) Could not resolve host ...')" and
answers empty, so each call listens to yfinance's log for the reason. A machine
that cannot reach Yahoo at all (name not resolved, connection refused, no route)
stops the load on the first attempt with that cause, exit 3: no retry could
succeed. A large first batch is preceded by a one-ticker call, so finding that
out takes about a second, not one failing request per ticker. Only what can
succeed is retried (rate limits, timeouts, errors of unknown kind, empty answers
without a reason), for the failed tickers, with exponential backoff
(``backoff * 2**k`` seconds, longer after a rate limit) at most ``retries``
times; a ticker Yahoo answered "no data" for is not asked again. What did
download is cached as it arrives. Tickers still failing are then either left
out, each with its reason in :attr:`PriceData.missing_reasons` and the notes,
or, with ``strict=True``, the load stops with a
:class:`~evstudy.errors.DownloadError` naming them.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evstudy.errors import ConfigError, DownloadError
from evstudy.prices.base import PriceData
from evstudy.prices.cache import (
    CacheEntry,
    CacheWriteError,
    CorruptCacheError,
    PriceCache,
    default_cache_dir,
    normalize_ticker,
)

logger = logging.getLogger(__name__)

_ONE_DAY = dt.timedelta(days=1)
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 1.0
_RATE_LIMIT_FACTOR = 5.0  # Yahoo's rate limits last longer than a dropped connection
_PRICE_FIELDS = ("Adj Close", "Close")  # "Adj Close" only exists when Close is not adjusted
_ANCHOR_RTOL = 1e-6
_PROBE_ABOVE = 8  # a first batch larger than this starts with one ticker alone (an unreachable Yahoo shows in ~1 s)


def _today() -> dt.date:
    """Today's local date (a function so tests can move the clock)."""
    return dt.date.today()


def _pause(seconds: float) -> None:
    """Wait between retries (module level so tests can make it instant)."""
    time.sleep(seconds)


def _is_rate_limit(exc: BaseException | str) -> bool:
    """Did Yahoo refuse us for asking too often (yfinance's YFRateLimitError, or an HTTP 429)?"""
    if not isinstance(exc, str) and type(exc).__name__ == "YFRateLimitError":
        return True
    text = str(exc).lower()
    return "yfratelimiterror" in text or "too many requests" in text or "rate limit" in text or " 429" in text


# How the machine's network refusing us reads in curl_cffi (yfinance >= 0.2.55), requests/urllib3
# (older yfinance) and the OS: (pattern, the cause in plain words). No retry can get past these.
_UNREACHABLE = (
    (re.compile(r"curl: \(6\)|could ?n[o']t resolve host|failed to resolve|name ?resolution|getaddrinfo|"
                r"name or service not known|nodename nor servname|dnserror|gaierror", re.I),
     "the name of Yahoo's server did not resolve (no DNS: this machine looks offline)"),
    (re.compile(r"no route to host|network is unreachable|errno 101|errno 113", re.I),
     "no network route to Yahoo's server"),
    (re.compile(r"connection refused|curl: \(7\)|could ?n[o']t connect to server|errno 111|"
                r"connectionrefusederror", re.I),
     "the connection to Yahoo's server was refused"),
)
# Yahoo answered, and the answer is "nothing": asking again cannot change it.
_ANSWERED_EMPTY = re.compile(
    r"possibly delisted|no price data found|no data found|symbol may be delisted|quote not found|http error 404",
    re.I,
)


def _unreachable_cause(error: BaseException | str) -> str | None:
    """The plain cause if ``error`` says this machine cannot reach Yahoo at all, else None.

    Looks at the exception's type names along its cause chain and its text,
    or at the text yfinance logged for a failed ticker.
    """
    texts = []
    current: BaseException | str | None = error
    while current is not None and len(texts) < 8:
        texts.append(current if isinstance(current, str) else f"{type(current).__name__}: {current}")
        current = None if isinstance(current, str) else (current.__cause__ or current.__context__)
    text = " ".join(texts)
    if re.search(r"timed? ?out|curl: \(28\)", text, re.I) and not re.search(r"curl: \([67]\)", text):
        return None  # a timeout may pass: retried
    return next((cause for pattern, cause in _UNREACHABLE if pattern.search(text)), None)


def _yfinance_failures(messages: Sequence[str]) -> dict[str, str]:
    """Per ticker, the error yfinance logged for it ("['MP', 'SPY']: DNSError(...)" lines)."""
    failures: dict[str, str] = {}
    for message in messages:
        found = re.match(r"\s*\[([^\]]*)\]: (.+)", message, re.S)
        if found is None:
            continue
        error = " ".join(found.group(2).split())
        for name in re.findall(r"'([^']+)'", found.group(1)):
            failures[name.upper()] = error
    return failures


def _describe(exc: BaseException) -> str:
    """``TypeName: message`` on one line, for notes and error messages."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _without_weekend_edges(first: dt.date, last: dt.date) -> tuple[dt.date, dt.date] | None:
    """The range with leading and trailing Saturdays/Sundays removed; None if nothing is left."""
    while first <= last and first.weekday() >= 5:
        first += _ONE_DAY
    while last >= first and last.weekday() >= 5:
        last -= _ONE_DAY
    return (first, last) if first <= last else None


@dataclass(frozen=True)
class _Piece:
    """A range one ticker lacks: ``gap`` becomes covered once ``fetch`` is downloaded."""

    gap: tuple[dt.date, dt.date]
    need: tuple[dt.date, dt.date]
    anchor: pd.Timestamp | None = None

    @property
    def fetch(self) -> tuple[dt.date, dt.date]:
        """``need`` widened to include the anchor day."""
        if self.anchor is None:
            return self.need
        day = self.anchor.date()
        return min(self.need[0], day), max(self.need[1], day)


def _plan(entry: CacheEntry | None, first: dt.date, last: dt.date, *, refresh: bool = False) -> list[_Piece]:
    """What a ticker with cache ``entry`` must download to cover [first, last] (all of it with ``refresh``).

    Coverage stays one interval: a request that does not touch the cached
    range also fetches the days between them, and a hole (left by two runs
    that cached disjoint ranges at once) the request reaches is fetched whole.
    Each piece next to cached closes also asks for the nearest one (the anchor).
    """
    if first > last:
        return []
    if entry is None:
        gaps = [(first, last)]
    elif refresh:
        gaps = [(min(first, entry.last + _ONE_DAY), max(last, entry.first - _ONE_DAY))]
    else:
        gaps = [hole for hole in entry.holes if hole[0] <= last and hole[1] >= first]
        if first < entry.first:
            gaps.insert(0, (first, entry.first - _ONE_DAY))
        if last > entry.last:
            gaps.append((entry.last + _ONE_DAY, last))
    pieces = []
    for gap in gaps:
        need = _without_weekend_edges(*gap)
        if need is None:
            continue
        pieces.append(_Piece(gap, need, _anchor(entry, gap)))
    return pieces


def _anchor(entry: CacheEntry | None, gap: tuple[dt.date, dt.date]) -> pd.Timestamp | None:
    """The cached close nearest ``gap``: the last one before it, else the first one after it."""
    if entry is None or not len(entry.closes):
        return None
    days = entry.closes.index
    before = days.searchsorted(pd.Timestamp(gap[0]))
    if before > 0:
        return days[before - 1]
    after = days.searchsorted(pd.Timestamp(gap[1]), side="right")
    return days[after] if after < len(days) else None


def _no_closes() -> pd.Series:
    return pd.Series([], index=pd.DatetimeIndex([], dtype="datetime64[ns]", name="date"), dtype=np.float64)


def _column(frame: pd.DataFrame, key: object) -> pd.Series | None:
    column = frame.get(key)
    return column if isinstance(column, pd.Series) else None


def _pick(candidates: list[pd.Series | None]) -> pd.Series | None:
    """The first candidate price column holding any value (failed tickers are all NaN)."""
    present = [c for c in candidates if c is not None]
    return next((c for c in present if c.notna().any()), present[0] if present else None)


def _closes_by_ticker(
    frame: pd.DataFrame | None, tickers: Sequence[str], first: dt.date, last: dt.date
) -> dict[str, pd.Series]:
    """Adjusted closes per ticker from whatever shape ``yf.download`` returned.

    Handles (Price, Ticker) and (Ticker, Price) MultiIndex columns, flat
    columns for one ticker, tz-aware or naive indexes, and empty frames.
    """
    if frame is None or frame.empty:
        return {}
    if not isinstance(frame, pd.DataFrame):
        raise DownloadError(f"yfinance returned a {type(frame).__name__}, expected a DataFrame")
    try:
        index = pd.DatetimeIndex(frame.index)
    except (TypeError, ValueError) as exc:
        raise DownloadError(f"yfinance returned an index that is not dates: {exc}") from exc
    if index.tz is not None:
        # Daily bars sit at the exchange's midnight; shown in another US zone they land an
        # hour or three either side of it, so the nearest midnight is the trading day.
        index = index.tz_localize(None).round("D")
    index = pd.DatetimeIndex(index.normalize().to_numpy(dtype="datetime64[ns]"), name="date")

    columns = frame.columns
    picked: dict[str, pd.Series | None] = {}
    if isinstance(columns, pd.MultiIndex) and columns.nlevels == 2:
        levels = [set(columns.get_level_values(level)) for level in (0, 1)]
        price_level = next((lvl for lvl in (0, 1) if levels[lvl] & set(_PRICE_FIELDS)), None)
        if price_level is None:
            raise DownloadError(f"yfinance returned no Close column (columns: {list(columns)[:10]})")
        for ticker in levels[1 - price_level]:
            keys = [(f, ticker) if price_level == 0 else (ticker, f) for f in _PRICE_FIELDS]
            picked[str(ticker).upper()] = _pick([_column(frame, key) for key in keys])
    elif not isinstance(columns, pd.MultiIndex) and len(tickers) == 1:
        picked[tickers[0]] = _pick([_column(frame, field) for field in _PRICE_FIELDS])
        if picked[tickers[0]] is None:
            raise DownloadError(f"yfinance returned no Close column (columns: {list(columns)[:10]})")
    else:
        raise DownloadError(f"unexpected yfinance columns for {list(tickers)}: {list(columns)[:10]}")

    low, high = pd.Timestamp(first), pd.Timestamp(last)
    closes = {}
    for ticker in tickers:
        column = picked.get(ticker)
        if column is None:
            continue
        series = pd.Series(pd.to_numeric(column, errors="coerce").to_numpy(np.float64), index=index)
        series = series[(series.index >= low) & (series.index <= high)].dropna()
        series = series[~series.index.duplicated(keep="last")].sort_index()
        if len(series):
            closes[ticker] = series.rename(ticker)
    return closes


def _basis_moved(entry: CacheEntry, fresh: pd.Series, anchor: pd.Timestamp) -> bool:
    """Does Yahoo now report another close for a cached day (a split or dividend since)?"""
    if anchor not in fresh.index or anchor not in entry.closes.index:
        return False
    old, new = entry.closes[anchor], fresh[anchor]
    return bool(np.isfinite(old) and np.isfinite(new) and not np.isclose(new, old, rtol=_ANCHOR_RTOL, atol=0))


class YahooSource:
    """Adjusted closes from Yahoo Finance, cached under ``<cache_dir>/yahoo/``.

    ``retries`` bounds the extra attempts per failed call, waiting ``backoff``
    seconds, then twice that, and so on (five times longer after a rate
    limit), through ``sleep`` (injectable so tests do not wait). With
    ``strict``, any ticker still failing stops the load; otherwise it is
    reported in ``missing``/``missing_reasons`` or the notes.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike | None = None,
        offline: bool = False,
        refresh: bool = False,
        progress: bool = False,
        *,
        strict: bool = False,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF_S,
        sleep: Callable[[float], None] | None = None,
    ):
        if retries < 0 or backoff < 0:
            raise ConfigError(f"retries ({retries}) and backoff ({backoff}) must not be negative")
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.offline = offline
        self.refresh = refresh
        self.progress = progress
        self.strict = strict
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep if sleep is not None else _pause
        self._cache = PriceCache(self.cache_dir)

    def load(self, tickers: Sequence[str], start: dt.date, end: dt.date) -> PriceData:
        """Closes of ``tickers`` for [start, end], from the cache where it covers them."""
        wanted = list(dict.fromkeys(normalize_ticker(t) for t in tickers))
        if start > end:
            raise ConfigError(f"start date {start} is after end date {end}")
        self._cache.check_folder()
        run = _Run(self, wanted, start, end)
        return run.result()

    def _download_closes(
        self, tickers: list[str], first: dt.date, last: dt.date
    ) -> tuple[dict[str, pd.Series], dict[str, str]]:
        """One batched yfinance call for [first, last]: closes per ticker that returned any,
        and the error yfinance logged for each ticker that failed (where it logged one)."""
        import yfinance  # imported here: file-only runs never pay for it

        logged: list[str] = []
        try:
            with _quiet_yfinance(logged):
                frame = yfinance.download(
                    tickers,
                    start=first.isoformat(),
                    end=(last + _ONE_DAY).isoformat(),  # yfinance's end is exclusive
                    auto_adjust=True,
                    actions=False,
                    progress=self.progress,
                    group_by="column",
                    threads=True,
                    multi_level_index=True,
                )
        except Exception as exc:  # yfinance surfaces requests/curl/JSON/its own errors alike
            raise DownloadError(
                f"yfinance failed downloading {_some(tickers)} for {first}..{last}: {exc!r}"
            ) from exc
        return _closes_by_ticker(frame, tickers, first, last), _yfinance_failures(logged)


def _some(names: Sequence[str], shown: int = 8) -> str:
    """A ticker list short enough for a one-line message: the first few, then how many more."""
    names = list(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


class _Collect(logging.Handler):
    """Keeps the messages of the log records it receives."""

    def __init__(self, into: list[str]):
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


@contextmanager
def _quiet_yfinance(logged: list[str]) -> Iterator[None]:
    """Collect yfinance's error log into ``logged`` instead of printing it: evstudy reports every failure itself.

    yfinance logs each failed ticker and a summary "[tickers]: error" per cause
    at ERROR level (the only place it says *why*), and its code trips pandas
    deprecation warnings; neither is printed for the user. The filters are
    process-wide, so they also cover yfinance's download threads.
    """
    yf_logger = logging.getLogger("yfinance")
    level, propagate = yf_logger.level, yf_logger.propagate
    handler = _Collect(logged)
    yf_logger.setLevel(logging.ERROR)
    yf_logger.propagate = False
    yf_logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        yf_logger.removeHandler(handler)
        yf_logger.setLevel(level)
        yf_logger.propagate = propagate


class _Run:
    """One load: cache reads, the download plan, cache writes and the notes about them."""

    def __init__(self, source: YahooSource, wanted: list[str], start: dt.date, end: dt.date):
        self.source, self.wanted, self.start, self.end = source, wanted, start, end
        self.cache = source._cache
        self.yesterday = _today() - _ONE_DAY
        self.fetch_last = min(end, _today())  # nothing to ask for beyond today
        self.notes: list[str] = []
        self.calls = 0
        self.entries: dict[str, CacheEntry | None] = {}
        self.corrupted: list[str] = []
        self.fresh: dict[str, list[pd.Series]] = {}
        self.downloaded: list[str] = []
        self.failures: dict[str, str] = {}  # ticker -> why its last download failed after every retry
        self.last_error: BaseException | None = None
        self.reached = False  # a call has returned closes: Yahoo is reachable

    def result(self) -> PriceData:
        self._read_cache()  # with refresh too: what lies outside the request is kept, and anchors the new closes
        plans = {
            t: _plan(self.entries.get(t), self.start, self.fetch_last, refresh=self.source.refresh) for t in self.wanted
        }
        plans = {t: pieces for t, pieces in plans.items() if pieces}
        if self.source.offline:
            self._check_offline(plans)
        else:
            stale = self._fetch(plans)
            self._refetch_whole(stale)
        return self._assemble()

    def _read_cache(self) -> None:
        for ticker in self.wanted:
            try:
                self.entries[ticker] = self.cache.read(ticker)
            except CorruptCacheError as exc:
                path = self.cache.path(ticker)
                message = f"cache file of {ticker} at {path} is unreadable ({exc}); treated as absent"
                warnings.warn(message, stacklevel=4)
                self.notes.append(message)
                self.corrupted.append(ticker)

    def _check_offline(self, plans: dict[str, list[_Piece]]) -> None:
        """Offline, the cache must cover every past day asked for (today's bar may be absent)."""
        uncovered = [t for t, pieces in plans.items() if any(p.need[0] <= self.yesterday for p in pieces)]
        if not uncovered:
            return
        broken = [t for t in uncovered if t in self.corrupted]
        detail = f" (cache files corrupted: {', '.join(broken)})" if broken else ""
        raise DownloadError(
            f"offline: the cache in {self.cache.dir} does not cover {self.start}..{self.end} for "
            f"{_some(uncovered)}{detail}; fill it where there is network with `evstudy fetch CONFIG` (everything "
            f"the study needs) or `evstudy fetch TICKERS --start --end`, or drop --offline"
        )

    def _download(
        self, jobs: list[tuple[str, tuple[dt.date, dt.date], _Piece]]
    ) -> Iterator[tuple[str, _Piece, pd.Series]]:
        """Download each (ticker, range) job, one batched call per distinct range.

        Yields each job's closes as soon as the call that got them returns
        (a failed job, with no closes, after its last retry), so what did
        download gets cached even if a retry or a later call fails.
        """
        groups: dict[tuple[dt.date, dt.date], dict[str, _Piece]] = {}
        for ticker, span, job in jobs:
            groups.setdefault(span, {})[ticker] = job  # _plan gives a ticker one job per range
        for (first, last), members in groups.items():
            self.downloaded.extend(t for t in members if t not in self.downloaded)
            failed: dict[str, str] = {}
            for ticker, closes, reason in self._download_with_retries(list(members), first, last):
                if reason:
                    failed[ticker] = reason
                    self.failures[ticker] = reason
                yield ticker, members[ticker], closes
            for reason, names in _by_reason(failed).items():
                message = f"Yahoo gave no prices for {_some(names)} in {first}..{last} ({reason}); not cached"
                warnings.warn(message, stacklevel=5)
                self.notes.append(message)

    def _download_with_retries(
        self, tickers: list[str], first: dt.date, last: dt.date
    ) -> Iterator[tuple[str, pd.Series, str]]:
        """(ticker, closes, "") for [first, last] as each call returns them, retrying the tickers that can succeed.

        A call that raises fails all its tickers; a call that returns leaves
        out the tickers Yahoo answered empty, with the reason yfinance logged
        if any. A cause no retry can pass (this machine cannot reach Yahoo)
        stops the load at once with a :class:`DownloadError`; an answer "no
        data for this symbol" is final for that ticker; the rest (rate limits,
        timeouts, empty answers without a reason: rate-limited inside a batch
        and unknown look alike) is retried: attempt k + 1 waits
        ``backoff * 2**(k-1)`` seconds, times five after a rate limit. Tickers
        still without closes come last, as (ticker, no closes, the last reason).
        """
        source = self.source
        pending = list(tickers)
        reasons: dict[str, str] = {}
        final: list[str] = []
        tries = dict.fromkeys(pending, 0)
        rate_limited = False
        if not self.reached and len(pending) > _PROBE_ABOVE:
            # A first large batch: one ticker first, so an unreachable Yahoo is known in a second,
            # not after one failing request per ticker (about 0.2 s each, 92 tickers: 20 s).
            tries[pending[0]] += 1
            for ticker, closes, _ in self._attempt(pending[:1], first, last, reasons, group=tickers):
                if closes is not None:
                    pending.remove(ticker)
                    yield ticker, closes, ""
        asked: list[str] = []  # the tickers of the previous attempt
        for attempt in range(source.retries + 1):
            if attempt:
                delay = source.backoff * 2 ** (attempt - 1) * (_RATE_LIMIT_FACTOR if rate_limited else 1.0)
                named = f"the same {len(pending)} tickers" if attempt > 1 and pending == asked else _some(pending)
                logger.warning(
                    "Yahoo: retry %d of %d in %g s for %s (%s)",
                    attempt, source.retries, delay, named, reasons[pending[0]],
                )
                source.sleep(delay)
            asked = list(pending)
            tries.update({t: tries[t] + 1 for t in asked})
            rate_limited = False
            for ticker, closes, failure in self._attempt(asked, first, last, reasons, group=tickers):
                if closes is not None:
                    pending.remove(ticker)
                    yield ticker, closes, ""
                elif failure == "answered":
                    pending.remove(ticker)
                    final.append(ticker)
                elif failure == "rate_limit":
                    rate_limited = True
            if not pending:
                break
        for ticker in final + pending:
            yield ticker, _no_closes(), f"{reasons[ticker]}, after {tries[ticker]} attempt(s)"

    def _attempt(
        self, tickers: list[str], first: dt.date, last: dt.date, reasons: dict[str, str], *, group: list[str]
    ) -> Iterator[tuple[str, pd.Series | None, str]]:
        """One yfinance call: (ticker, closes, "") for each ticker that came back, (ticker, None, kind)
        for each that failed, kind one of "answered" (final), "rate_limit" or "retry"; ``reasons`` is
        updated with why each failed. Raises :class:`DownloadError`, naming the whole ``group`` asked
        for, if Yahoo is unreachable from here."""
        self.calls += 1
        try:
            got, logged = self.source._download_closes(tickers, first, last)
        except DownloadError as exc:
            cause = exc.__cause__ or exc
            self.last_error = cause
            self._stop_if_unreachable(cause, group, first, last)
            limited = _is_rate_limit(cause)
            reason = ("rate-limited by Yahoo: " if limited else "download failed: ") + _describe(cause)
            for ticker in tickers:
                reasons[ticker] = reason
                yield ticker, None, "rate_limit" if limited else "retry"
            return
        if got:
            self.reached = True
        failed = [t for t in tickers if t not in got]
        if failed and not got and all(t in logged for t in failed):
            self._stop_if_unreachable(logged[failed[0]], group, first, last)
        for ticker in tickers:
            if ticker in got:
                yield ticker, got[ticker], ""
                continue
            error = logged.get(ticker)
            if error is None:
                reasons[ticker] = "Yahoo answered empty (unknown or delisted ticker, no trading then, or rate-limited)"
                yield ticker, None, "retry"
            elif _is_rate_limit(error):
                reasons[ticker] = f"rate-limited by Yahoo: {error}"
                yield ticker, None, "rate_limit"
            elif _ANSWERED_EMPTY.search(error):
                reasons[ticker] = f"Yahoo has no data: {error}"
                yield ticker, None, "answered"
            else:
                reasons[ticker] = f"download failed: {error}"
                yield ticker, None, "retry"

    def _stop_if_unreachable(
        self, error: BaseException | str, tickers: list[str], first: dt.date, last: dt.date
    ) -> None:
        """Raise at once, with the cause and the way out, if ``error`` says Yahoo cannot be reached from here."""
        cause = _unreachable_cause(error)
        if cause is None:
            return
        said = _describe(error) if not isinstance(error, str) else " ".join(error.split())
        said = re.sub(r"\.? ?See https://curl\.se/\S+ first for more details\.?", "", said)  # curl's boilerplate
        said = said if len(said) <= 200 else said[:197] + "..."
        raise DownloadError(
            f"cannot reach Yahoo Finance: {cause} ({said}); nothing was retried, as no retry could succeed. "
            f"Without network, read prices from a file with --prices PATH (a folder of TICKER.csv, or a long "
            f"or wide CSV/Parquet), or fill the cache where there is network with `evstudy fetch CONFIG` and "
            f"run with --offline. Asked for {_some(tickers)} in {first}..{last}"
        ) from (error if isinstance(error, BaseException) else None)

    def _fetch(self, plans: dict[str, list[_Piece]]) -> list[str]:
        """Download the planned pieces, cache them, and return tickers whose basis moved.

        Only a ticker that returned closes gets its range marked covered: Yahoo
        rate-limits single tickers inside a batch, so an empty answer proves
        nothing. A pre-IPO gap is still covered once, by the call that returns
        the first closes after it; every top-up includes a cached trading day,
        so a ticker Yahoo knows never comes back empty from one.
        """
        stale: list[str] = []
        jobs = [(ticker, piece.fetch, piece) for ticker, pieces in plans.items() for piece in pieces]
        for ticker, piece, series in self._download(jobs):
            if series.empty:
                continue
            self.fresh.setdefault(ticker, []).append(series)
            entry = self.entries.get(ticker)
            if entry is not None and piece.anchor is not None and _basis_moved(entry, series, piece.anchor):
                if ticker not in stale:
                    stale.append(ticker)
                continue
            self._store(ticker, series, piece.gap, merge=True)
        return stale

    def _refetch_whole(self, stale: list[str]) -> None:
        """Replace the cached history of tickers whose adjusted closes changed since caching."""
        jobs = []
        for ticker in stale:
            entry = self.entries[ticker]
            span = (min(self.start, entry.first), max(self.fetch_last, entry.last))
            jobs.append((ticker, _without_weekend_edges(*span) or span, _Piece(span, span)))
        for ticker, piece, series in self._download(jobs):
            if series.empty:
                self.notes.append(
                    f"{ticker}: Yahoo's adjusted closes changed since they were cached (split or "
                    "dividend) but the full history could not be refetched; returns across the "
                    "cached/new boundary may be wrong: rerun with --refresh"
                )
                continue
            self.notes.append(
                f"{ticker}: adjusted closes changed since cached (split or dividend); history refetched"
            )
            self.entries[ticker] = None
            self.fresh[ticker] = [series]
            self._store(ticker, series, piece.gap, merge=False)

    def _store(self, ticker: str, series: pd.Series, gap: tuple[dt.date, dt.date], *, merge: bool) -> None:
        """Cache ``series`` as covering ``gap`` up to yesterday; a failed write is only noted."""
        last = min(gap[1], self.yesterday)
        if last < gap[0]:
            return
        try:
            self.cache.write(ticker, CacheEntry(series, gap[0], last), merge=merge)
        except CacheWriteError as exc:
            warnings.warn(str(exc), stacklevel=5)
            self.notes.append(f"{ticker}: not cached: {exc}")

    def _assemble(self) -> PriceData:
        cache_hits = [t for t in self.wanted if t not in self.downloaded]
        low, high = pd.Timestamp(self.start), pd.Timestamp(self.end)
        columns: dict[str, pd.Series] = {}
        missing = []
        for ticker in self.wanted:
            entry = self.entries.get(ticker)
            parts = ([entry.closes] if entry is not None else []) + self.fresh.get(ticker, [])
            series = pd.concat(parts) if parts else _no_closes()
            series = series[~series.index.duplicated(keep="last")].sort_index()
            series = series[(series.index >= low) & (series.index <= high)]
            if series.empty:
                missing.append(ticker)
            else:
                columns[ticker] = series.astype(np.float64)
        if self.wanted and not columns:
            by_reason = _by_reason(self.failures)
            if len(by_reason) == 1:
                why = f": {next(iter(by_reason))}"
            else:
                why = " (" + "; ".join(f"{_some(names)}: {reason}" for reason, names in by_reason.items()) + ")"
            named = f"any of the {len(missing)} tickers ({_some(missing)})" if len(missing) > 1 else ", ".join(missing)
            raise DownloadError(
                f"no prices from Yahoo for {named} in {self.start}..{self.end}{why if by_reason else ''}; the network may be "
                "unreachable (or Yahoo rate-limited us), or Yahoo does not know these tickers; retry later, "
                "or use --prices FILE"
            ) from self.last_error
        if self.source.strict and self.failures:
            listed = "; ".join(f"{_some(names)}: {reason}" for reason, names in _by_reason(self.failures).items())
            raise DownloadError(
                f"--strict: Yahoo could not deliver {_some(list(self.failures))} for {self.start}..{self.end} "
                f"({listed}); what did download is cached: rerun later, or drop --strict to proceed without them"
            ) from self.last_error
        reasons = {
            ticker: self.failures.get(ticker, "Yahoo has no prices in the range (unknown, delisted, or not trading then)")
            for ticker in missing
        }
        if missing:
            self.notes.append(
                f"no Yahoo prices for {_some(missing)} in {self.start}..{self.end} "
                "(unknown to Yahoo, delisted, not trading then, or the download failed)"
            )
        partial = [t for t in self.failures if t not in missing]
        if partial:
            self.notes.append(
                f"Yahoo downloads failed for {_some(partial)}: served what the cache holds, which does "
                f"not cover all of {self.start}..{self.end}"
            )
        topped_up = [t for t in self.downloaded if self.entries.get(t) is not None]
        self.notes.insert(
            0,
            f"Yahoo: {len(cache_hits)} ticker(s) from cache, {len(self.downloaded)} downloaded "
            f"({len(topped_up)} of them topped up) in {self.calls} call(s); cache {self.cache.dir}",
        )
        if columns:
            closes = pd.concat(columns, axis=1, sort=True)
        else:
            closes = pd.DataFrame(index=pd.DatetimeIndex([], dtype="datetime64[ns]"))
        closes.index = pd.DatetimeIndex(closes.index.to_numpy(dtype="datetime64[ns]"), name="date")
        closes.columns = list(closes.columns)
        return PriceData(
            closes=closes.astype(np.float64),
            source="yahoo",
            location=str(self.source.cache_dir),
            missing=tuple(missing),
            notes=tuple(self.notes),
            details={
                "cache_hits": cache_hits,
                "downloaded": list(self.downloaded),
                "failed": dict(self.failures),
            },
            missing_reasons=reasons,
        )


def _by_reason(reasons: dict[str, str]) -> dict[str, list[str]]:
    """Tickers grouped by their reason, so one message covers a whole failed batch."""
    grouped: dict[str, list[str]] = {}
    for ticker, reason in reasons.items():
        grouped.setdefault(reason, []).append(ticker)
    return grouped
