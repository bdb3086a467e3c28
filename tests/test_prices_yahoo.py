"""YahooSource with yfinance.download mocked at the boundary (no network, ever).

The fake builds its answer the way yfinance 1.7 does (``multi._download_impl``):
one ``Ticker.history`` frame per ticker (OHLCV, index named Date at exchange
midnight), ``utils.empty_df()`` for a ticker that failed, tz dropped for daily
bars, ``multi.reindex_dfs`` to align, ``concat(keys, names=['Ticker', 'Price'])``
and a swap to (Price, Ticker) columns.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yfinance
from yfinance import multi as yf_multi
from yfinance import utils as yf_utils

import evstudy.prices.yahoo as yahoo_module
from evstudy.errors import DataSourceError, DownloadError
from evstudy.prices import YahooSource, cache_file_name, default_cache_dir, open_source

D = dt.date
DAYS = pd.bdate_range("2023-06-01", "2024-12-31")


def series(start_price: float, first_day: str = "2023-06-01") -> pd.Series:
    days = DAYS[DAYS >= first_day]
    return pd.Series(start_price * (1 + 0.001 * np.arange(len(days))), index=days)


def history(closes: pd.Series, tz: str = "America/New_York") -> pd.DataFrame:
    """What ``Ticker.history`` returns for daily bars."""
    index = pd.DatetimeIndex(closes.index).tz_localize(tz)
    index.name = "Date"
    values = closes.to_numpy()
    return pd.DataFrame(
        {"Open": values, "High": values * 1.01, "Low": values * 0.99, "Close": values, "Volume": 1e6},
        index=index,
    )


def download_frame(per_ticker: dict[str, pd.DataFrame | None], ignore_tz: bool = True) -> pd.DataFrame:
    """Assemble per-ticker frames exactly as yfinance 1.7's download does (group_by='column')."""
    dfs = {t: (df if df is not None else yf_utils.empty_df()) for t, df in per_ticker.items()}
    if ignore_tz:
        for df in dfs.values():
            if df.shape[0] > 0:
                df.index = df.index.tz_localize(None)
    dfs = yf_multi.reindex_dfs(dfs, ignore_tz)
    data = pd.concat(dfs.values(), axis=1, sort=True, keys=dfs.keys(), names=["Ticker", "Price"])
    data.columns = data.columns.swaplevel(0, 1)
    return data.sort_index(level=0, axis=1)  # yfinance sorts in place


class FakeYahoo:
    """Stands in for ``yfinance.download``: serves ``market``, records every call."""

    def __init__(self, market: dict[str, pd.Series]):
        self.market = market
        self.calls: list[dict] = []
        self.unreachable = False

    def __call__(self, tickers, start=None, end=None, **kwargs):
        first, after = pd.Timestamp(start), pd.Timestamp(end)
        self.calls.append({"tickers": list(tickers), "start": first.date(), "end": after.date(), **kwargs})
        per_ticker = {}
        for ticker in sorted({t.upper() for t in tickers}):
            closes = None if self.unreachable else self.market.get(ticker)
            if closes is not None:
                closes = closes[(closes.index >= first) & (closes.index < after)]
            per_ticker[ticker] = history(closes) if closes is not None and len(closes) else None
        return download_frame(per_ticker)


@pytest.fixture(autouse=True)
def waits(monkeypatch) -> list[float]:
    """Retries back off through ``yahoo._pause``: recorded here, never slept."""
    slept: list[float] = []
    monkeypatch.setattr(yahoo_module, "_pause", slept.append)
    return slept


@pytest.fixture
def fake(monkeypatch) -> FakeYahoo:
    fake = FakeYahoo({"AAA": series(10.0), "BBB": series(200.0), "CCC": series(5.0), "NEW": series(30.0, "2024-01-16")})
    monkeypatch.setattr(yfinance, "download", fake)
    return fake


def expected(ticker: str, fake: FakeYahoo, start: dt.date, end: dt.date) -> pd.Series:
    closes = fake.market[ticker]
    return closes[(closes.index >= pd.Timestamp(start)) & (closes.index <= pd.Timestamp(end))]


def assert_contract(frame: pd.DataFrame, tickers: list[str]) -> None:
    assert list(frame.columns) == tickers
    assert frame.index.name == "date" and frame.index.tz is None
    assert (frame.index == frame.index.normalize()).all()
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert all(dtype == np.float64 for dtype in frame.dtypes)


JAN = (D(2024, 1, 1), D(2024, 1, 31))


