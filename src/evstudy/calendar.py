"""Event time: from "when the news came out" to day 0 on the NYSE calendar.

Day 0 is the first NYSE session in which the market could react. News before
the open (or on a non-trading day) is priced that session or the next one;
news after the close is priced the next session. Holidays and early closes
come from ``exchange_calendars``, not a hand-written list.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evstudy.config import EventSpec
from evstudy.errors import CalendarError

if TYPE_CHECKING:
    import exchange_calendars as xcals
    import pandas as pd

# pandas is imported where a Timestamp is made (the NYSE calendar's path): a dated event placed on
# TradingDays, and day_zero_row, work on numpy datetime64 days, so the whole-market scan runs without pandas.

NEW_YORK = "America/New_York"
NYSE_NAME = "the NYSE calendar"
SESSIONS_FILE = Path("calendar") / "xnys-sessions.json"
"""The NYSE session list, kept in the evstudy cache folder (:func:`nyse_sessions`)."""
SESSIONS_MAX_AGE_DAYS = 30
"""A kept list older than this is rebuilt: the calendar runs about a year past the day it was built."""
_TIMING_WORDS = {
    "before_open": "before the open",
    "during": "during the session",
    "after_close": "after the close",
}


@lru_cache(maxsize=1)
def nyse_calendar() -> xcals.ExchangeCalendar:
    """The NYSE (XNYS) calendar, built once per process.

    exchange_calendars trips a pandas 3 deprecation while building it; that is
    the library's business, not the user's, so it is silenced here only.
    """
    import exchange_calendars as xcals  # ~0.2 s with the build: only when a calendar is needed

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Series\.values returning an ndarray", module="pandas")
        return xcals.get_calendar("XNYS", start="2000-01-01")


def _calendar_key() -> str:
    """Which exchange_calendars made a session list: its package and XNYS rules files (path, size, mtime),
    found without importing it (an upgrade rewrites them)."""
    spec = importlib.util.find_spec("exchange_calendars")
    if spec is None or spec.origin is None:
        return ""
    files = [Path(spec.origin), Path(spec.origin).with_name("exchange_calendar_xnys.py")]
    return ";".join(f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files if f.exists())


@lru_cache(maxsize=1)
def nyse_sessions() -> TradingDays:
    """The NYSE sessions of :func:`nyse_calendar`, all an event given as a date needs, built once.

    Importing exchange_calendars and building the calendar (pandas holiday
    rules since 2000) costs ~0.25 CPU s of every study; the session list it
    gives is kept in the evstudy cache (:data:`SESSIONS_FILE`, ~50 kB) with
    the exchange_calendars files it came from and the day it was built, and
    read from there (~2 ms) while both still match and it is at most
    :data:`SESSIONS_MAX_AGE_DAYS` old. Any problem with the file: the calendar
    is built, as without it.
    """
    from evstudy.prices.cache import default_cache_dir

    key, today = _calendar_key(), dt.date.today()
    path = default_cache_dir() / SESSIONS_FILE
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if key and kept["key"] == key and 0 <= (today - dt.date.fromisoformat(kept["built"])).days <= SESSIONS_MAX_AGE_DAYS:
            return TradingDays(np.asarray(kept["sessions"], dtype="datetime64[D]").astype("datetime64[ns]"), NYSE_NAME)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    sessions = nyse_calendar().sessions
    if key:
        _keep(path, {"key": key, "built": today.isoformat(),
                     "sessions": sessions.values.astype("datetime64[D]").astype(np.int64).tolist()})
    return TradingDays(sessions, NYSE_NAME)


def _keep(path: Path, content: dict[str, object]) -> None:
    """Write ``content`` to ``path`` through a temporary file renamed into place; a failure only costs the
    next run the calendar build."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(content, out)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        pass


