"""The column-by-column CSV writer gives pandas' text (table_csv) for every table, or hands the table to pandas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evstudy.report.files import fast_table_csv
from evstudy.report.writing import table_csv

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


@pytest.mark.parametrize("change", [
    {},
    {"ticker": pd.Series(["=HYPERLINK(1)", "+1", "-x"], dtype="str")},  # formula cells neutralized first
    {"label": np.array(["a,b", "q", "r"], dtype=object)},  # a cell to quote: pandas writes it
    {"label": np.array(['say "x"', "q", "r"], dtype=object)},
    {"label": pd.Series(['a "b", c', '"', ", "], dtype="str")},
    {"label": np.array([' "x" ', "a,,b", ' " '], dtype=object)},
    {"label": np.array(["line\nbreak", "q", "r"], dtype=object)},
    {"label": np.array([1, "q", None], dtype=object)},  # not text: pandas
    {"car": np.array([0.5, 1.5, 2.5], dtype=np.float32)},
    {"rel_day": pd.array([1, None, 3], dtype="Int64")},
    {"date": pd.to_datetime(["2025-10-13", "2025-10-14", "2025-10-15"]).tz_localize("UTC")},
])
@pytest.mark.parametrize("date_format", [None, "%Y-%m-%d"])
def test_fast_csv_is_table_csv(change, date_format):
    frame = pd.DataFrame({**BASE, **change})
    kwargs = {"date_format": date_format} if date_format else {}
    assert fast_table_csv(frame, date_format=date_format) == table_csv(frame, **kwargs)


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"a": [1.5, 2.5]}), pd.DataFrame({"a": [], "b": []}), pd.DataFrame({"a,b": [1.0], "c": [2.0]}),
    pd.DataFrame({"a": ["", "x"], "b": [1, 2]}),
])
def test_edge_tables(frame):
    assert fast_table_csv(frame) == table_csv(frame)


def test_random_floats_keep_pandas_digits():
    rng = np.random.default_rng(5)
    values = rng.standard_normal(20_000) * 10.0 ** rng.integers(-30, 30, 20_000)
    frame = pd.DataFrame({"x": values, "y": values[::-1].copy()})
    assert fast_table_csv(frame) == table_csv(frame)


def test_plain_tables_do_not_go_through_pandas(monkeypatch):
    import evstudy.report.files as files

    expected = table_csv(pd.DataFrame(BASE), date_format="%Y-%m-%d")
    monkeypatch.setattr(files, "table_csv", lambda *a, **k: pytest.fail("handed to pandas"))
    assert fast_table_csv(pd.DataFrame(BASE), date_format="%Y-%m-%d") == expected


def test_text_with_commas_and_quotes_is_quoted_here_not_by_pandas(monkeypatch):
    import evstudy.report.files as files

    frame = pd.DataFrame({**BASE, "note": pd.Series(['a "b", c', "", "x,y"], dtype="str")})
    expected = table_csv(frame, date_format="%Y-%m-%d")
    monkeypatch.setattr(files, "table_csv", lambda *a, **k: pytest.fail("handed to pandas"))
    assert fast_table_csv(frame, date_format="%Y-%m-%d") == expected
