"""Faults around prices: a network that fails, a writer killed mid-file, two processes filling one cache.

yfinance is a stand-in (tests/market_fakes.py) that raises or answers empty
on cue; back-off waits are recorded, never slept. The kill and concurrency
tests run real child processes.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yfinance

import evstudy.prices.yahoo as yahoo_module
from evstudy.errors import ConfigError, DownloadError
from evstudy.prices import YahooSource
from evstudy.prices.cache import CacheEntry, PriceCache
from market_fakes import FlakyYahoo, market

TESTS = Path(__file__).resolve().parent
D = dt.date
JAN = (D(2024, 1, 1), D(2024, 1, 31))
JAN_FEB = (D(2024, 1, 1), D(2024, 2, 29))


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(yahoo_module, "_pause", slept.append)
    return slept


def install(monkeypatch, fail=None) -> FlakyYahoo:
    fake = FlakyYahoo(market(), fail)
    monkeypatch.setattr(yfinance, "download", fake)
    return fake


def expected(ticker: str, first: dt.date, last: dt.date) -> pd.Series:
    closes = market()[ticker].dropna()
    return closes[(closes.index >= pd.Timestamp(first)) & (closes.index <= pd.Timestamp(last))]


def raise_on(calls: set[int], error: Exception):
    def fail(tickers, n):
        if n in calls:
            raise error
    return fail


# --------------------------------------------------------------------------- retries


def test_timeouts_are_retried_with_exponential_backoff(monkeypatch, waits, tmp_path):
    fake = install(monkeypatch, raise_on({1, 2}, TimeoutError("Read timed out. (read timeout=10)")))
    data = YahooSource(cache_dir=tmp_path).load(["AAA", "BBB"], *JAN)
    assert waits == [1.0, 2.0] and len(fake.calls) == 3
    np.testing.assert_allclose(data.closes["AAA"], expected("AAA", *JAN))
    assert data.missing == () and data.details["failed"] == {}


def test_rate_limits_wait_longer(monkeypatch, waits, tmp_path):
    from yfinance.exceptions import YFRateLimitError

    install(monkeypatch, raise_on({1, 2}, YFRateLimitError()))
    YahooSource(cache_dir=tmp_path, backoff=0.5).load(["AAA"], *JAN)
    assert waits == [2.5, 5.0]


def test_retries_are_bounded_and_the_cause_is_kept(monkeypatch, waits, tmp_path):
    fake = install(monkeypatch, raise_on(set(range(1, 100)), ConnectionError("Connection reset by peer")))
    with pytest.raises(DownloadError, match="Connection reset by peer") as info, pytest.warns(UserWarning):
        YahooSource(cache_dir=tmp_path, retries=2).load(["AAA", "BBB"], *JAN)
    assert len(fake.calls) == 3 and waits == [1.0, 2.0]
    assert isinstance(info.value.__cause__, ConnectionError) and info.value.exit_code == 3
    assert "3 attempt(s)" in str(info.value)
    install(monkeypatch, raise_on(set(range(1, 100)), ConnectionError("down")))
    with pytest.raises(DownloadError), pytest.warns(UserWarning):
        YahooSource(cache_dir=tmp_path, retries=0).load(["AAA"], *JAN)
    assert waits == [1.0, 2.0]  # no retry, no wait


def test_an_injected_sleep_replaces_the_default(monkeypatch, waits, tmp_path):
    install(monkeypatch, raise_on({1}, TimeoutError("slow")))
    mine: list[float] = []
    YahooSource(cache_dir=tmp_path, sleep=mine.append, backoff=0.25).load(["AAA"], *JAN)
    assert mine == [0.25] and waits == []
    with pytest.raises(ConfigError, match="must not be negative"):
        YahooSource(cache_dir=tmp_path, retries=-1)


def test_only_the_failed_tickers_are_asked_again(monkeypatch, waits, tmp_path):
    fake = install(monkeypatch, lambda tickers, n: ["BBB"] if n == 1 else None)
    data = YahooSource(cache_dir=tmp_path).load(["AAA", "BBB", "CCC"], *JAN)
    assert fake.calls == [["AAA", "BBB", "CCC"], ["BBB"]] and waits == [1.0]
    np.testing.assert_allclose(data.closes["BBB"], expected("BBB", *JAN))
    assert data.details["failed"] == {}


def test_an_all_empty_answer_is_retried(monkeypatch, waits, tmp_path):
    fake = install(monkeypatch, lambda tickers, n: tickers if n == 1 else None)
    data = YahooSource(cache_dir=tmp_path).load(["AAA", "BBB"], *JAN)
    assert len(fake.calls) == 2 and list(data.closes.columns) == ["AAA", "BBB"]


def test_what_arrived_is_cached_before_the_retries_wait(monkeypatch, tmp_path):
    install(monkeypatch, lambda tickers, n: ["BBB"])
    cached_while_waiting: list[list[str]] = []

    def sleep(seconds: float) -> None:  # a kill during this wait must not lose AAA
        cached_while_waiting.append(sorted(p.name for p in (tmp_path / "yahoo").glob("*.parquet")))

    with pytest.warns(UserWarning, match="BBB"):
        YahooSource(cache_dir=tmp_path, sleep=sleep).load(["AAA", "BBB"], *JAN)
    assert cached_while_waiting == [["AAA.parquet"]] * 3


@pytest.mark.parametrize("strict", [False, True])
def test_what_downloaded_is_cached_when_another_call_fails(monkeypatch, waits, tmp_path, strict):
    install(monkeypatch)
    YahooSource(cache_dir=tmp_path).load(["AAA"], *JAN)
    def bbb_unreachable(tickers, n):
        if "BBB" in tickers:
            raise ConnectionError("reset")

    fake = install(monkeypatch, bbb_unreachable)
    source = YahooSource(cache_dir=tmp_path, strict=strict)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if strict:
            with pytest.raises(DownloadError, match=r"--strict: Yahoo could not deliver BBB .*reset") as info:
                source.load(["AAA", "BBB"], *JAN_FEB)
            assert info.value.exit_code == 3
        else:
            data = source.load(["AAA", "BBB"], *JAN_FEB)
            assert data.missing == ("BBB",)
            assert data.missing_reasons["BBB"] == "download failed: ConnectionError: reset, after 4 attempt(s)"
            np.testing.assert_allclose(data.closes["AAA"], expected("AAA", *JAN_FEB))
    assert any("Yahoo gave no prices for BBB" in str(w.message) for w in caught)
    assert sorted(len(call) for call in fake.calls) == [1, 1, 1, 1, 1]  # AAA's top-up once, BBB four times
    cached = YahooSource(cache_dir=tmp_path, offline=True).load(["AAA"], *JAN_FEB)  # the top-up was kept
    np.testing.assert_allclose(cached.closes["AAA"], expected("AAA", *JAN_FEB))


# --------------------------------------------------------------------------- a writer killed mid-file

_SLOW_WRITER = """
import io, sys, time
sys.path.insert(0, {tests!r})
import pyarrow.parquet as pq

