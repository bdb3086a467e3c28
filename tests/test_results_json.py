"""results.json: orjson's text loads back to what json.dumps(indent=2, allow_nan=False) wrote (same keys, same
order, floats bit for bit) and json's errors are kept; records() cleans every column type as the cell-by-cell
rule does."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pandas as pd
import pytest

from evstudy.report.files import FrameTable, json_bytes, results_json
from evstudy.results import _clean, cleans_to_finite, column_table, records


def _stdlib(value):
    return json.dumps(value, indent=2, allow_nan=False, ensure_ascii=False)


def _assert_same_content(old, new, path="$"):
    """Equal after json.loads, with the same key order, the same types and every float bit for bit."""
    assert type(old) is type(new), path
    if isinstance(old, dict):
        assert list(old) == list(new), path
        for key in old:
            _assert_same_content(old[key], new[key], f"{path}.{key}")
    elif isinstance(old, list):
        assert len(old) == len(new), path
        for index, (a, b) in enumerate(zip(old, new)):
            _assert_same_content(a, b, f"{path}[{index}]")
    elif isinstance(old, float):
        assert struct.pack("<d", old) == struct.pack("<d", new), (path, old, new)
    else:
        assert old == new, path


def _assert_loads_as_stdlib(value, table_as=None):
    _assert_same_content(json.loads(_stdlib(value if table_as is None else table_as)), json.loads(json_bytes(value)))


TEXT = ['é"\\\n\u2028%s', "</script><script>alert('x')</script>", "tab\tnul\x00\x1f\x7f", "😀 \ud7ff \ufeff", "", "a, b"]
TABLE = [
    {"ticker": "MP", "car": 0.0123, "n": 3, "note": None, "flag": True, "tiny": 1e-05, "zero": -0.0},
    {"ticker": TEXT[0], "car": -1.5e300, "n": -7, "note": TEXT[1], "flag": False, "tiny": 5e-324, "zero": 0.0},
]


@pytest.mark.parametrize("value", [
    {"version": "1.0", "tables": TABLE, "empty": [], "nothing": {}, "notes": TEXT, "numbers": [1, 2.5, None, True]},
    {"nested": [[1, 2], {"k": [{"q": 1}]}, (3, "x")], "int keys": {1: "a", "b": 2}, "float": 1e16, "big": 10**30},
    {"ragged": [{"a": 1}, {"b": 2}], "cells holding lists": [{"n": [1, 2]}], "percent key": [{"%d": 1.0}]},
    {"one row": [{"a": "x"}], "deep": {"deeper": {"table": TABLE}}, "64 bits": [2**63 - 1, -(2**63), 2**64 - 1]},
    {"floats": [1e-7, 1e-5, 1e-4, 0.1, 1e15, 1e16, 1e22, 1.7976931348623157e308, -2.2250738585072014e-308, -0.0]},
    {"overflowing sum": [1.7976931348623157e308, 1.7976931348623157e308], "ints": [10**400, 1.5]},
    {TEXT[1]: TEXT, "é": {"\x00": 1}}, {"subclasses": [np.float64(0.25), np.bool_(True).item(), 2]},
    [TABLE, TABLE], "text", 3.25, None, [], {},
])
def test_json_bytes_load_as_json_dumps_text(value):
    _assert_loads_as_stdlib(value)


def test_json_bytes_indent_as_json_dumps_where_the_numbers_are_spelled_alike():
    value = {"t": [{"a": 1, "b": "x", "c": [1, {"d": None}], "e": {}, "f": []}], "g": 0.5}
    assert json_bytes(value).decode() == _stdlib(value)


@pytest.mark.parametrize("value", [
    {"t": [{"x": 1.0}, {"x": math.nan}]}, {"t": [1.0, math.inf]}, {"t": -math.inf}, {"t": [{"x": object()}]},
    {"t": [{"x": np.int64(3)}]}, {"t": ["text", -math.inf]}, {"t": (1, (2, math.nan))}, {"t": {"u": math.nan}},
    {"t": [np.float64("nan")]}, {(1, 2): 3}, {"t": [{1.5}]},
    {"t": [{"name": "a", "x": 1.0, "n": 2, "ok": True}, {"name": "b", "x": math.nan, "n": None, "ok": False}]},
    {"t": [{"name": "a", "x": [1.0, math.inf]}]},
    {"t": ["a", 1.7976931348623157e308, 1.7976931348623157e308, math.nan]},
])
def test_json_bytes_refuse_what_json_dumps_refuses_with_its_message(value):
    with pytest.raises((ValueError, TypeError)) as expected:
        _stdlib(value)
    with pytest.raises(expected.type, match=str(expected.value).replace("(", r"\(").replace(")", r"\)")):
        json_bytes(value)


def test_a_table_with_every_awkward_value_loads_as_json_dumps_of_its_records():
    """NaN and ±inf become null (records' rule), the rest keep their value: -0.0, subnormals, huge ints, text."""
    frame = pd.DataFrame({
        "x": [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1e-7, 1.7976931348623157e308, 0.1],
        "n": [2**63 - 1, -(2**63), 0, 1, -1, 10**18, 7, 8],
        "big": [10**30, None, 1, 2, 3, 4, 5, 6],
        "text": [*TEXT, None, "x"],
        "flag": [True, False, True, False, True, False, True, False],
    })
    table = column_table(frame)
    _assert_loads_as_stdlib({"t": table}, table_as={"t": records(frame)})
    assert json.loads(json_bytes({"t": table}))["t"][0]["x"] is None


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
    assert column_table(frame).records() == records(frame)
    _assert_loads_as_stdlib({"t": column_table(frame)}, table_as={"t": records(frame)})


@pytest.mark.shared_data
def test_the_jpm_studys_results_json_loads_as_json_dumps_of_its_dict(market_parquet):
    import evstudy

    results = evstudy.run_study("configs/jpm-sri-2025.toml", prices=market_parquet)
    written = results_json(results)
    _assert_same_content(json.loads(_stdlib(results.to_dict())), json.loads(written))
    assert written.count(b"\n") == _stdlib(results.to_dict()).count("\n")  # one value a line, as json indents


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"x": [math.nan, math.inf, 0.5], "n": [1, 2, 3], "s": pd.Series(["a", None, "b"], dtype="str"),
                  "d": pd.to_datetime(["2025-10-13 00:00", None, "2025-10-14 09:30"]), "b": [True, False, True]}),
    pd.DataFrame({"x": [1.5, 2.5], "lists": [[1.0, 2.0], None]}),
    pd.DataFrame({"a": [1.5, 2.0]}).iloc[:0],
])
def test_a_frame_table_is_written_as_the_column_table_of_its_frame(frame):
    assert json_bytes({"t": FrameTable(frame)}) == json_bytes({"t": column_table(frame)})
    _assert_loads_as_stdlib({"t": FrameTable(frame)}, table_as={"t": records(frame)})


def test_only_columns_of_python_objects_can_hold_a_nan_after_cleaning():
    typed = pd.DataFrame({"x": [math.nan, -math.inf], "s": pd.Series(["a", None], dtype="str"), "n": [1, 2],
                          "d": pd.to_datetime(["2025-10-13", None]), "b": [True, False]})
    assert cleans_to_finite(typed)
    nested = pd.DataFrame({"x": [1.0, 2.0], "lists": [[1.0, math.nan], None]})
    assert not cleans_to_finite(nested)
    for table in (FrameTable(nested), column_table(nested)):  # the NaN inside a cell's list is refused, as json does
        with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
            json_bytes({"t": table})
