"""Property-based tests (hypothesis) for the hostile-input classes of issue 11.

Each strategy generates one class of input that once gave a silent wrong
number or a crash, and each property says what must happen instead:

- dates written in other formats (day-first, month-first, with UTC offsets,
  two-digit years, trailing text): the reader returns exactly the trading
  days meant, or refuses with a DataSourceError — never other days;
- window offsets of any size: a Window within ±MAX_OFFSET, or a ConfigError;
- ticker names with CSV-special or control characters: never a ticker, so
  never in a price frame's columns (nor, therefore, in any CSV cell);
- price series with an injected glitch (a 5x+ jump, a spike undone the next
  day): found, on the right day; clean random walks: never flagged.

Bounded in CI by the ``ci`` hypothesis profile (tests/conftest.py).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evstudy.config import MAX_OFFSET, normalize_ticker, parse_window
from evstudy.errors import ConfigError, DataSourceError
from evstudy.prices import FileSource
from evstudy.prices.files import _text_days
from evstudy.returns import GLITCH_KINDS, price_glitches
from helpers import nyse_dates

SESSIONS = nyse_dates(400)
ZONES = ("America/New_York", "UTC", "Europe/London", "Asia/Tokyo", "America/Los_Angeles", "Australia/Sydney")
CSV_SPECIAL = ',"\n\r\t;+@ \x00\x1b'  # '=' may sit inside a ticker (GC=F), never first
FORMULA_LEADS = "=+-@"


# --------------------------------------------------------------------------- dates


@st.composite
def written_dates(draw: st.DrawFn) -> tuple[pd.DatetimeIndex, list[str]]:
    """A run of NYSE sessions and the same days written in one of several formats (or a corrupted one)."""
    start = draw(st.integers(0, len(SESSIONS) - 3))
    days = SESSIONS[start: start + draw(st.integers(2, len(SESSIONS) - start))]
    style = draw(st.sampled_from(["iso", "dmy", "mdy", "ymd_slash", "zoned", "short_year", "trailing"]))
    if style == "zoned":
        zone = draw(st.sampled_from(ZONES))
        closes = (days + pd.Timedelta(hours=16)).tz_localize("America/New_York").tz_convert(zone)
        return days, list(closes.strftime("%Y-%m-%dT%H:%M:%S%z"))
    formats = {"iso": "%Y-%m-%d", "dmy": "%d/%m/%Y", "mdy": "%m/%d/%Y", "ymd_slash": "%Y/%m/%d",
               "short_year": "%d/%m/%y", "trailing": "%Y-%m-%d"}
    text = list(days.strftime(formats[style]))
    if style == "trailing":
        i = draw(st.integers(0, len(text) - 1))
        text[i] += draw(st.text(alphabet="xZ:-T0 ", min_size=1, max_size=4))
    return days, text


@given(written_dates())
def test_dates_are_the_days_meant_or_refused(case):
    days, text = case
    try:
        read = _text_days(pd.Series(text, dtype=object), "test.csv, column 'Date'")
    except DataSourceError:
        return
    expected = days.to_numpy().astype("datetime64[D]").astype(np.int64)
    assert np.array_equal(read, expected), (text[:3], read[:3], expected[:3])


@given(written_dates())
def test_day_first_and_month_first_never_swap(case):
    """A numeric date column is read one way for all rows: never 3 March for one row and 5 April for the next."""
    days, text = case
    try:
        read = _text_days(pd.Series(text, dtype=object), "w")
    except DataSourceError:
        return
    assert np.all(np.diff(read) > 0)  # sessions ascend; a swapped day/month would jump back and forth


# --------------------------------------------------------------------------- offsets


@given(st.integers(), st.integers())
def test_window_offsets_are_bounded(start, end):
    for raw in ([start, end], f"{start},{end}"):
        try:
            window = parse_window(raw, " (--window)")
        except ConfigError:
            continue
        assert -MAX_OFFSET <= window.start <= window.end <= MAX_OFFSET


# --------------------------------------------------------------------------- tickers


@given(st.text(alphabet=st.sampled_from(list("ABCxyz09.-^=_") + list(CSV_SPECIAL)), min_size=1, max_size=24))
def test_a_ticker_never_holds_csv_special_characters(raw):
    try:
        ticker = normalize_ticker(raw)
    except ConfigError:
        return
    assert not set(ticker) & set(CSV_SPECIAL) and ticker[0] not in FORMULA_LEADS


@pytest.fixture(scope="module")
def price_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile-names")


@given(st.lists(st.text(alphabet=st.sampled_from(list("AB1") + list(',"\n;=@ ')), min_size=1, max_size=5),
                min_size=1, max_size=4, unique=True))
def test_hostile_column_names_never_reach_the_price_frame(price_folder, names):
    days = SESSIONS[:30]
    frame = pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "SPY": np.linspace(100, 110, 30),
                          **{name: np.linspace(10, 11, 30) for name in names if name.strip().upper() != "SPY"}})
    path = price_folder / "wide.csv"
    frame.to_csv(path, index=False)
    try:
        data = FileSource(path).load_all(days[0].date(), days[-1].date())
    except DataSourceError:
        return  # e.g. two names that normalize alike: refused, with the file named
    for column in data.closes.columns:
        assert normalize_ticker(column) == column and not set(column) & set(CSV_SPECIAL)
        assert column[0] not in FORMULA_LEADS


# --------------------------------------------------------------------------- glitch series


@st.composite
def glitch_series(draw: st.DrawFn) -> tuple[np.ndarray, int, str]:
    """A random walk (daily sd 0.5%-5%) with one glitch: a 6.5x-60,000x jump, or a 2.5x-20x spike undone the next day.

    The margins above the rule's 5x and 2x leave room for the day's own noise (at most ~4 sd of 5%).
    """
    n = 260
    seed = draw(st.integers(0, 2**32 - 1))
    sd = draw(st.floats(0.005, 0.05))
    walk = draw(st.floats(1.0, 500.0)) * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, sd, n)))
    kind = draw(st.sampled_from(["jump", "spike"]))
    row = draw(st.integers(5, 230))
    factor = draw(st.floats(6.5, 60_000.0) if kind == "jump" else st.floats(2.5, 20.0))
    factor = factor if draw(st.booleans()) else 1 / factor
    closes = walk.copy()
    if kind == "jump":
        closes[row:] *= factor
    else:
        closes[row] *= factor
    return closes, row, kind


@given(glitch_series())
def test_injected_glitches_are_found_on_their_day(case):
    closes, row, kind = case
    found = price_glitches(closes[:, None], jump_rows=240)
    assert GLITCH_KINDS[int(found.kind[0])] == kind  # a jump or spike outranks a sub-nickel close it causes
    assert int(found.row[0]) == row


@given(st.integers(0, 2**32 - 1), st.floats(0.005, 0.05), st.floats(1.0, 500.0))
def test_clean_random_walks_are_never_flagged(seed, sd, level):
    closes = level * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, sd, (260, 3)), axis=0))
    assert not price_glitches(closes, jump_rows=240).found.any()
