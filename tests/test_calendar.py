"""Day 0 on the NYSE calendar: timings, weekends, holidays, early closes, time zones."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from evstudy.calendar import locate_day_zero, nyse_calendar, session_offset
from evstudy.config import EventSpec, parse_event
from evstudy.errors import CalendarError


def day0(text: str) -> pd.Timestamp:
    return locate_day_zero(parse_event(text)).day0


def ts(day: str) -> pd.Timestamp:
    return pd.Timestamp(day)


# --------------------------------------------------------------------------- date + timing


@pytest.mark.parametrize("timing", ["before_open", "during"])
def test_news_before_open_or_during_a_session_is_that_session(timing):
    zero = locate_day_zero(parse_event(f"2025-10-13:{timing}"))
    assert zero.day0 == ts("2025-10-13")
    assert zero.timing == timing


def test_day0_is_a_naive_midnight_timestamp():
    zero = locate_day_zero(parse_event("2025-10-13"))
    assert isinstance(zero.day0, pd.Timestamp)
    assert zero.day0.tz is None and zero.day0 == zero.day0.normalize()


def test_after_close_is_the_next_session_and_says_so():
    zero = locate_day_zero(parse_event("2025-09-30:after_close"))
    assert zero.day0 == ts("2025-10-01")
    assert zero.timing == "after_close"
    assert zero.mapping == "announced Tue 2025-09-30 after the close → day 0 Wed 2025-10-01"


def test_unstated_timing_is_assumed_before_the_open_and_the_mapping_says_so():
    zero = locate_day_zero(parse_event("2025-10-13"))
    assert zero.day0 == ts("2025-10-13")
    assert "timing not stated: assumed before the open" in zero.mapping
    assert zero.mapping.endswith("→ day 0 Mon 2025-10-13")


@pytest.mark.parametrize("timing", ["", ":before_open", ":after_close"])
def test_saturday_maps_to_monday(timing):
    zero = locate_day_zero(parse_event(f"2025-10-11{timing}"))
    assert zero.day0 == ts("2025-10-13")
    assert "Sat 2025-10-11" in zero.mapping and "non-trading day" in zero.mapping
    assert zero.mapping.endswith("→ day 0 Mon 2025-10-13")


@pytest.mark.parametrize(
    ("holiday", "expected"),
    [
        ("2025-07-04", "2025-07-07"),  # Independence Day (Fri) -> Mon
        ("2025-11-27", "2025-11-28"),  # Thanksgiving (Thu) -> Fri (an early-close session)
        ("2025-12-25", "2025-12-26"),  # Christmas (Thu) -> Fri
        ("2025-09-01", "2025-09-02"),  # Labor Day (Mon) -> Tue
    ],
)
def test_holiday_maps_to_the_next_session(holiday, expected):
    assert day0(holiday) == ts(expected)
    assert day0(f"{holiday}:after_close") == ts(expected)


@pytest.mark.parametrize(
    ("friday", "tuesday"),
    [
        ("2025-08-29", "2025-09-02"),  # before Labor Day
        ("2025-01-17", "2025-01-21"),  # before Martin Luther King Jr. Day
        ("2025-02-14", "2025-02-18"),  # before Washington's Birthday
    ],
)
def test_after_close_on_friday_before_a_monday_holiday_is_tuesday(friday, tuesday):
    zero = locate_day_zero(parse_event(f"{friday}:after_close"))
    assert zero.day0 == ts(tuesday)
    assert zero.mapping.endswith(f"→ day 0 Tue {tuesday}")


def test_after_close_before_independence_day_skips_the_holiday():
    # Thu 2025-07-03 is an early close (13:00); Fri 07-04 is closed
    assert day0("2025-07-03:after_close") == ts("2025-07-07")


# --------------------------------------------------------------------------- zoned timestamps


@pytest.mark.parametrize(
    ("stamp", "expected_day0", "timing"),
    [
        ("2025-10-13T08:00:00-04:00", "2025-10-13", "before_open"),
        ("2025-10-13T09:29:59-04:00", "2025-10-13", "before_open"),
        ("2025-10-13T09:30:00-04:00", "2025-10-13", "during"),  # the open itself is in the session
        ("2025-10-13T15:00:00-04:00", "2025-10-13", "during"),
        ("2025-10-13T16:00:00-04:00", "2025-10-14", "after_close"),  # at the close: too late to trade
        ("2025-10-13T16:30:00-04:00", "2025-10-14", "after_close"),
        ("2025-11-28T12:30:00-05:00", "2025-11-28", "during"),  # early close at 13:00
        ("2025-11-28T13:30:00-05:00", "2025-12-01", "after_close"),  # after the early close -> Monday
        ("2025-10-10T17:00:00-04:00", "2025-10-13", "after_close"),  # Friday evening -> Monday
        ("2025-10-11T10:00:00-04:00", "2025-10-13", "non-trading day"),
    ],
)
def test_zoned_timestamps(stamp, expected_day0, timing):
    zero = locate_day_zero(parse_event(stamp))
    assert zero.day0 == ts(expected_day0)
    assert zero.timing == timing


@pytest.mark.parametrize(
    ("stamp", "local", "expected_day0", "timing"),
    [
        # winter (EST, UTC-5): 14:00Z is 09:00 New York, before the open (as EDT it would be 10:00, during)
        ("2025-12-01T14:00:00+00:00", "Mon 2025-12-01 09:00", "2025-12-01", "before_open"),
        # 20:30Z is 15:30 EST: still in the session (read naively as 20:30 it would be after the close)
        ("2025-12-01T20:30:00+00:00", "Mon 2025-12-01 15:30", "2025-12-01", "during"),
        # summer (EDT, UTC-4): 20:30Z is 16:30, after the close
        ("2025-10-13T20:30:00+00:00", "Mon 2025-10-13 16:30", "2025-10-14", "after_close"),
        # Asian hours: 08:00 in Beijing on Thu is 20:00 Wed in New York -> after Wednesday's close
        ("2025-10-09T08:00:00+08:00", "Wed 2025-10-08 20:00", "2025-10-09", "after_close"),
        # a UTC date that is the previous day in New York
        ("2025-10-14T01:00:00+00:00", "Mon 2025-10-13 21:00", "2025-10-14", "after_close"),
    ],
)
def test_timestamps_in_other_zones_are_converted_to_new_york(stamp, local, expected_day0, timing):
    zero = locate_day_zero(parse_event(stamp))
    assert zero.announced == f"{local} New York time"
    assert zero.timing == timing
    assert zero.day0 == ts(expected_day0)


def test_timestamp_event_built_directly():
    when = dt.datetime(2025, 10, 13, 12, 0, tzinfo=dt.timezone.utc)  # 08:00 EDT
    event = EventSpec(id="x", date=when.date(), timestamp=when)
    zero = locate_day_zero(event)
    assert (zero.day0, zero.timing) == (ts("2025-10-13"), "before_open")
    assert zero.mapping == "announced Mon 2025-10-13 08:00 New York time (before the open) → day 0 Mon 2025-10-13"


# --------------------------------------------------------------------------- outside the calendar


@pytest.mark.parametrize("text", ["1999-06-15", "1999-12-31:after_close", "2150-01-02", "1999-06-15T10:00:00-04:00"])
def test_dates_outside_the_calendar_raise_calendar_error(text):
    with pytest.raises(CalendarError) as info:
        locate_day_zero(parse_event(text))
    assert text[:10] in str(info.value)
    assert "outside the NYSE calendar" in str(info.value)


@pytest.mark.parametrize("form", ["{day}:after_close", "{day}T17:00:00-05:00"])
def test_after_close_on_the_last_calendar_session_raises_calendar_error(form):
    last = nyse_calendar().last_session.date().isoformat()
    with pytest.raises(CalendarError):
        locate_day_zero(parse_event(form.format(day=last)))


# --------------------------------------------------------------------------- the EVENTS.md catalogue


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("2025-10-13:before_open", "2025-10-13"),  # JPMorgan Security and Resiliency Initiative
        ("2025-07-10:before_open", "2025-07-10"),  # DoD partnership with MP Materials
        ("2025-08-22:during", "2025-08-22"),  # Intel stake: President's remarks in trading hours
        ("2025-09-30:after_close", "2025-10-01"),  # DoE stake in Lithium Americas (LAC)
        ("2025-10-06:after_close", "2025-10-07"),  # Trilogy Metals (TMQ)
        ("2025-10-27:before_open", "2025-10-27"),  # JPMorgan's Perpetua Resources (PPTA) investment
    ],
)
def test_events_catalogue(event, expected):
    assert day0(event) == ts(expected)


# --------------------------------------------------------------------------- session_offset


def test_session_offset_counts_nyse_sessions():
    assert session_offset(ts("2025-10-13"), -11) == ts("2025-09-26")  # day -11 of the main event
    assert session_offset(ts("2025-10-13"), 0) == ts("2025-10-13")
    assert session_offset(ts("2025-07-03"), 1) == ts("2025-07-07")  # over Independence Day
    assert session_offset(ts("2025-10-11"), 0) == ts("2025-10-13")  # a Saturday rolls forward


def test_day_counts_in_window_errors_agree_with_their_noun():
    """'1 trading day', never '1 trading days' (issue 10's small things)."""
    from evstudy.calendar import CalendarError, day_zero_row

    days = pd.bdate_range("2025-01-01", periods=10)
    kwargs = {"estimation_end": -1, "who": "event 'e'", "benchmark": "SPY"}
    with pytest.raises(CalendarError, match=r"data ends 2025-01-14, 1 trading day after day 0"):
        day_zero_row(days, days[-2], span_start=0, span_end=5, **kwargs)
    with pytest.raises(CalendarError, match=r"only 1 trading day before day 0"):
        day_zero_row(days, days[1], span_start=-5, span_end=0, **kwargs)
    with pytest.raises(CalendarError, match=r"only 2 trading days before day 0"):
        day_zero_row(days, days[2], span_start=-5, span_end=0, **kwargs)


# --------------------------------------------------------------------------- the kept NYSE session list


def _xcals_day0(cal, day: pd.Timestamp, timing: str) -> pd.Timestamp:
    """Day 0 read straight off exchange_calendars' calendar: the rule of locate_day_zero for a dated event."""
    if not cal.is_session(day):
        return cal.date_to_session(day, direction="next")
    return cal.next_session(day) if timing == "after_close" else day


def test_dated_events_on_the_kept_sessions_agree_with_the_nyse_calendar_on_every_day():
    """Every calendar day 2000-01-03 .. a month before the calendar's end, every timing."""
    from evstudy.calendar import nyse_sessions

    cal = nyse_calendar()
    assert np.array_equal(np.asarray(nyse_sessions().sessions, dtype="datetime64[D]"),
                          cal.sessions.values.astype("datetime64[D]"))
    for day in pd.date_range(cal.first_session, cal.last_session - pd.Timedelta(days=31)):
        for timing in ("before_open", "during", "after_close"):
            zero = locate_day_zero(EventSpec(id="e", date=day.date(), timing=timing))
            assert zero.day0 == _xcals_day0(cal, day, timing), (day, timing)
    for offset in (-600, -11, 0, 1, 25):
        sessions = cal.sessions
        at = sessions.searchsorted(ts("2025-10-13"))
        assert session_offset(ts("2025-10-13"), offset) == sessions[at + offset]


def test_a_study_process_reads_the_kept_sessions_without_exchange_calendars(tmp_path):
    """The first run builds the calendar and keeps its sessions; the next reads them (no import, no build)."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from evstudy.calendar import locate_day_zero, session_offset\n"
        "from evstudy.config import parse_event\n"
        "print(locate_day_zero(parse_event('2025-07-03:after_close')).day0.date(), "
        "session_offset(locate_day_zero(parse_event('2025-10-13')).day0, -250).date(), "
        "'exchange_calendars' in sys.modules)\n"
    )
    env = {**os.environ, "EVSTUDY_CACHE": str(tmp_path)}
    first, second = (subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                    check=True).stdout.split() for _ in range(2))
    assert first[0] == "2025-07-07" and first[:2] == second[:2]
    assert (first[2], second[2]) == ("True", "False")


@pytest.mark.parametrize("damage", ["garbage", "other_key", "old", "unwritable"])
def test_a_damaged_stale_or_unwritable_session_list_is_rebuilt(damage, tmp_path, monkeypatch):
    import json

    from evstudy import calendar

    monkeypatch.setenv("EVSTUDY_CACHE", str(tmp_path))
    kept = tmp_path / calendar.SESSIONS_FILE
    calendar.nyse_sessions.cache_clear()
    calendar.nyse_sessions()
    saved = json.loads(kept.read_text())
    if damage == "garbage":
        kept.write_text("{not json")
    elif damage == "other_key":
        kept.write_text(json.dumps({**saved, "key": "another version", "sessions": saved["sessions"][:5]}))
    elif damage == "old":
        built = dt.date.today() - dt.timedelta(days=calendar.SESSIONS_MAX_AGE_DAYS + 1)
        kept.write_text(json.dumps({**saved, "built": built.isoformat(), "sessions": saved["sessions"][:5]}))
    else:  # the cache's calendar folder is a file: nothing can be read or written there
        kept.unlink()
        kept.parent.rmdir()
        kept.parent.write_text("in the way")
    try:
        calendar.nyse_sessions.cache_clear()
        assert np.array_equal(np.asarray(calendar.nyse_sessions().sessions, dtype="datetime64[D]"),
                              nyse_calendar().sessions.values.astype("datetime64[D]"))
        if damage != "unwritable":
            assert json.loads(kept.read_text())["sessions"] == saved["sessions"]
    finally:
        calendar.nyse_sessions.cache_clear()
