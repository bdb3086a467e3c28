"""FileSource: the three file shapes, their errors, and the real shared data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evstudy.errors import ConfigError, DataSourceError, UnknownTickerError
from evstudy.prices import FileSource, YahooSource, normalize_ticker, open_source

D = dt.date
JAN = (D(2024, 1, 1), D(2024, 1, 31))


def assert_contract(frame: pd.DataFrame, tickers: list[str]) -> None:
    """The PriceData.closes contract every source must meet."""
    assert list(frame.columns) == tickers
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "date"
    assert frame.index.tz is None
    assert (frame.index == frame.index.normalize()).all()
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert all(dtype == np.float64 for dtype in frame.dtypes)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


# --- normalize_ticker / open_source -----------------------------------------


def test_normalize_ticker_strips_and_uppercases():
    assert normalize_ticker("  brk-b ") == "BRK-B"
    assert normalize_ticker("^gspc") == "^GSPC"


@pytest.mark.parametrize("raw", ["", "   ", "BR K", "SP\tY", "A\x00B", "X\x1b", "A" * 33])
def test_normalize_ticker_rejects_and_names_the_value(raw):
    with pytest.raises(ConfigError) as info:
        normalize_ticker(raw)
    assert repr(raw) in str(info.value)


def test_open_source_picks_the_source(tmp_path):
    assert isinstance(open_source(None), YahooSource)
    assert isinstance(open_source(tmp_path), FileSource)
    with pytest.raises(DataSourceError, match="nowhere.parquet"):
        open_source(tmp_path / "nowhere.parquet")
    with pytest.raises(DataSourceError, match="empty"):
        open_source("")


# --- shape 1: a directory of per-ticker files ----------------------------------


@pytest.fixture
def ticker_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "coverage"
    folder.mkdir()
    write_csv(folder / "AAA.csv", """
Date,Close
2024-01-02,10.0
2024-01-03,11.0
2024-01-04,
2024-01-05,-1.0
2024-02-01,12.0
""")
    # both columns: the adjusted one wins; lower-case file name still matches
    write_csv(folder / "bbb.csv", """
Date,Close,Adj Close
2024-01-02,100,50
2024-01-03,102,51
""")
    pd.DataFrame(
        {"Date": pd.to_datetime(["2024-01-03", "2024-01-05"]), "Close": [7.0, 8.0]}
    ).to_parquet(folder / "CCC.parquet")
    (folder / "notes.txt").write_text("ignored")
    return folder


def test_directory_shape(ticker_dir):
    data = FileSource(ticker_dir).load(["CCC", "aaa", "BBB"], *JAN)
    assert data.source == "files" and data.location == str(ticker_dir)
    closes = data.closes
    assert_contract(closes, ["CCC", "AAA", "BBB"])
    assert list(closes.index.strftime("%Y-%m-%d")) == ["2024-01-02", "2024-01-03", "2024-01-05"]
    assert closes.loc["2024-01-02", "BBB"] == 50.0  # Adj Close preferred
    assert closes.loc["2024-01-05", "AAA"] == -1.0  # non-positive passed through
    assert np.isnan(closes.loc["2024-01-05", "BBB"])  # never forward-filled
    assert "2024-02-01" not in closes.index.strftime("%Y-%m-%d")  # outside [start, end]


def test_directory_reads_yfinance_multi_header_csv(tmp_path):
    write_csv(tmp_path / "MP.csv", """
Price,Close,High,Low,Open,Volume
Ticker,MP,MP,MP,MP,MP
Date,,,,,
2024-01-02,19.5,20,19,19.2,1000
2024-01-03,19.9,20,19,19.2,1000
""")
    closes = FileSource(tmp_path).load(["MP"], *JAN).closes
    assert closes["MP"].tolist() == [19.5, 19.9]


def test_directory_ambiguous_files(tmp_path):
    write_csv(tmp_path / "AAA.csv", "Date,Close\n2024-01-02,1\n")
    write_csv(tmp_path / "aaa.parquet", "not parquet")
    with pytest.raises(DataSourceError, match="ambiguous"):
        FileSource(tmp_path).load(["AAA"], *JAN)


def test_directory_duplicate_dates_keep_last_and_note(tmp_path):
    write_csv(tmp_path / "AAA.csv", "Date,Close\n2024-01-02,1\n2024-01-03,2\n2024-01-02,3\n")
    data = FileSource(tmp_path).load(["AAA"], *JAN)
    assert data.closes["AAA"].tolist() == [3.0, 2.0]
    assert any("duplicate dates for AAA (1)" in note for note in data.notes)


def test_directory_tz_aware_timestamps_keep_the_local_date(tmp_path):
    write_csv(tmp_path / "AAA.csv", """