_write = pq.write_table


def slow_write(table, where, **kwargs):
    # The real Parquet bytes, written to the temp file 256 bytes at a time: a kill lands mid-file.
    buffer = io.BytesIO()
    _write(table, buffer, **kwargs)
    data = buffer.getvalue()
    slow = {slow!r} in str(where)
    with open(where, "wb") as handle:
        for start in range(0, len(data), 256):
            handle.write(data[start:start + 256])
            handle.flush()
            if slow:
                open({marker!r}, "w").close()
                time.sleep(0.02)


pq.write_table = slow_write
"""


def _child(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=TESTS)


def _kill_when(child: subprocess.Popen, marker: Path) -> None:
    """SIGKILL ``child`` a random moment after it started writing the slow file."""
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the child never started writing"
        time.sleep(0.005)
    time.sleep(random.uniform(0.0, 0.3))
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, "the write finished before the kill: make it slower"


def _long_entry(first: str, last: str, start: float) -> CacheEntry:
    days = pd.bdate_range(first, last)
    closes = pd.Series(start + np.arange(len(days), dtype=float), index=days)
    return CacheEntry(closes, pd.Timestamp(first).date(), pd.Timestamp(last).date())


def test_a_write_killed_midway_leaves_the_previous_file_whole(tmp_path):
    cache = PriceCache(tmp_path)
    cache.write("AAA", _long_entry("2024-01-01", "2024-01-31", 1.0), merge=True)
    marker = tmp_path / "writing"
    script = _SLOW_WRITER.format(tests=str(TESTS), slow=".AAA.", marker=str(marker)) + textwrap.dedent(f"""
        import pandas as pd, numpy as np
        from evstudy.prices.cache import CacheEntry, PriceCache
        days = pd.bdate_range("1990-01-01", "2024-02-29")
        closes = pd.Series(1000.0 + np.arange(len(days)), index=days)
        PriceCache({str(tmp_path)!r}).write("AAA", CacheEntry(closes, days[0].date(), days[-1].date()), merge=True)
    """)
    _kill_when(_child(script), marker)
    orphans = list((tmp_path / "yahoo").glob(".AAA.*.tmp"))
    assert len(orphans) == 1 and orphans[0].stat().st_size > 0  # it died mid-file...
    kept = cache.read("AAA")  # ...and the file readers see is the whole previous one
    assert (kept.first, kept.last) == (D(2024, 1, 1), D(2024, 1, 31))
    np.testing.assert_array_equal(kept.closes.to_numpy(), 1.0 + np.arange(23))
    cache.write("AAA", _long_entry("2024-02-01", "2024-02-29", 50.0), merge=True)  # the next writer cleans up
    assert not list((tmp_path / "yahoo").glob("*.tmp"))
    assert (cache.read("AAA").first, cache.read("AAA").last) == (D(2024, 1, 1), D(2024, 2, 29))


def test_a_load_killed_midway_keeps_every_finished_ticker(tmp_path, monkeypatch):
    marker = tmp_path / "writing"
    script = _SLOW_WRITER.format(tests=str(TESTS), slow=".BBB.", marker=str(marker)) + textwrap.dedent(f"""
        import datetime as dt, yfinance
        from market_fakes import FlakyYahoo, market
        from evstudy.prices import YahooSource
        yfinance.download = FlakyYahoo(market())
        YahooSource(cache_dir={str(tmp_path)!r}).load(["AAA", "BBB", "CCC"], dt.date(2023, 1, 2), dt.date(2024, 9, 4))
    """)
    _kill_when(_child(script), marker)
    folder = tmp_path / "yahoo"
    assert sorted(p.name for p in folder.glob("*.parquet")) == ["AAA.parquet"]
    assert len(list(folder.glob(".BBB.*.tmp"))) == 1
    span = (D(2023, 1, 2), D(2024, 9, 4))
    offline = YahooSource(cache_dir=tmp_path, offline=True).load(["AAA"], *span)  # complete for what it had
    np.testing.assert_allclose(offline.closes["AAA"], expected("AAA", *span))
    with pytest.raises(DownloadError, match=r"for BBB, CCC;"):
        YahooSource(cache_dir=tmp_path, offline=True).load(["AAA", "BBB", "CCC"], *span)
    fake = install(monkeypatch)
    data = YahooSource(cache_dir=tmp_path).load(["AAA", "BBB", "CCC"], *span)
    assert fake.calls == [["BBB", "CCC"]]  # only what was never written is fetched again
    for ticker in ("AAA", "BBB", "CCC"):
        np.testing.assert_allclose(data.closes[ticker].dropna(), expected(ticker, *span))
    assert not list(folder.glob("*.tmp"))


# --------------------------------------------------------------------------- two processes, one cache

_FILLER = """
import datetime as dt, os, sys, time
sys.path.insert(0, {tests!r})
import numpy as np, pandas as pd, yfinance
from market_fakes import FlakyYahoo, market
from evstudy.prices import YahooSource