class TradingDays:
    """A list of trading days standing in for the NYSE calendar where only "is it a session?" matters.

    A caller that already holds the market's trading days (a scan reads the
    benchmark's) can place a dated event on them without building the NYSE
    calendar. Same interface as the few ExchangeCalendar methods used below;
    days are midnight ``datetime.datetime`` values (a pandas Timestamp compares
    equal), kept as numpy datetime64 so that no pandas is needed.
    """

    def __init__(self, days: Any, name: str = "the trading days given"):
        self.sessions = np.unique(np.asarray(days, dtype="datetime64[D]"))
        self.name = name
        if not len(self.sessions):
            raise CalendarError(f"{name} are empty: no day to place day 0 on")

    def _at(self, position: int) -> dt.datetime:
        return dt.datetime.combine(self.sessions[position].item(), dt.time())

    @property
    def first_session(self) -> dt.datetime:
        return self._at(0)

    @property
    def last_session(self) -> dt.datetime:
        return self._at(-1)

    def is_session(self, day: dt.date) -> bool:
        position = int(np.searchsorted(self.sessions, np.datetime64(day, "D")))
        return position < len(self.sessions) and self.sessions[position] == np.datetime64(day, "D")

    def next_session(self, day: dt.date) -> dt.datetime:
        """The first trading day after ``day`` (callers check ``day`` is before the last one)."""
        return self._at(int(np.searchsorted(self.sessions, np.datetime64(day, "D"), side="right")))

    def date_to_session(self, day: dt.date, direction: str = "next") -> dt.datetime:
        """``day`` if it is a trading day, else the next one (only ``direction="next"`` is used here)."""
        return self._at(int(np.searchsorted(self.sessions, np.datetime64(day, "D"), side="left")))


@dataclass(frozen=True)
class DayZero:
    """Where an event lands on the trading calendar, and the sentence that says so.

    ``day0`` is a pandas Timestamp from the NYSE calendar, a midnight datetime from TradingDays.
    """

    event_id: str
    announced: str
    timing: str
    day0: dt.datetime
    mapping: str


@dataclass(frozen=True)
class EventTimeline:
    """One event placed on the calendar: day 0, its mapping sentence, the windows' dates (midnight datetimes
    or pandas Timestamps)."""

    event_id: str
    label: str
    announced: str
    timing: str
    day0: dt.datetime
    mapping: str
    estimation_start: dt.datetime | None
    estimation_end: dt.datetime | None
    span_start: dt.datetime
    span_end: dt.datetime
    confounders: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        def day(value: dt.datetime | None) -> str | None:
            return value.date().isoformat() if value is not None else None

        return {
            "event": self.event_id,
            "label": self.label,
            "announced": self.announced,
            "timing": self.timing,
            "day0": day(self.day0),
            "mapping": self.mapping,
            "estimation_start": day(self.estimation_start),
            "estimation_end": day(self.estimation_end),
            "event_window_start": day(self.span_start),
            "event_window_end": day(self.span_end),
            "confounders": list(self.confounders),
        }


def _fmt(day: dt.date) -> str:
    return f"{day:%a} {day:%Y-%m-%d}"


def _name(cal: xcals.ExchangeCalendar | TradingDays) -> str:
    return cal.name if isinstance(cal, TradingDays) else NYSE_NAME


def _next_session(cal: xcals.ExchangeCalendar | TradingDays, day: dt.datetime, event_id: str) -> dt.datetime:
    if day >= cal.last_session:
        raise CalendarError(
            f"event {event_id!r}: day 0 after {day.date()} is beyond {_name(cal)} (last session "
            f"{cal.last_session.date()})"
        )
    return cal.next_session(day)


def _check_range(cal: xcals.ExchangeCalendar | TradingDays, day: dt.datetime, event_id: str) -> None:
    if not cal.first_session <= day <= cal.last_session:
        raise CalendarError(
            f"event {event_id!r} on {day.date()} is outside {_name(cal)} "
            f"({cal.first_session.date()} to {cal.last_session.date()})"
        )