def test_first_load_is_one_batched_call_with_exclusive_end(fake, tmp_path):
    data = YahooSource(cache_dir=tmp_path).load(["aaa", "BBB"], *JAN)
    assert len(fake.calls) == 1
    call = fake.calls[0]
    assert sorted(call["tickers"]) == ["AAA", "BBB"]
    assert (call["start"], call["end"]) == (D(2024, 1, 1), D(2024, 2, 1))
    assert call["auto_adjust"] is True and call["actions"] is False and call["progress"] is False
    assert_contract(data.closes, ["AAA", "BBB"])
    pd.testing.assert_series_equal(
        data.closes["AAA"], expected("AAA", fake, *JAN), check_names=False, check_freq=False, check_index_type=False
    )
    assert data.source == "yahoo" and data.location == str(tmp_path)
    assert data.details["downloaded"] == ["AAA", "BBB"] and data.details["cache_hits"] == []
    assert "0 ticker(s) from cache, 2 downloaded" in data.notes[0]
    assert sorted(p.name for p in (tmp_path / "yahoo").glob("*.parquet")) == ["AAA.parquet", "BBB.parquet"]
    assert not list((tmp_path / "yahoo").glob("*.tmp"))


def test_second_load_makes_no_call(fake, tmp_path):
    first = YahooSource(cache_dir=tmp_path).load(["AAA", "BBB"], *JAN)
    second = YahooSource(cache_dir=tmp_path).load(["BBB", "AAA"], D(2024, 1, 3), D(2024, 1, 31))
    assert len(fake.calls) == 1
    assert_contract(second.closes, ["BBB", "AAA"])
    pd.testing.assert_frame_equal(second.closes, first.closes.loc["2024-01-03":, ["BBB", "AAA"]])
    assert second.details == {"cache_hits": ["BBB", "AAA"], "downloaded": [], "failed": {}}
    assert "2 ticker(s) from cache, 0 downloaded" in second.notes[0]


def test_wider_range_fetches_only_the_missing_parts_plus_an_anchor_day(fake, tmp_path):
    source = YahooSource(cache_dir=tmp_path)
    source.load(["AAA", "BBB"], *JAN)
    data = source.load(["AAA", "BBB"], D(2023, 12, 1), D(2024, 2, 29))
    before, after = fake.calls[1:]
    # the gap before, up to and including the first cached close (2024-01-01 in this fake market)
    assert (before["start"], before["end"]) == (D(2023, 12, 1), D(2024, 1, 2))
    # from the last cached close (2024-01-31) to the new end
    assert (after["start"], after["end"]) == (D(2024, 1, 31), D(2024, 3, 1))
    assert sorted(before["tickers"]) == sorted(after["tickers"]) == ["AAA", "BBB"]
    for ticker in ("AAA", "BBB"):
        np.testing.assert_array_equal(
            data.closes[ticker].to_numpy(), expected(ticker, fake, D(2023, 12, 1), D(2024, 2, 29)).to_numpy()
        )
    assert data.details["downloaded"] == ["AAA", "BBB"]
    assert "2 downloaded (2 of them topped up) in 2 call(s)" in data.notes[0]
    assert len(YahooSource(cache_dir=tmp_path).load(["AAA"], D(2023, 12, 4), D(2024, 2, 29)).closes) > 0
    assert len(fake.calls) == 3


def test_tickers_sharing_a_missing_range_share_a_call(fake, tmp_path):
    source = YahooSource(cache_dir=tmp_path)
    source.load(["AAA", "BBB"], *JAN)
    source.load(["AAA", "BBB", "CCC"], D(2024, 1, 1), D(2024, 2, 29))
    calls = sorted(fake.calls[1:], key=lambda call: call["start"])
    assert [sorted(call["tickers"]) for call in calls] == [["CCC"], ["AAA", "BBB"]]
    assert calls[0]["start"] == D(2024, 1, 1) and calls[1]["start"] == D(2024, 1, 31)


def test_pre_ipo_gap_is_covered_not_refetched(fake, tmp_path):
    data = YahooSource(cache_dir=tmp_path).load(["AAA", "NEW"], *JAN)
    assert data.closes["NEW"].first_valid_index() == pd.Timestamp("2024-01-16")
    meta = json.loads(pq.read_schema(tmp_path / "yahoo" / "NEW.parquet").metadata[b"evstudy"])
    assert (meta["first"], meta["last"]) == ("2024-01-01", "2024-01-31")
    YahooSource(cache_dir=tmp_path).load(["AAA", "NEW"], *JAN)
    assert len(fake.calls) == 1