Date,Close
2024-01-02 00:00:00-05:00,1
2024-07-02 00:00:00-04:00,2
""")
    closes = FileSource(tmp_path).load(["AAA"], D(2024, 1, 1), D(2024, 12, 31)).closes
    assert list(closes.index.strftime("%Y-%m-%d")) == ["2024-01-02", "2024-07-02"]


# --- shape 2: a long file ----------------------------------------------------


def long_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-02", "2024-01-03", "2024-01-04"]),
            "ticker": ["AAA", "AAA", "NA", "NA", "BRK.B"],
            "close": [1.0, 1.5, 20.0, 21.0, 400.0],
        }
    )


def test_long_csv(tmp_path):
    path = tmp_path / "long.csv"
    long_frame().rename(columns={"date": "Date", "ticker": "Ticker", "close": "Adj_Close"}).to_csv(path, index=False)
    closes = FileSource(path).load(["NA", "AAA", "brk.b"], *JAN).closes
    assert_contract(closes, ["NA", "AAA", "BRK.B"])  # the ticker "NA" is not a missing value
    assert closes.loc["2024-01-03", "NA"] == 21.0
    assert closes.loc["2024-01-04", "BRK.B"] == 400.0


def test_long_parquet_reads_only_the_row_groups_of_the_tickers_asked(tmp_path, monkeypatch):
    days = pd.bdate_range("2024-01-02", periods=10)
    frame = pd.DataFrame(
        {
            "date": np.tile(days, 3),
            "ticker": pd.Categorical(np.repeat(["AAA", "BBB", "CCC"], 10)),
            "close": np.arange(30, dtype=float),
        }
    )
    path = tmp_path / "long.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=10)
    read_groups = []
    real_read = pq.ParquetFile.read_row_groups

    def spy(self, row_groups, *args, **kwargs):
        read_groups.append(list(row_groups))
        return real_read(self, row_groups, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", spy)
    closes = FileSource(path).load(["BBB"], *JAN).closes
    assert closes["BBB"].tolist() == list(np.arange(10, 20, dtype=float))
    assert read_groups == [[1]]


def test_long_parquet_ticker_spelled_differently_and_no_rows_in_range(tmp_path):
    path = tmp_path / "long.parquet"
    frame = long_frame()
    frame.loc[frame.ticker == "AAA", "ticker"] = " aaa"
    frame.to_parquet(path)
    closes = FileSource(path).load(["AAA"], *JAN).closes
    assert closes["AAA"].tolist() == [1.0, 1.5]
    # issue 11: no close at all in the range is said at the source, with the dates it does hold
    with pytest.raises(DataSourceError, match=r"no close between 2025-01-01 and 2025-01-31, the dates the event "
                                              r"needs; its closes of these tickers run from 2024-01-02 to "):
        FileSource(path).load(["AAA", "NA"], D(2025, 1, 1), D(2025, 1, 31))


def test_long_duplicates_keep_last(tmp_path):
    path = write_csv(tmp_path / "long.csv", """
date,ticker,close
2024-01-02,AAA,1
2024-01-02,AAA,2
2024-01-03,AAA,3
""")
    data = FileSource(path).load(["AAA"], *JAN)
    assert data.closes["AAA"].tolist() == [2.0, 3.0]
    assert any("duplicate" in note and "AAA" in note for note in data.notes)


def test_long_load_all(tmp_path):
    path = tmp_path / "long.parquet"
    long_frame().to_parquet(path)
    data = FileSource(path).load_all(*JAN)
    assert_contract(data.closes, ["AAA", "BRK.B", "NA"])
    trimmed = FileSource(path).load_all(*JAN, min_rows=2)
    assert list(trimmed.closes.columns) == ["AAA", "NA"]
    assert any("fewer than 2 closes" in note for note in trimmed.notes)


# --- shape 3: a wide file ------------------------------------------------------


def test_wide_csv_with_first_column_as_dates(tmp_path):
    path = write_csv(tmp_path / "wide.csv", """
