"""Day 0 on the NYSE calendar: timings, weekends, holidays, early closes, time zones."""

from __future__ import annotations

import datetime as dt

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
