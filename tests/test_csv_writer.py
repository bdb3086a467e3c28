"""The study's CSVs, encoded by Arrow: pandas' text (table_csv) but for how a float is spelled, every float read back bit for bit."""

from __future__ import annotations

import csv
import io
import math
import struct

import numpy as np
import pandas as pd
import pytest

import evstudy.report.files as files
from evstudy.compare import COMPARISON_COLUMNS
from evstudy.report.files import ArrowCsv, csv_sources, encode_csvs, write_outputs
from evstudy.report.writing import table_csv
from evstudy.results import AR_COLUMNS, CAR_COLUMNS, TEST_COLUMNS

BASE = {
    "event": pd.Series(["jpm", "jpm", "e2"], dtype="str"),
    "ticker": pd.Series(["MP", None, "ÉTÉ"], dtype="str"),
    "date": pd.to_datetime(["2025-10-13 00:00", None, "1969-12-31 15:00"]),
    "rel_day": [-10, 0, 5],
    "car": [0.0123, math.nan, -0.0],
    "t": [math.inf, -math.inf, 1e-05],
    "big": [1e16, 123456789012345680.0, 5e-324],
    "flag": [True, False, True],
    "label": np.array(["a", "b c", ""], dtype=object),
}
EXTREMES = [
    0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
    -1.7976931348623157e308, 1e-7, 1e-5, 1e16, 1e22, 0.1, 1 / 3, 123456789012345680.0, 1.0, -2.0, 9007199254740993.0,
]


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def encoded(frame: pd.DataFrame, date_format: str | None = None) -> bytes:
    return files.encode_csvs({"x": files._csv_source(frame, date_format)})["x"]


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def assert_same_cells(new: bytes, old: str, frame: pd.DataFrame) -> None:
    """``new`` has ``old``'s cells; a float cell may be spelled otherwise, but reads back as the same double."""
    new_rows, old_rows = rows(new.decode("utf-8")), rows(old)
    assert len(new_rows) == len(old_rows) and new_rows[0] == old_rows[0]
    floats = [frame[name].dtype == np.float64 for name in frame.columns]
    for new_row, old_row in zip(new_rows[1:], old_rows[1:]):
        assert len(new_row) == len(old_row)
        for is_float, a, b in zip(floats, new_row, old_row):
            if is_float and a and b:
                assert bits(float(a)) == bits(float(b)) or (math.isnan(float(a)) and math.isnan(float(b))), (a, b)
            else:
                assert a == b


@pytest.mark.parametrize("change", [
    {},
    {"ticker": pd.Series(["=HYPERLINK(1)", "+1", "-x"], dtype="str")},  # formula cells neutralized first
    {"label": np.array(["a,b", "q", "r"], dtype=object)},  # cells to quote
    {"label": np.array(['say "x"', "q", "r"], dtype=object)},
    {"label": pd.Series(['a "b", c', '"', ", "], dtype="str")},
    {"label": np.array([' "x" ', "a,,b", ' " '], dtype=object)},
    {"label": np.array(["line\nbreak", "q", "r"], dtype=object)},  # to pandas
    {"label": np.array([1, "q", None], dtype=object)},  # not text: pandas
    {"label": np.array(["a\x1eb", "q", "r"], dtype=object)},  # holds a stand-in: pandas
    {"car": np.array([0.5, 1.5, 2.5], dtype=np.float32)},
    {"rel_day": pd.array([1, None, 3], dtype="Int64")},
    {"date": pd.to_datetime(["2025-10-13", "2025-10-14", "2025-10-15"]).tz_localize("UTC")},
])
@pytest.mark.parametrize("date_format", [None, "%Y-%m-%d"])
def test_arrow_csv_has_table_csvs_cells(change, date_format):
    frame = pd.DataFrame({**BASE, **change})
    old = table_csv(frame, **({"date_format": date_format} if date_format else {}))
    new = encoded(frame, date_format)
    assert_same_cells(new, old, frame)
    if ArrowCsv.of(frame, date_format=date_format) is None:  # handed to pandas: its very text
        assert new == old.encode("utf-8")


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"a": [1.5, 2.5]}), pd.DataFrame({"a": [], "b": []}), pd.DataFrame({"a,b": [1.0], "c": [2.0]}),
    pd.DataFrame({"a": ["", None]}),
])
def test_empty_one_column_and_quoted_name_tables_are_pandas_text(frame):
    assert ArrowCsv.of(frame) is None
    assert encoded(frame) == table_csv(frame).encode("utf-8")


