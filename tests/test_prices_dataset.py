"""The local index of a long price file (prices/dataset.py): same frames as the file, never stale."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evstudy.errors import DataSourceError, UnknownTickerError
from evstudy.prices import FileSource, dataset
from evstudy.prices.files import _frame, _Long

D = dt.date


@pytest.fixture(autouse=True)
def _index_small_files(monkeypatch):
    monkeypatch.setattr(dataset, "MIN_INDEX_BYTES", 0)


def long_file(path: Path, seed: int = 0, tickers: int = 30, days: int = 120, gaps: bool = True) -> Path:
    """A long Parquet file sorted by ticker, tickers listed and dated unevenly (some start late, some gaps)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2024-01-02", periods=days)
    parts = []
    for i in range(tickers):
        keep = np.ones(days, bool)
        if gaps:
            keep[: rng.integers(0, days // 2)] = i % 3 != 0  # every third ticker starts late
            keep &= rng.random(days) > 0.05
        closes = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, days)))
        parts.append(pd.DataFrame({"date": dates[keep], "ticker": f"T{i:02d}", "close": closes[keep]}))
    frame = pd.concat(parts, ignore_index=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def index_files(cache: Path) -> list[Path]:
    return sorted((cache / dataset.INDEX_DIR).glob("*.evidx"))


def direct(path: Path, tickers: list[str] | None, start: dt.date, end: dt.date) -> pd.DataFrame:
    """What the file's own reader returns, with the index out of the way."""
    first, last = (start - D(1970, 1, 1)).days, (end - D(1970, 1, 1)).days
    wide, columns = FileSource(path)._shape.pivot(tickers, first, last)
    return _frame(wide, columns)


def test_built_on_the_second_read_and_answers_like_the_file(tmp_path):
    cache = Path(os.environ["EVSTUDY_CACHE"])
    path = long_file(tmp_path / "long.parquet")
    FileSource(path).load(["T01"], D(2024, 1, 1), D(2024, 3, 1))
    assert index_files(cache) == []  # a one-off read does not pay for the build
    FileSource(path).load(["T01"], D(2024, 1, 1), D(2024, 3, 1))
    assert len(index_files(cache)) == 1
    assert dataset.open_index(path) is not None
    for tickers, start, end in [
        (["T03", "T01", "T29"], D(2024, 1, 1), D(2024, 12, 31)),
        (["T00"], D(2024, 1, 10), D(2024, 1, 20)),  # a late starter: no closes in range
    ]:
        got = FileSource(path).load(tickers, start, end).closes
        pd.testing.assert_frame_equal(got, direct(path, tickers, start, end), check_exact=True)
    with pytest.raises(DataSourceError, match="has no close between 2024-02-03 and 2024-02-03"):
        FileSource(path).load(["T05", "T06"], D(2024, 2, 3), D(2024, 2, 3))  # a Saturday: no rows, as the file says
    for start, end, min_rows in [(D(2024, 1, 1), D(2024, 12, 31), 0), (D(2024, 1, 5), D(2024, 2, 20), 20)]:
        got = FileSource(path).load_all(start, end, min_rows)
        reference = direct(path, None, start, end)
        counts = reference.notna().sum()
        reference = reference.loc[:, counts >= max(min_rows, 1)]
        reference = reference.loc[reference.notna().any(axis=1)]
        pd.testing.assert_frame_equal(got.closes, reference, check_exact=True)
    with pytest.raises(UnknownTickerError, match="'T99' not found"):
        FileSource(path).load(["T01", "T99"], D(2024, 1, 1), D(2024, 3, 1))


def test_load_all_notes_match_the_file(tmp_path):
    path = long_file(tmp_path / "long.parquet")
    first = FileSource(path).load_all(D(2024, 1, 5), D(2024, 2, 20), 25)  # direct, leaves the marker
    second = FileSource(path).load_all(D(2024, 1, 5), D(2024, 2, 20), 25)  # builds, then answers from the index
    assert dataset.open_index(path) is not None
    assert first.notes == second.notes and first.notes
    pd.testing.assert_frame_equal(first.closes, second.closes, check_exact=True)


def test_an_index_replaced_while_it_is_opened_is_read_from_one_version(tmp_path, monkeypatch):
    """Header, size and matrix come from one open file: another process replacing the index meanwhile (the
    same file rewritten, its index rebuilt) cannot pair this header with that matrix, which would be closes
    of another version under this version's tickers and days: numbers silently wrong."""
    cache = Path(os.environ["EVSTUDY_CACHE"])
    path = long_file(tmp_path / "long.parquet", seed=1, gaps=False)
    original, stat = path.read_bytes(), path.stat()
    for _ in range(2):
        FileSource(path).load(["T01"], D(2024, 1, 1), D(2024, 6, 1))
    [index_file] = index_files(cache)
    first = index_file.read_bytes()
    expected = np.array(dataset.open_index(path).closes)
    long_file(path, seed=2, gaps=False)  # same tickers and days, other closes: an index of the same shape
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    for _ in range(2):
        FileSource(path).load(["T01"], D(2024, 1, 1), D(2024, 6, 1))
    second = index_file.read_bytes()
    assert len(second) == len(first) and second != first
    path.write_bytes(original)  # back to the first version, and its index
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    index_file.write_bytes(first)

    real_loads = dataset.json.loads

    def header_then_replaced(text, *args, **kwargs):  # the other process's rename, right after the header
        replacement = index_file.with_suffix(".other")
        replacement.write_bytes(second)
        os.replace(replacement, index_file)
        monkeypatch.setattr(dataset.json, "loads", real_loads)
        return real_loads(text, *args, **kwargs)

    monkeypatch.setattr(dataset.json, "loads", header_then_replaced)
    index = dataset.open_index(path)
    assert index is not None
    np.testing.assert_array_equal(np.array(index.closes), expected)


def test_a_changed_file_is_never_answered_from_the_old_index(tmp_path):
    path = long_file(tmp_path / "long.parquet", seed=1)
    for _ in range(2):
        FileSource(path).load(["T01"], D(2024, 1, 1), D(2024, 6, 1))
    assert dataset.open_index(path) is not None
    long_file(path, seed=2)  # new closes, same path
    os.utime(path, ns=(1, 1))  # even if the clock were coarse, size or mtime differ
    assert dataset.open_index(path) is None
    got = FileSource(path).load(["T01"], D(2024, 1, 1), D(2024, 6, 1)).closes
    pd.testing.assert_frame_equal(got, direct(path, ["T01"], D(2024, 1, 1), D(2024, 6, 1)), check_exact=True)


def test_a_damaged_index_is_ignored(tmp_path):
    cache = Path(os.environ["EVSTUDY_CACHE"])
    path = long_file(tmp_path / "long.parquet")
    for _ in range(2):
        FileSource(path).load(["T01"], D(2024, 1, 1), D(2024, 6, 1))
    [index] = index_files(cache)
    index.write_bytes(index.read_bytes()[:-8])  # truncated
    assert dataset.open_index(path) is None
    got = FileSource(path).load(["T02"], D(2024, 1, 1), D(2024, 6, 1)).closes
    pd.testing.assert_frame_equal(got, direct(path, ["T02"], D(2024, 1, 1), D(2024, 6, 1)), check_exact=True)
    index.write_bytes(b"garbage")
    assert dataset.open_index(path) is None


def test_no_index_where_a_subset_read_could_differ(tmp_path, monkeypatch):
    original = dataset._build_from
    cache = Path(os.environ["EVSTUDY_CACHE"])
    path = tmp_path / "dups.parquet"
    frame = pd.DataFrame({
        "date": pd.to_datetime(["2024-01-02", "2024-01-02", "2024-01-03"]),
        "ticker": ["AAA", "AAA", "BBB"], "close": [1.0, 2.0, 3.0],
    })
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    builds = []
    monkeypatch.setattr(dataset, "_build_from", lambda *a: builds.append(1) or original(*a))
    for _ in range(4):
        data = FileSource(path).load(["AAA"], D(2024, 1, 1), D(2024, 1, 31))
    assert index_files(cache) == []  # duplicate dates: the note depends on the range asked for
    assert data.notes and data.closes["AAA"].iloc[0] == 2.0
    assert len(builds) == 1  # declined once for this version of the file, never retried


def test_a_file_the_whole_read_rejects_is_still_read_for_its_subset(tmp_path, monkeypatch):
    path = long_file(tmp_path / "long.parquet")

    def whole_file_fails(self, tickers, first, last):
        if tickers is None:
            raise DataSourceError("a bad row outside the range asked for")
        return pivot(self, tickers, first, last)

    pivot = _Long.pivot
    monkeypatch.setattr(_Long, "pivot", whole_file_fails)
    for _ in range(3):
        got = FileSource(path).load(["T01"], D(2024, 1, 1), D(2024, 6, 1)).closes
    assert dataset.open_index(path) is None
    monkeypatch.setattr(_Long, "pivot", pivot)
    pd.testing.assert_frame_equal(got, direct(path, ["T01"], D(2024, 1, 1), D(2024, 6, 1)), check_exact=True)


def test_nan_closes_keep_the_whole_market_read_on_the_file(tmp_path):
    path = tmp_path / "nan.parquet"
    frame = pd.DataFrame({
        "date": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-02"]),
        "ticker": ["AAA", "AAA", "BBB"], "close": [1.0, 2.0, np.nan],
    })
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    notes = [FileSource(path).load_all(D(2024, 1, 1), D(2024, 1, 31)).notes for _ in range(3)]
    index = dataset.open_index(path)
    assert index is not None and index.nan_rows
    assert notes[0] == notes[2] == ("1 ticker with fewer than 1 closes in 2024-01-01..2024-01-31 left out",)


def test_ensure_index_builds_at_once_for_long_files_only(tmp_path):
    path = long_file(tmp_path / "long.parquet")
    index = dataset.ensure_index(path)
    assert index is not None and index.tickers[:2] == ("T00", "T01")
    wide = tmp_path / "wide.csv"
    wide.write_text("date,AAA,BBB\n2024-01-02,1,2\n2024-01-03,1.5,2.5\n", encoding="utf-8")
    assert dataset.ensure_index(wide) is None


def test_a_file_with_names_that_are_not_tickers_keeps_its_note_on_every_read(tmp_path):
    """The index holds only ticker symbols, so a file that also holds other names is read directly each time
    and every read says which names it left out (issue 11: never a silent drop)."""
    path = long_file(tmp_path / "long.parquet", tickers=5)
    frame = pq.read_table(path).to_pandas()
    bad = frame[frame["ticker"] == "T01"].assign(ticker="=1+1")
    pq.write_table(pa.Table.from_pandas(pd.concat([frame, bad], ignore_index=True), preserve_index=False), path)
    reads = [FileSource(path).load_all(D(2024, 1, 1), D(2024, 12, 31)) for _ in range(3)]
    assert dataset.open_index(path) is None
    for data in reads:
        assert any("not a ticker symbol left out: '=1+1'" in note for note in data.notes)
        assert "=1+1" not in data.closes.columns


def test_a_file_with_nanosecond_dates_gets_an_index_too(tmp_path):
    """pandas writes timestamp[ns] dates, which cannot hold year 1 or 9999: the build reads the range they can hold."""
    path = long_file(tmp_path / "long.parquet")
    table = pq.read_table(path)
    column = table.schema.get_field_index("date")
    pq.write_table(table.set_column(column, pa.field("date", pa.timestamp("ns")),
                                    table.column("date").cast(pa.timestamp("ns"))), path)
    for _ in range(2):
        FileSource(path).load(["T01"], D(2024, 1, 1), D(2024, 3, 1))
    assert dataset.open_index(path) is not None
    got = FileSource(path).load(["T03", "T01"], D(2024, 1, 1), D(2024, 12, 31)).closes
    pd.testing.assert_frame_equal(got, direct(path, ["T03", "T01"], D(2024, 1, 1), D(2024, 12, 31)), check_exact=True)