when,SPY,qqq
2024-01-02,470.0,400.0
2024-01-03,,401.0
2024-01-04,472.0,not-a-price-here-but-unused
""")
    with pytest.raises(DataSourceError, match="not-a-price"):
        FileSource(path).load(["QQQ"], *JAN)
    closes = FileSource(path).load(["SPY"], *JAN).closes
    assert_contract(closes, ["SPY"])
    assert closes["SPY"].tolist() == [470.0, 472.0]  # the all-NaN day is dropped, nothing filled


@pytest.mark.parametrize("index_name", ["date", None])
def test_wide_parquet_from_pandas(tmp_path, index_name):
    index = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-03"], name=index_name)
    frame = pd.DataFrame({"SPY": [1.0, 2.0, 2.5], "QQQ": [3.0, 4.0, 4.5]}, index=index)
    path = tmp_path / "wide.parquet"
    frame.to_parquet(path)
    data = FileSource(path).load(["QQQ", "SPY"], *JAN)
    assert_contract(data.closes, ["QQQ", "SPY"])
    assert data.closes.loc["2024-01-03"].tolist() == [4.5, 2.5]
    assert any("duplicate dates" in note for note in data.notes)
    assert list(FileSource(path).load_all(*JAN).closes.columns) == ["QQQ", "SPY"]


# --- errors --------------------------------------------------------------------


def test_unknown_ticker_lists_all_with_suggestions(tmp_path):
    path = tmp_path / "long.parquet"
    pd.DataFrame(
        {"date": pd.to_datetime(["2024-01-02"] * 4), "ticker": ["MP", "MPC", "SPY", "LAC"], "close": 1.0}
    ).to_parquet(path)
    with pytest.raises(UnknownTickerError) as info:
        FileSource(path).load(["SPY", "MPP", "ZZZZZZ"], *JAN)
    message = str(info.value)
    assert info.value.tickers == ["MPP", "ZZZZZZ"]
    assert str(path) in message and "4 tickers" in message
    assert "'MPP': did you mean MP, MPC?" in message
    assert "'ZZZZZZ': no close match" in message


def test_unknown_ticker_in_directory_and_wide(tmp_path, ticker_dir):
    with pytest.raises(UnknownTickerError, match=r"ticker 'AAB' not found in directory .*did you mean AAA"):
        FileSource(ticker_dir).load(["AAB"], *JAN)
    path = write_csv(tmp_path / "wide.csv", "Date,SPY\n2024-01-02,1\n")
    with pytest.raises(UnknownTickerError, match="did you mean SPY"):
        FileSource(path).load(["SPYY"], *JAN)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("nodate.csv", "ticker,close\nAAA,1\n", "no date column"),
        ("noclose.csv", "date,ticker,volume\n2024-01-02,AAA,1\n", "no close"),
        ("text.csv", "date,ticker,close\n2024-01-02,AAA,abc\n", "non-numeric prices 'abc'"),
        ("baddate.csv", "date,ticker,close\n2024-13-45,AAA,1\n", "unparseable dates '2024-13-45'"),
        ("single.csv", "Date,Close\n2024-01-02,1\n", "directory"),
        ("onlydates.csv", "Date\n2024-01-02\n", "no price columns"),
        ("empty.csv", "", "empty"),
        ("ragged.csv", "date,ticker,close\n2024-01-02,AAA,1,9\n", "cannot read"),
        ("broken.parquet", "this is not parquet", "cannot read Parquet"),
        (
            "export.csv",
            "Price,Close,Close\nTicker,AAA,BBB\nDate,,\n2024-01-02,1,2\n",
            "multi-ticker yfinance export",
        ),
        ("prices.xlsx", "whatever", "unsupported"),
    ],
)
def test_bad_files_raise_data_source_error_naming_the_file(tmp_path, name, content, expected):
    path = write_csv(tmp_path / name, content)
    with pytest.raises(DataSourceError) as info:
        FileSource(path).load(["AAA"], *JAN)
    assert not isinstance(info.value, UnknownTickerError)
    message = str(info.value)
    assert name in message and expected in message
    assert "accepted shapes" in message or "ambiguous" in message or "directory" in message


def test_bad_per_ticker_file_in_directory(tmp_path):
    write_csv(tmp_path / "AAA.csv", "Date,Open\n2024-01-02,1\n")
    with pytest.raises(DataSourceError, match="AAA.csv: no Close or Adj Close column"):
        FileSource(tmp_path).load(["AAA"], *JAN)


def test_start_after_end_is_a_config_error(ticker_dir):
    with pytest.raises(ConfigError):
        FileSource(ticker_dir).load(["AAA"], D(2024, 2, 1), D(2024, 1, 1))


# --- the real shared data --------------------------------------------------------

REAL = ["MP", "USAR", "LAC", "SPY"]
ANCHOR = {"MP": 0.213, "USAR": 0.186, "LAC": 0.126, "SPY": 0.015}
REAL_RANGE = (D(2021, 1, 1), D(2026, 7, 31))


@pytest.fixture(scope="module")
def real_market(market_parquet):
    return FileSource(market_parquet).load(REAL, *REAL_RANGE)


@pytest.mark.shared_data
def test_real_sanity_anchor_both_sources(coverage_dir, real_market):
    coverage = FileSource(coverage_dir).load(REAL, *REAL_RANGE)
    for data in (coverage, real_market):
        assert_contract(data.closes, REAL)
        window = data.closes.loc["2025-10-01":"2025-10-20"]
        day0 = window.pct_change().loc["2025-10-13"].round(3)
        assert day0.to_dict() == ANCHOR


@pytest.mark.shared_data
def test_real_market_equals_coverage_where_both_have_data(coverage_dir, real_market):
    coverage = FileSource(coverage_dir).load(REAL, *REAL_RANGE).closes
    market = real_market.closes
    for ticker in REAL:
        both = pd.concat([coverage[ticker], market[ticker]], axis=1, keys=["c", "m"]).dropna()
        assert len(both) > 500, ticker
        np.testing.assert_allclose(both["c"], both["m"], rtol=1e-12, err_msg=ticker)


@pytest.mark.shared_data
def test_real_market_fifty_tickers_and_suggestions(market_parquet):
    universe = pq.read_table(market_parquet, columns=["ticker"]).column("ticker").unique()
    names = universe.dictionary_decode().to_pylist() if pa.types.is_dictionary(universe.type) else universe.to_pylist()
    fifty = sorted(names)[::250][:50]
    data = FileSource(market_parquet).load(fifty, *REAL_RANGE)
    assert list(data.closes.columns) == [normalize_ticker(n) for n in fifty]
    with pytest.raises(UnknownTickerError, match=r"ticker 'MPP' not found in .*\(12,426 tickers\); did you mean MP,"):
        FileSource(market_parquet).load(["MPP"], *REAL_RANGE)


@pytest.mark.shared_data
def test_real_market_load_all(market_parquet, real_market):
    data = FileSource(market_parquet).load_all(D(2025, 1, 1), D(2025, 12, 31), min_rows=200)
    assert_contract(data.closes, sorted(data.closes.columns))
    assert 5_000 < data.closes.shape[1] < 12_426
    assert (data.closes.notna().sum() >= 200).all()
    expected = real_market.closes.loc["2025"]
    pd.testing.assert_frame_equal(data.closes.loc[expected.index, REAL], expected, check_freq=False)


def test_zoned_parquet_timestamps_are_placed_on_new_york_days(tmp_path):
    """Issue 11: a close stamped 16:00 New York is 05:00 the next day in Tokyo; it stays on its own trading day."""
    closes_at = pd.DatetimeIndex(["2024-01-02 16:00", "2024-01-03 16:00", "2024-01-04 16:00"])
    tokyo = closes_at.tz_localize("America/New_York").tz_convert("Asia/Tokyo")
    path = tmp_path / "tokyo.parquet"
    pd.DataFrame({"date": tokyo, "ticker": "AAA", "close": [1.0, 2.0, 3.0]}).to_parquet(path)
    closes = FileSource(path).load(["AAA"], *JAN).closes
    assert list(closes.index.strftime("%Y-%m-%d")) == ["2024-01-02", "2024-01-03", "2024-01-04"]
    assert closes["AAA"].tolist() == [1.0, 2.0, 3.0]


@pytest.mark.shared_data
def test_day_first_export_gives_mps_own_day0_car(coverage_dir, tmp_path):
    """Issue 11: MP and SPY re-saved as dd/mm/yyyy give the ISO files' day-0 CAR (19.2%), not a swapped-date 68.7%."""
    from click.testing import CliRunner

    from evstudy.cli import cli

    cars = {}
    for style, fmt in (("iso", "%Y-%m-%d"), ("dmy", "%d/%m/%Y")):
        folder = tmp_path / style
        folder.mkdir()
        for ticker in ("MP", "SPY"):
            frame = pd.read_csv(coverage_dir / f"{ticker}.csv", parse_dates=["Date"])
            frame.assign(Date=frame["Date"].dt.strftime(fmt)).to_csv(folder / f"{ticker}.csv", index=False)
        result = CliRunner().invoke(cli, ["run", "--event", "2025-10-13:before_open", "--tickers", "MP", "--prices",
                                          str(folder), "--out", str(tmp_path / f"out-{style}"), "--placebo", "0"])
        assert result.exit_code == 0, result.stderr
        table = pd.read_csv(tmp_path / f"out-{style}" / "cars.csv")
        cars[style] = float(table.query("window_start == 0 and window_end == 0")["car"].iloc[0])
    assert cars["dmy"] == pytest.approx(cars["iso"], abs=1e-12)
    assert 0.15 < cars["iso"] < 0.25
