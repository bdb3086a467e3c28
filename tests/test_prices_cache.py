"""The per-ticker cache: safe file names, atomic merged writes, corruption detection."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os

import numpy as np
import pandas as pd
import pytest

from evstudy.errors import ConfigError
from evstudy.prices import cache_file_name
from evstudy.prices.cache import CacheEntry, CorruptCacheError, PriceCache

D = dt.date

ODD = [
    "../x",
    "..",
    "/",
    "a/b",
    "a\\b",
    "\x00",
    "NUL",
    "con",
    "^GSPC",
    "BRK-B",
    "BRK.B",
    "BRK%2EB",
    "brk.b",
    "Ünïcødé",
    "株式",
    "💹",
    "X" * 300,
    "X" * 299 + "Y",
    "%" * 300,
    "é" * 300,
]


def entry(first: str, last: str, start_price: float = 1.0) -> CacheEntry:
    days = pd.bdate_range(first, last)
    closes = pd.Series(start_price + np.arange(len(days), dtype=float), index=days)
    return CacheEntry(closes, pd.Timestamp(first).date(), pd.Timestamp(last).date())


def test_plain_tickers_keep_their_name():
    assert cache_file_name("SPY") == "SPY.parquet"
    assert cache_file_name("BRK-B") == "BRK-B.parquet"
    assert cache_file_name("BRK.B") == "BRK%2EB.parquet"
    assert cache_file_name("^GSPC") == "%5EGSPC.parquet"


def test_names_are_distinct_short_and_stay_inside_the_directory(tmp_path):
    names = [cache_file_name(ticker) for ticker in ODD]
    assert len(set(names)) == len(ODD)
    for name in names:
        assert set(name) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-%~.")
        assert len(name) <= 120 + len(".parquet")
        assert not name.startswith(".")
        assert name.count(".") == 1
        assert (tmp_path / name).resolve().parent == tmp_path.resolve()
        assert name.split(".")[0].upper() not in {"CON", "NUL", "PRN", "AUX"}


def test_empty_ticker_has_no_file_name():
    with pytest.raises(ConfigError):
        cache_file_name("")


def test_every_odd_ticker_round_trips(tmp_path):
    cache = PriceCache(tmp_path)
    for i, ticker in enumerate(ODD):
        cache.write(ticker, entry("2024-01-01", "2024-01-31", start_price=i), merge=True)
    for i, ticker in enumerate(ODD):
        got = cache.read(ticker)
        assert got.closes.iloc[0] == i and (got.first, got.last) == (D(2024, 1, 1), D(2024, 1, 31))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["yahoo"]
    assert len(list((tmp_path / "yahoo").glob("*.parquet"))) == len(ODD)


def test_merge_keeps_every_range_and_replace_does_not(tmp_path):
    cache = PriceCache(tmp_path)
    cache.write("AAA", entry("2024-01-01", "2024-01-31"), merge=True)
    cache.write("AAA", entry("2024-02-01", "2024-02-29", start_price=100.0), merge=True)
    merged = cache.read("AAA")
    assert (merged.first, merged.last) == (D(2024, 1, 1), D(2024, 2, 29))
    assert merged.closes.index.is_monotonic_increasing and merged.closes.loc["2024-02-01"] == 100.0
    # a range that does not touch the cached one is kept beside it, the days between recorded as a hole
    cache.write("AAA", entry("2024-06-03", "2024-06-28"), merge=True)
    both = cache.read("AAA")
    assert (both.first, both.last, both.holes) == (D(2024, 1, 1), D(2024, 6, 28), ((D(2024, 3, 1), D(2024, 6, 2)),))
    assert both.closes.loc["2024-02-01"] == 100.0 and len(both.closes) == 23 + 21 + 20  # business days of Jan, Feb and 3-28 Jun
    cache.write("AAA", entry("2024-06-10", "2024-06-14"), merge=False)
    assert (cache.read("AAA").first, cache.read("AAA").last) == (D(2024, 6, 10), D(2024, 6, 14))


def test_rows_outside_the_covered_range_are_not_stored(tmp_path):
    cache = PriceCache(tmp_path)
    wide = entry("2024-01-01", "2024-01-31")
    cache.write("AAA", CacheEntry(wide.closes, D(2024, 1, 8), D(2024, 1, 12)), merge=True)
    assert len(cache.read("AAA").closes) == 5


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda path: path.write_bytes(b""), "not a readable Parquet"),
        (lambda path: path.write_bytes(path.read_bytes()[:-20]), "not a readable Parquet"),
        (lambda path: pd.DataFrame({"date": [1], "close": [1.0]}).to_parquet(path), "no evstudy metadata"),
    ],
)
def test_damaged_files_are_reported_as_corrupt(tmp_path, damage, reason):
    cache = PriceCache(tmp_path)
    cache.write("AAA", entry("2024-01-01", "2024-01-31"), merge=True)
    damage(cache.path("AAA"))
    with pytest.raises(CorruptCacheError, match=reason):
        cache.read("AAA")
    cache.write("AAA", entry("2024-01-01", "2024-01-31"), merge=True)  # a corrupt file is overwritten
    assert cache.read("AAA").last == D(2024, 1, 31)


def test_absent_file_is_none(tmp_path):
    assert PriceCache(tmp_path).read("AAA") is None


def _writer(root: str, offset: int) -> None:
    cache = PriceCache(root)
    for month in range(1, 7):
        first = pd.Timestamp(2024, month, 1)
        last = first + pd.offsets.MonthEnd(0)
        cache.write("AAA", entry(str(first.date()), str(last.date()), start_price=offset), merge=True)


def test_two_processes_writing_the_same_ticker_leave_a_valid_file(tmp_path):
    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    workers = [context.Process(target=_writer, args=(str(tmp_path), n)) for n in (0, 1000)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    final = PriceCache(tmp_path).read("AAA")
    assert (final.first, final.last) == (D(2024, 1, 1), D(2024, 6, 30))
    assert final.closes.index.is_unique
    assert not list((tmp_path / "yahoo").glob("*.tmp"))