def locate_day_zero(event: EventSpec, trading_days: TradingDays | None = None) -> DayZero:
    """Map an event's date and timing (or zoned timestamp) to its day 0 session.

    ``trading_days``, if given, places an event given as a date (with or
    without timing) on those days instead of the NYSE calendar, which then
    need not be built; a zoned timestamp always uses the NYSE calendar, for
    the session's open and close times (early closes included). Without
    ``trading_days`` a dated event is placed on the NYSE sessions kept by
    :func:`nyse_sessions` (the same days, no calendar build), its day 0 a
    pandas Timestamp as the calendar gives it.
    """
    if event.timestamp is None and trading_days is None:
        import pandas  # day 0 as the NYSE calendar gives it: a Timestamp

        zero = locate_day_zero(event, nyse_sessions())
        return DayZero(zero.event_id, zero.announced, zero.timing, pandas.Timestamp(zero.day0), zero.mapping)
    cal = trading_days if trading_days is not None and event.timestamp is None else nyse_calendar()
    if event.timestamp is not None:
        import pandas as pd

        when = pd.Timestamp(event.timestamp).tz_convert(NEW_YORK)
        local_day = pd.Timestamp(when.date())
        _check_range(cal, local_day, event.id)
        if cal.is_session(local_day):
            opens = cal.session_open(local_day).tz_convert(NEW_YORK)
            closes = cal.session_close(local_day).tz_convert(NEW_YORK)
            if when < opens:
                timing, day0 = "before_open", local_day
            elif when < closes:
                timing, day0 = "during", local_day
            else:
                timing, day0 = "after_close", _next_session(cal, local_day, event.id)
        else:
            timing, day0 = "non-trading day", cal.date_to_session(local_day, direction="next")
        words = {"non-trading day": "on a non-trading day"}.get(timing, _TIMING_WORDS.get(timing, timing))
        announced = f"{when:%a %Y-%m-%d %H:%M} New York time"
        mapping = f"announced {announced} ({words}) → day 0 {_fmt(day0)}"
        return DayZero(event.id, announced, timing, day0, mapping)

    if isinstance(cal, TradingDays):
        day = dt.datetime.combine(event.date, dt.time())
    else:
        import pandas as pd

        day = pd.Timestamp(event.date)
    _check_range(cal, day, event.id)
    timing = event.timing or "before_open"
    assumed = "" if event.timing else " (timing not stated: assumed before the open)"
    if not cal.is_session(day):
        day0 = cal.date_to_session(day, direction="next")
        reason = "a non-trading day"
        mapping = f"announced {_fmt(day)}, {reason}{assumed} → day 0 {_fmt(day0)}"
    elif timing == "after_close":
        day0 = _next_session(cal, day, event.id)
        mapping = f"announced {_fmt(day)} after the close → day 0 {_fmt(day0)}"
    else:
        day0 = day
        mapping = f"announced {_fmt(day)} {_TIMING_WORDS[timing]}{assumed} → day 0 {_fmt(day0)}"
    return DayZero(event.id, _fmt(day), timing, day0, mapping)


def session_offset(day: dt.date, offset: int) -> dt.datetime:
    """The NYSE session ``offset`` sessions from ``day`` (a session counts from itself, any other day from the
    next session), clipped to the calendar's range, as a midnight datetime (a pandas Timestamp compares equal)."""
    sessions = np.asarray(nyse_sessions().sessions, dtype="datetime64[D]")
    position = int(np.searchsorted(sessions, np.datetime64(day, "D")))
    position = min(max(position + offset, 0), len(sessions) - 1)
    return sessions[position].astype("datetime64[us]").item()


def day_zero_row(
    days: pd.DatetimeIndex | np.ndarray,
    day0: dt.datetime,
    *,
    span_start: int,
    span_end: int,
    estimation_end: int,
    who: str,
    benchmark: str,
) -> int:
    """The row of ``day0`` in the benchmark's trading days, checked so every window fits the data.

    ``who`` names the event in messages (``event 'jpm-sri'`` or ``--event
    2025-10-13``). Day 0 outside the data, a benchmark without a close on day
    0, or event windows running past either end are a CalendarError; an
    estimation window ending before the data starts is an InsufficientDataError.
    """
    from evstudy.errors import InsufficientDataError

    dates = np.asarray(days, dtype="datetime64[D]")  # the study's DatetimeIndex, or the scan's datetime64 days
    zero = np.datetime64(day0, "D")
    first, last = dates[0].item(), dates[-1].item()
    if zero > dates[-1]:
        raise CalendarError(
            f"{who}: day 0 {zero.item()} is after the last close of the benchmark {benchmark} in the price data "
            f"({last}); choose an event on or before {last}, or load newer data"
        )
    if zero < dates[0]:
        raise CalendarError(
            f"{who}: day 0 {zero.item()} is before the first close of the benchmark {benchmark} in the price data "
            f"loaded ({first}); choose a later event, or load older data"
        )
    row = int(np.searchsorted(dates, zero))
    if dates[row] != zero:
        row = -1
    if row < 0:
        raise CalendarError(
            f"{who}: the benchmark {benchmark} has no close on day 0 {zero.item()}; "
            f"check the benchmark's data or the event date"
        )
    if row + span_end >= len(days):
        raise CalendarError(
            f"{who}: the event window runs to day {span_end:+d} but the data ends {last}, "
            f"{len(days) - 1 - row} trading day{'' if len(days) - 1 - row == 1 else 's'} after day 0 {zero.item()}; "
            "shorten the windows or load more data"
        )
    if row + span_start < 1:
        raise CalendarError(
            f"{who}: the event window starts at day {span_start:+d} but the data starts {first}, "
            f"only {row} trading day{'' if row == 1 else 's'} before day 0 {zero.item()}"
        )
    if row + estimation_end < 1:
        raise InsufficientDataError(
            f"{who}: the estimation window ends before the data starts ({first}); "
            f"every ticker would have 0 estimation returns"
        )
    return row
