"""The price cache keeps what every run fetched: concurrent fetches, --refresh, holes, truthful fetch exits.

yfinance is a stand-in (tests/market_fakes.py); the concurrency test runs the
real ``evstudy fetch`` in child processes that meet inside the download, so
both read the cache before either writes: the worst interleaving, every time.
``EVSTUDY_CACHE_RACE_RUNS`` sets how many times it is repeated (CI: 3; run it
with 20 locally).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yfinance
from click.testing import CliRunner

import evstudy.prices.yahoo as yahoo_module
from evstudy.cli import cli
from evstudy.errors import ConfigError, DownloadError
from evstudy.prices import YahooSource
from evstudy.prices.cache import CacheEntry, PriceCache
from market_fakes import EVENT, FlakyYahoo, market, write_wide_csv

TESTS = Path(__file__).resolve().parent
D = dt.date
JAN = (D(2024, 1, 1), D(2024, 1, 31))
JUN = (D(2024, 6, 1), D(2024, 6, 30))
RACE_RUNS = int(os.environ.get("EVSTUDY_CACHE_RACE_RUNS", "3"))


class RecordingYahoo(FlakyYahoo):
    """FlakyYahoo that also records each call's [start, end) as dates."""

    def __init__(self, closes: pd.DataFrame):
        super().__init__(closes)
        self.spans: list[tuple[dt.date, dt.date]] = []

    def __call__(self, tickers, start=None, end=None, **kwargs):
        self.spans.append((pd.Timestamp(start).date(), pd.Timestamp(end).date()))
        return super().__call__(tickers, start=start, end=end, **kwargs)


@pytest.fixture
def fake(monkeypatch) -> RecordingYahoo:
    monkeypatch.setattr(yahoo_module, "_pause", lambda seconds: None)
    stand_in = RecordingYahoo(market())
    monkeypatch.setattr(yfinance, "download", stand_in)
    return stand_in


def expected(ticker: str, first: dt.date, last: dt.date) -> pd.Series:
    closes = market()[ticker].dropna()
    return closes[(closes.index >= pd.Timestamp(first)) & (closes.index <= pd.Timestamp(last))]


def closes_in(entry: CacheEntry, first: dt.date, last: dt.date) -> pd.Series:
    return entry.closes[(entry.closes.index >= pd.Timestamp(first)) & (entry.closes.index <= pd.Timestamp(last))]


def cli_run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], prog_name="evstudy")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


# --------------------------------------------------------------------------- two fetches at once

_FETCHER = """
import os, sys, time
sys.path.insert(0, {tests!r})
import yfinance
from market_fakes import FlakyYahoo, market

fake = FlakyYahoo(market())


def meet_then_download(*args, **kwargs):
    # Both processes have read the (empty) cache once they get here; wait for the other one.
    open({mine!r}, "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists({theirs!r}) and time.monotonic() < deadline:
        time.sleep(0.005)
    return fake(*args, **kwargs)


yfinance.download = meet_then_download
from evstudy.cli import main
sys.argv = ["evstudy", "fetch", "AAA,SPY", "--start", {start!r}, "--end", {end!r}, "--cache-dir", {cache!r}]
main()
"""


def _fetcher(tmp: Path, name: str, other: str, span: tuple[dt.date, dt.date]) -> subprocess.Popen:
    script = _FETCHER.format(tests=str(TESTS), mine=str(tmp / name), theirs=str(tmp / other), start=str(span[0]),
                             end=str(span[1]), cache=str(tmp / "cache"))
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=TESTS)


@pytest.mark.parametrize("attempt", range(RACE_RUNS))
def test_two_concurrent_fetches_of_different_spans_leave_the_union(tmp_path, attempt):
    children = [_fetcher(tmp_path, "a", "b", JAN), _fetcher(tmp_path, "b", "a", JUN)]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err[-2000:]
        assert "Cached 2 of 2 tickers" in out, out
    cache = PriceCache(tmp_path / "cache")
    for ticker in ("AAA", "SPY"):
        entry = cache.read(ticker)
        assert (entry.first, entry.last) == (JAN[0], JUN[1]), (ticker, entry)
        for span in (JAN, JUN):
            np.testing.assert_allclose(closes_in(entry, *span).to_numpy(), expected(ticker, *span).to_numpy())
        assert cache.covers(ticker, *JAN) and cache.covers(ticker, *JUN)
    assert not list((tmp_path / "cache" / "yahoo").glob("*.tmp"))


def test_a_read_while_another_process_replaces_the_file_sees_one_whole_file(tmp_path):
    """A writer's os.replace during a read gives the old file or the new one, never a corrupt mix.

    Read by path, pyarrow took the file's bytes from two versions ("Page was smaller than expected"): the
    reader called a good file corrupt, and a concurrent `evstudy fetch` said it could not write a ticker
    it had written.
    """
    import threading

    cache = PriceCache(tmp_path / "cache")
    closes = market()["AAA"].dropna()
    entries = [CacheEntry(closes.iloc[:n], closes.index[0].date(), closes.index[n - 1].date()) for n in (20, 200)]
    cache.write("AAA", entries[0], merge=False)
    stop = threading.Event()

    def replace_again_and_again() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            cache.write("AAA", entries[i % 2], merge=False)

    writer = threading.Thread(target=replace_again_and_again)
    writer.start()
    try:
        lengths = {len(cache.read("AAA").closes) for _ in range(300)}
    finally:
        stop.set()
        writer.join()
    assert lengths <= {20, 200}