def test_plain_and_quoted_text_tables_are_encoded_by_arrow(monkeypatch):
    frame = pd.DataFrame({**BASE, "note": pd.Series(['a "b", c', "", None], dtype="str")})
    monkeypatch.setattr(files, "table_csv", lambda *a, **k: pytest.fail("handed to pandas"))
    text = encoded(frame, "%Y-%m-%d").decode("utf-8")
    assert text.splitlines()[1] == 'jpm,MP,2025-10-13,-10,0.0123,inf,1e+16,True,a,"a ""b"", c"'
    assert text.splitlines()[2] == "jpm,,,0,,-inf,1.2345678901234568e+17,False,b c,"
    assert text.splitlines()[3].startswith("e2,ÉTÉ,1969-12-31,5,-0,0.00001,5e-324,True,,")


def test_every_float_reads_back_bit_for_bit():
    rng = np.random.default_rng(5)
    values = np.concatenate([EXTREMES, rng.standard_normal(20_000) * 10.0 ** rng.integers(-300, 300, 20_000)])
    frame = pd.DataFrame({"x": values, "y": values[::-1].copy(), "t": "a,b"})
    text = ArrowCsv.of(frame).encode().decode("utf-8")
    read = rows(text)
    assert read[0] == ["x", "y", "t"] and len(read) == len(values) + 1
    for position, name in enumerate(["x", "y"]):
        cells = [row[position] for row in read[1:]]
        back = np.array([float(cell) if cell else math.nan for cell in cells])
        expected = frame[name].to_numpy()
        assert all(cell == "" for cell, value in zip(cells, expected) if math.isnan(value))  # NaN: an empty cell
        finite_or_inf = ~np.isnan(expected)
        assert np.array_equal(back[finite_or_inf].view(np.int64), expected[finite_or_inf].view(np.int64))
    assert {row[2] for row in read[1:]} == {"a,b"}


def test_the_jpm_studys_csvs_read_back_as_its_frames(market_parquet, tmp_path):
    import evstudy

    results = evstudy.run_study("configs/jpm-sri-2025.toml", prices=market_parquet)
    data = encode_csvs(csv_sources(results))
    assert "comparisons.csv" in data
    for name, frame, columns in [
        ("abnormal_returns.csv", results.abnormal_returns, AR_COLUMNS),
        ("cars.csv", results.cars, CAR_COLUMNS),
        ("tests.csv", results.tests, TEST_COLUMNS),
        ("comparisons.csv", results.extras["comparisons"].pairs, COMPARISON_COLUMNS),
    ]:
        assert isinstance(csv_sources(results)[name], ArrowCsv)
        read = pd.read_csv(io.BytesIO(data[name]), keep_default_na=False, na_values=[""])
        for column in columns:
            if frame[column].dtype == np.float64:
                expected, back = frame[column].to_numpy(), read[column].to_numpy(dtype=np.float64)
                assert np.array_equal(np.isnan(back), np.isnan(expected)), (name, column)
                kept = ~np.isnan(expected)
                assert np.array_equal(back[kept].view(np.int64), expected[kept].view(np.int64)), (name, column)
    assert data["abnormal_returns.csv"].decode().splitlines()[1].split(",")[3] == str(results.abnormal_returns["date"].iloc[0].date())


def test_an_encoding_error_in_the_thread_is_raised_and_nothing_is_written(market_parquet, tmp_path, monkeypatch):
    import evstudy

    results = evstudy.run_study("configs/jpm-sri-2025.toml", prices=market_parquet)
    out = tmp_path / "out"
    write_outputs(results, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(self):
        raise OSError("Arrow could not encode")

    monkeypatch.setattr(ArrowCsv, "encode", fail)
    with pytest.raises(OSError, match="Arrow could not encode"):
        write_outputs(results, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