def test_offline_with_empty_cache_names_the_missing_tickers(fake, tmp_path):
    with pytest.raises(DataSourceError) as info:
        YahooSource(cache_dir=tmp_path, offline=True).load(["AAA", "BBB"], *JAN)
    message = str(info.value)
    assert "AAA, BBB" in message and "evstudy fetch" in message and "--offline" in message
    assert fake.calls == []


def test_offline_serves_the_cache_and_names_only_uncovered_tickers(fake, tmp_path):
    YahooSource(cache_dir=tmp_path).load(["AAA"], *JAN)
    data = open_source(None, offline=True, cache_dir=tmp_path).load(["AAA"], *JAN)
    assert len(data.closes) == len(expected("AAA", fake, *JAN))
    with pytest.raises(DataSourceError, match=r"for BBB;") as info:
        YahooSource(cache_dir=tmp_path, offline=True).load(["AAA", "BBB"], *JAN)
    assert "AAA" not in str(info.value).split("for ")[-1]
    assert len(fake.calls) == 1


def test_ticker_returned_empty_goes_to_missing(fake, tmp_path, waits):
    with pytest.warns(UserWarning, match="Yahoo gave no prices for ZZZZ"):
        data = YahooSource(cache_dir=tmp_path, retries=1).load(["AAA", "ZZZZ", "BBB"], *JAN)
    assert data.missing == ("ZZZZ",)
    assert "answered empty" in data.missing_reasons["ZZZZ"] and "2 attempt(s)" in data.missing_reasons["ZZZZ"]
    assert_contract(data.closes, ["AAA", "BBB"])
    assert any("no Yahoo prices for ZZZZ" in note for note in data.notes)
    assert any("Yahoo gave no prices for ZZZZ" in note and "not cached" in note for note in data.notes)
    # an empty answer may be a per-ticker rate limit: ZZZZ alone is retried, and asked again next load
    with pytest.warns(UserWarning, match="ZZZZ"):
        again = YahooSource(cache_dir=tmp_path, retries=1).load(["AAA", "ZZZZ"], *JAN)
    assert again.missing == ("ZZZZ",)
    assert [call["tickers"] for call in fake.calls] == [["AAA", "ZZZZ", "BBB"], ["ZZZZ"], ["ZZZZ"], ["ZZZZ"]]
    assert waits == [1.0, 1.0]


def test_every_ticker_empty_is_a_download_error_and_nothing_cached(fake, tmp_path):
    fake.unreachable = True
    with pytest.raises(DownloadError) as info, pytest.warns(UserWarning):
        YahooSource(cache_dir=tmp_path).load(["AAA", "BBB"], *JAN)
    assert "AAA, BBB" in str(info.value) and "network" in str(info.value)
    assert not list((tmp_path / "yahoo").glob("*.parquet"))
    fake.unreachable = False
    YahooSource(cache_dir=tmp_path).load(["AAA", "BBB"], *JAN)
    assert len(fake.calls) == 4 + 1  # 1 + 3 retries, then the load that works


def test_unreachable_top_up_still_serves_the_cache_with_a_note(fake, tmp_path):
    YahooSource(cache_dir=tmp_path).load(["AAA"], *JAN)
    fake.unreachable = True
    with pytest.warns(UserWarning, match="Yahoo gave no prices for AAA"):
        data = YahooSource(cache_dir=tmp_path).load(["AAA"], D(2024, 1, 1), D(2024, 2, 29))
    assert data.closes.index.max() == pd.Timestamp("2024-01-31")
    assert data.missing == () and "answered empty" in data.details["failed"]["AAA"]
    assert any("Yahoo downloads failed for AAA: served what the cache holds" in note for note in data.notes)


