"""results.json: the fast writer gives json.dumps' text (indent 2, no NaN, UTF-8) and its errors; records() cleans
every column type as the cell-by-cell rule does."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from evstudy.report.files import json_text
from evstudy.results import _clean, records


def _stdlib(value):
    return json.dumps(value, indent=2, allow_nan=False, ensure_ascii=False)


TABLE = [
    {"ticker": "MP", "car": 0.0123, "n": 3, "note": None, "flag": True, "tiny": 1e-05, "zero": -0.0},
    {"ticker": "é\"\\\n\u2028%s", "car": -1.5e300, "n": -7, "note": "a, b", "flag": False, "tiny": 5e-324, "zero": 0.0},
]


@pytest.mark.parametrize("value", [
    {"version": "1.0", "tables": TABLE, "empty": [], "nothing": {}, "notes": ["x", "y, z"], "numbers": [1, 2.5, None, True]},
    {"nested": [[1, 2], {"k": [{"q": 1}]}, (3, "x")], "int keys": {1: "a", "b": 2}, "float": 1e16, "big": 10**30},
    {"ragged": [{"a": 1}, {"b": 2}], "cells holding lists": [{"n": [1, 2]}], "percent key": [{"%d": 1.0}]},
    {"one row": [{"a": "x"}], "deep": {"deeper": {"table": TABLE}}},
    [TABLE, TABLE], "text", 3.25, None, [],
])
def test_json_text_is_json_dumps_text(value):
    assert json_text(value) == _stdlib(value)


@pytest.mark.parametrize("value", [
    {"t": [{"x": 1.0}, {"x": math.nan}]}, {"t": [1.0, math.inf]}, {"t": -math.inf}, {"t": [{"x": object()}]},
    {"t": [{"x": np.int64(3)}]},
])
def test_json_text_refuses_what_json_dumps_refuses_with_its_message(value):
    with pytest.raises((ValueError, TypeError)) as expected:
        _stdlib(value)
    with pytest.raises(expected.type, match=str(expected.value).replace("(", r"\(").replace(")", r"\)")):
        json_text(value)


def test_records_clean_each_column_type_as_the_cell_rule():
    frame = pd.DataFrame({
        "str": pd.Series(["a", None, "é"], dtype="str"),
        "string": pd.Series(["x", "y", None], dtype="string"),
        "days": pd.to_datetime(["2025-10-13", None, "2024-02-29"]),
        "intraday": pd.to_datetime(["2025-10-13 09:30", "2025-10-14 00:00", None]),
        "float": [1.5, math.nan, math.inf],
        "int": [1, 2, 3],
        "bool": [True, False, True],
        "nullable": pd.array([1, None, 3], dtype="Int64"),
        "object": [[1, 2], None, "text"],
    })
    expected = [
        {name: _clean(value.item() if isinstance(value, np.generic) else value) for name, value in row.items()}
        for row in (dict(zip(frame.columns, values)) for values in zip(*(frame[c].tolist() for c in frame.columns)))
    ]
    assert records(frame) == expected
    assert records(frame)[1]["days"] is None and records(frame)[0]["days"] == "2025-10-13"
    assert records(frame)[0]["intraday"] == "2025-10-13T09:30:00" and records(frame)[1]["intraday"] == "2025-10-14"


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"a": [1.5, None], "b": ["x", "y"]}),
    pd.DataFrame({"a": [1.5, 2.0]}).iloc[:0],
    pd.DataFrame(index=range(2)),
    pd.DataFrame([[1, 2]], columns=["a", "a"]),
    pd.DataFrame({1: [1.0], "b": [[1, 2]]}),
    pd.DataFrame({"a": [math.nan]}),
])
def test_a_column_table_is_written_as_its_records(frame):
    from evstudy.results import column_table

    assert column_table(frame).records() == records(frame)
    assert json_text({"t": column_table(frame)}) == _stdlib({"t": records(frame)})