def test_a_hole_between_two_cached_spans_is_fetched_whole_and_nothing_else(fake, tmp_path):
    cache = PriceCache(tmp_path)
    for span in (JAN, JUN):  # as two racing fetches leave it
        days = expected("AAA", *span)
        cache.write("AAA", CacheEntry(days, *span), merge=True)
    assert cache.read("AAA").holes == ((D(2024, 2, 1), D(2024, 5, 31)),)
    data = YahooSource(cache_dir=tmp_path, offline=True).load(["AAA"], *JAN)  # inside one span: no network
    np.testing.assert_allclose(data.closes["AAA"], expected("AAA", *JAN))
    with pytest.raises(DownloadError, match="does not cover"):
        YahooSource(cache_dir=tmp_path, offline=True).load(["AAA"], D(2024, 3, 1), D(2024, 3, 29))
    data = YahooSource(cache_dir=tmp_path).load(["AAA"], D(2024, 3, 1), D(2024, 3, 29))
    assert len(fake.calls) == 1  # the hole (and Jan 31, its anchor), one call
    np.testing.assert_allclose(data.closes["AAA"], expected("AAA", D(2024, 3, 1), D(2024, 3, 29)))
    entry = cache.read("AAA")
    assert (entry.first, entry.last, entry.holes) == (D(2024, 1, 1), D(2024, 6, 30), ())
    np.testing.assert_allclose(entry.closes.to_numpy(), expected("AAA", D(2024, 1, 1), D(2024, 6, 30)).to_numpy())


def test_format_1_files_are_still_read(tmp_path):
    """A cache written before holes existed (format 1, no 'holes' key) stays valid."""
    import json

    import pyarrow.parquet as pq

    cache = PriceCache(tmp_path)
    cache.write("AAA", CacheEntry(expected("AAA", *JAN), *JAN), merge=True)
    table = pq.read_table(cache.path("AAA"))
    meta = json.loads(table.schema.metadata[b"evstudy"])
    meta["format"] = 1
    del meta["holes"]
    pq.write_table(table.replace_schema_metadata({b"evstudy": json.dumps(meta).encode()}), cache.path("AAA"))
    entry = cache.read("AAA")
    assert (entry.first, entry.last, entry.holes) == (*JAN, ())


# --------------------------------------------------------------------------- --refresh


def test_refresh_of_a_later_quarter_keeps_the_earlier_history(fake, tmp_path):
    q1, q3 = (D(2024, 1, 1), D(2024, 3, 31)), (D(2024, 7, 1), D(2024, 8, 30))
    YahooSource(cache_dir=tmp_path).load(["AAA"], q1[0], q3[1])
    code, out, err = cli_run("fetch", "AAA", "--start", q3[0], "--end", q3[1], "--refresh", "--cache-dir", tmp_path)
    assert code == 0, err
    assert fake.spans[-1] == (D(2024, 6, 28), D(2024, 8, 31))  # Q3 and the anchor day before it, not the history
    entry = PriceCache(tmp_path).read("AAA")
    assert (entry.first, entry.last, entry.holes) == (q1[0], q3[1], ())
    np.testing.assert_allclose(entry.closes.to_numpy(), expected("AAA", q1[0], q3[1]).to_numpy())


def test_refresh_after_a_split_refetches_the_whole_history(fake, tmp_path):
    YahooSource(cache_dir=tmp_path).load(["AAA"], D(2024, 1, 1), D(2024, 8, 30))
    fake.closes["AAA"] = fake.closes["AAA"] / 2  # Yahoo now reports every close on a new basis
    data = YahooSource(cache_dir=tmp_path, refresh=True).load(["AAA"], D(2024, 7, 1), D(2024, 8, 30))
    assert "history refetched" in " ".join(data.notes)
    entry = PriceCache(tmp_path).read("AAA")
    assert (entry.first, entry.last) == (D(2024, 1, 1), D(2024, 8, 30))
    np.testing.assert_allclose(entry.closes.to_numpy(), market()["AAA"].loc["2024-01-01":"2024-08-30"].to_numpy() / 2)


# --------------------------------------------------------------------------- fetch tells the truth


def test_fetch_into_a_cache_folder_that_cannot_be_created_exits_2_before_downloading(fake, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for flag in ((), ("--strict",)):
        code, out, err = cli_run("fetch", "AAA", "--start", "2024-01-01", "--end", "2024-01-31",
                                 "--cache-dir", blocker / "cache", *flag)
        assert code == 2 and "Cached" not in out, (code, out, err)
        assert err.strip().splitlines()[-1].startswith(f"Error: the price cache {blocker / 'cache'} cannot be a folder")
    assert fake.calls == []


def test_fetch_that_cannot_write_the_cache_exits_2_naming_the_tickers(fake, tmp_path, monkeypatch):
    def disk_full(table, where, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pyarrow.parquet.write_table", disk_full)
    code, out, err = cli_run("fetch", "AAA,BBB", "--start", "2024-01-01", "--end", "2024-01-31", "--cache-dir", tmp_path)
    assert code == 2, (out, err)
    assert "Cached 0 of 2 tickers" in out
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: downloaded but could not write AAA, BBB to the price cache"), err
    assert "Traceback" not in err


def test_evstudy_cache_naming_a_file_only_matters_when_the_cache_is_used(fake, tmp_path, monkeypatch):
    prices = write_wide_csv(market(), tmp_path / "wide.csv")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("EVSTUDY_CACHE", str(blocker))
    code, _, err = cli_run("run", "--event", EVENT, "--tickers", "AAA,BBB", "--prices", prices,
                           "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    code, _, err = cli_run("run", "--event", EVENT, "--tickers", "AAA,BBB", "--out", tmp_path / "out2", "--quiet")
    assert code == 2 and err.strip().endswith("point --cache-dir or EVSTUDY_CACHE at a folder"), err
    assert fake.calls == [] and not (tmp_path / "out2").exists()
    with pytest.raises(ConfigError, match="is a file"):
        PriceCache(blocker).ensure_writable()