def test_yfinance_exception_becomes_download_error(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise ValueError("Expecting value: line 1 column 1 (char 0)")  # a garbled answer: worth a retry

    monkeypatch.setattr(yfinance, "download", broken)
    with pytest.raises(DownloadError, match="Expecting value") as info, pytest.warns(UserWarning, match="AAA"):
        YahooSource(cache_dir=tmp_path).load(["AAA"], *JAN)
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.exit_code == 3


def test_refresh_refetches_everything_asked(fake, tmp_path):
    YahooSource(cache_dir=tmp_path).load(["AAA", "BBB"], *JAN)
    fake.market["AAA"] = fake.market["AAA"] * 2
    data = YahooSource(cache_dir=tmp_path, refresh=True).load(["AAA", "BBB"], *JAN)
    assert len(fake.calls) == 2
    assert (fake.calls[1]["start"], fake.calls[1]["end"]) == (D(2024, 1, 1), D(2024, 2, 1))
    np.testing.assert_allclose(data.closes["AAA"], expected("AAA", fake, *JAN))
    cached = YahooSource(cache_dir=tmp_path, offline=True).load(["AAA"], *JAN)
    np.testing.assert_allclose(cached.closes["AAA"], expected("AAA", fake, *JAN))


def test_corrupted_cache_file_is_reported_and_refetched(fake, tmp_path):
    YahooSource(cache_dir=tmp_path).load(["AAA", "BBB"], *JAN)
    path = tmp_path / "yahoo" / "AAA.parquet"
    path.write_bytes(b"PAR1 garbage")
    with pytest.raises(DataSourceError, match=r"AAA.*corrupted: AAA"):
        with pytest.warns(UserWarning, match="AAA"):
            YahooSource(cache_dir=tmp_path, offline=True).load(["AAA", "BBB"], *JAN)
    with pytest.warns(UserWarning, match=rf"AAA at {path}"):
        data = YahooSource(cache_dir=tmp_path).load(["AAA", "BBB"], *JAN)
    assert fake.calls[-1]["tickers"] == ["AAA"]
    assert any("unreadable" in note and "AAA" in note for note in data.notes)
    np.testing.assert_allclose(data.closes["AAA"], expected("AAA", fake, *JAN))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        YahooSource(cache_dir=tmp_path, offline=True).load(["AAA"], *JAN)  # repaired


def test_cache_file_of_another_ticker_is_not_trusted(fake, tmp_path):
    YahooSource(cache_dir=tmp_path).load(["AAA", "BBB"], *JAN)
    (tmp_path / "yahoo" / "BBB.parquet").replace(tmp_path / "yahoo" / "AAA.parquet")
    with pytest.warns(UserWarning, match="holds ticker 'BBB'"):
        data = YahooSource(cache_dir=tmp_path).load(["AAA"], *JAN)
    np.testing.assert_allclose(data.closes["AAA"], expected("AAA", fake, *JAN))


def test_changed_adjustment_basis_refetches_the_whole_history(fake, tmp_path):
    YahooSource(cache_dir=tmp_path).load(["AAA", "BBB"], *JAN)
    fake.market["AAA"] = fake.market["AAA"] / 10  # a 10:1 split: Yahoo rescales all past closes
    data = YahooSource(cache_dir=tmp_path).load(["AAA", "BBB"], D(2024, 1, 1), D(2024, 2, 29))
    full = fake.calls[-1]
    assert full["tickers"] == ["AAA"] and (full["start"], full["end"]) == (D(2024, 1, 1), D(2024, 3, 1))
    np.testing.assert_allclose(data.closes["AAA"], expected("AAA", fake, D(2024, 1, 1), D(2024, 2, 29)))
    assert data.closes["AAA"].pct_change().abs().max() < 0.01  # no fake -90% jump at the seam
    assert any("AAA: adjusted closes changed" in note for note in data.notes)
    cached = YahooSource(cache_dir=tmp_path, offline=True).load(["AAA"], D(2024, 1, 1), D(2024, 2, 29))
    np.testing.assert_allclose(cached.closes["AAA"], data.closes["AAA"])


def test_coverage_ends_yesterday_and_weekends_are_not_fetched(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(yahoo_module, "_today", lambda: D(2024, 3, 15))  # a Friday
    data = YahooSource(cache_dir=tmp_path).load(["AAA"], D(2024, 3, 1), D(2024, 3, 29))
    assert fake.calls[0]["end"] == D(2024, 3, 16)  # nothing asked beyond today
    assert data.closes.index.max() == pd.Timestamp("2024-03-15")  # today's bar is served...
    meta = json.loads(pq.read_schema(tmp_path / "yahoo" / "AAA.parquet").metadata[b"evstudy"])
    assert meta["last"] == "2024-03-14"  # ...but not cached: it may still move
    YahooSource(cache_dir=tmp_path).load(["AAA"], D(2024, 3, 1), D(2024, 3, 29))
    assert (fake.calls[1]["start"], fake.calls[1]["end"]) == (D(2024, 3, 14), D(2024, 3, 16))
    offline = YahooSource(cache_dir=tmp_path, offline=True).load(["AAA"], D(2024, 3, 1), D(2024, 3, 29))
    assert offline.closes.index.max() == pd.Timestamp("2024-03-14")
    monkeypatch.setattr(yahoo_module, "_today", lambda: D(2024, 3, 17))  # the Sunday after
    YahooSource(cache_dir=tmp_path).load(["AAA"], D(2024, 3, 1), D(2024, 3, 17))
    calls = len(fake.calls)
    YahooSource(cache_dir=tmp_path).load(["AAA"], D(2024, 3, 1), D(2024, 3, 17))
    YahooSource(cache_dir=tmp_path, offline=True).load(["AAA"], D(2024, 3, 1), D(2024, 3, 17))
    assert len(fake.calls) == calls


def test_progress_is_passed_to_yfinance(fake, tmp_path):
    YahooSource(cache_dir=tmp_path, progress=True).load(["AAA"], *JAN)
    assert fake.calls[0]["progress"] is True


# --- every shape yfinance has returned -----------------------------------------


@pytest.mark.parametrize(
    "shape",
    ["multi-one-ticker", "tz-aware", "ticker-price", "flat", "adj-close-only", "failed-ticker-has-adj-close"],
)
def test_download_shapes(monkeypatch, tmp_path, shape):
    aaa, bbb = series(10.0), series(20.0)
    days = (aaa.index >= "2024-01-01") & (aaa.index <= "2024-01-31")
    aaa, bbb = aaa[days], bbb[days]
    tickers = ["AAA"] if shape in ("multi-one-ticker", "flat", "adj-close-only") else ["AAA", "BBB"]
    if shape == "tz-aware":
        frame = download_frame({"AAA": history(aaa), "BBB": history(bbb, "America/Chicago")}, ignore_tz=False)
        assert frame.index.tz is not None
    elif shape == "ticker-price":
        frame = download_frame({"AAA": history(aaa), "BBB": history(bbb)})
        frame.columns = frame.columns.swaplevel(0, 1)  # group_by="ticker"
    elif shape == "flat":
        frame = history(aaa).tz_localize(None)  # multi_level_index=False, or releases before 0.2.48
    elif shape == "adj-close-only":
        frame = download_frame({"AAA": history(aaa).rename(columns={"Close": "Adj Close"})})
    elif shape == "failed-ticker-has-adj-close":
        frame = download_frame({"AAA": history(aaa), "BBB": None})  # failures come as empty_df()
        assert ("Adj Close", "BBB") in frame.columns
        tickers = ["AAA", "BBB"]
    else:
        frame = download_frame({"AAA": history(aaa)})
    monkeypatch.setattr(yfinance, "download", lambda *args, **kwargs: frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a failed ticker warns after its retries
        data = YahooSource(cache_dir=tmp_path, retries=0).load(tickers, *JAN)
    present = [t for t in tickers if t not in data.missing]
    assert_contract(data.closes, present)
    np.testing.assert_allclose(data.closes["AAA"], aaa.to_numpy())
    assert (data.closes.index == aaa.index).all()
    if shape == "failed-ticker-has-adj-close":
        assert data.missing == ("BBB",)


def test_all_empty_frame_shape(monkeypatch, tmp_path):
    frame = download_frame({"AAA": None, "BBB": None})
    assert frame.empty
    monkeypatch.setattr(yfinance, "download", lambda *args, **kwargs: frame)
    with pytest.raises(DownloadError, match="AAA, BBB"), pytest.warns(UserWarning, match="answered empty"):
        YahooSource(cache_dir=tmp_path).load(["AAA", "BBB"], *JAN)


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EVSTUDY_CACHE", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    assert YahooSource().cache_dir == tmp_path / "here"
    monkeypatch.delenv("EVSTUDY_CACHE")
    assert default_cache_dir().name.lower() == "evstudy"


def test_odd_tickers_round_trip_through_the_cache(fake, tmp_path):
    odd = ["^GSPC", "BRK-B", "BRK.B", "../X", "A/B"]
    for ticker in odd:
        fake.market[ticker] = series(50.0)
    data = YahooSource(cache_dir=tmp_path).load(odd, *JAN)
    assert list(data.closes.columns) == odd
    names = sorted(p.name for p in (tmp_path / "yahoo").glob("*.parquet"))
    assert names == sorted(cache_file_name(t) for t in odd)
    assert [p.name for p in tmp_path.iterdir()] == ["yahoo"]
    YahooSource(cache_dir=tmp_path, offline=True).load(odd, *JAN)
    assert len(fake.calls) == 1