closes = market()
fake = FlakyYahoo(closes)
yfinance.download = lambda *a, **k: (time.sleep(0.01), fake(*a, **k))[1]
while not os.path.exists({go!r}):
    time.sleep(0.002)
tickers, months = {tickers!r}, {months!r}
for month in months:
    first = dt.date(2023, month, 1)
    last = (pd.Timestamp(first) + pd.offsets.MonthEnd(0)).date()
    data = YahooSource(cache_dir={root!r}).load(tickers, dt.date(2023, 1, 1), last)
    for ticker in tickers:  # what each load returns is right, whatever the other process did
        want = closes[ticker].dropna()
        want = want[(want.index >= "2023-01-01") & (want.index <= pd.Timestamp(last))]
        got = data.closes[ticker].dropna()
        assert np.allclose(got.to_numpy(), want.to_numpy()) and got.index.equals(want.index), (ticker, month)
print("ok")
"""


def test_two_processes_filling_one_cache_do_not_corrupt_it(tmp_path):
    go = tmp_path / "go"
    plans = [(["AAA", "BBB", "CCC", "QQQ"], list(range(1, 13))), (["SPY", "CCC", "BBB", "NEG"], list(range(12, 0, -1)))]
    children = [
        _child(_FILLER.format(tests=str(TESTS), go=str(go), root=str(tmp_path), tickers=tickers, months=months))
        for tickers, months in plans
    ]
    time.sleep(0.5)
    go.touch()
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0 and out.strip() == "ok", err[-3000:]
    cache = PriceCache(tmp_path)
    closes = market()
    for ticker in ("AAA", "BBB", "CCC", "QQQ", "SPY", "NEG"):
        entry = cache.read(ticker)  # readable, evstudy's, this ticker's
        assert entry is not None and entry.first == D(2023, 1, 1), ticker
        want = closes[ticker].dropna()
        want = want[(want.index >= pd.Timestamp(entry.first)) & (want.index <= pd.Timestamp(entry.last))]
        np.testing.assert_allclose(entry.closes.to_numpy(), want.to_numpy())  # complete, no gap, no foreign row
        assert entry.closes.index.equals(pd.DatetimeIndex(want.index.to_numpy(), name="date"))
    for shared in ("BBB", "CCC"):  # both processes ended by asking for all of 2023
        assert cache.read(shared).last == D(2023, 12, 31)
    assert not list((tmp_path / "yahoo").glob("*.tmp"))
