"""Per-event rows as column arrays, joined into one frame per table (evstudy.tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evstudy.tables import Repeated, Rows, stack

COLUMNS = ["event", "n", "x", "day", "when"]


def _part(event: str, n: int) -> Rows:
    return Rows.of(COLUMNS, n, {"event": event, "n": 3, "x": np.arange(n) / 2, "day": pd.Timestamp("2025-10-13").as_unit("ns"),
                                "when": np.full(n, np.datetime64("2025-10-14", "ns"))})


def test_scalars_repeat_with_the_dtype_a_frame_would_give_them():
    frame = stack([_part("e1", 2)], COLUMNS)
    expected = pd.DataFrame({"event": "e1", "n": 3, "x": [0.0, 0.5], "day": pd.Timestamp("2025-10-13").as_unit("ns"),
                             "when": pd.Timestamp("2025-10-14").as_unit("ns")}, columns=COLUMNS)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)


def test_stacking_equals_concatenating_frames_and_an_empty_event_keeps_the_dtypes():
    parts = [_part("e1", 2), Rows.empty(COLUMNS), _part("e3", 3)]
    joined = stack(parts, COLUMNS)
    frames = [stack([p], COLUMNS) for p in (parts[0], parts[2])]
    pd.testing.assert_frame_equal(joined, pd.concat(frames, ignore_index=True), check_exact=True)
    assert joined["x"].dtype == np.float64 and joined["when"].dtype == "datetime64[ns]"


def test_no_rows_at_all_give_an_empty_frame_with_the_columns():
    frame = stack([Rows.empty(COLUMNS), Rows.empty(COLUMNS)], COLUMNS)
    assert list(frame.columns) == COLUMNS and frame.empty


def test_repeated_texts_stack_to_the_frame_of_text_arrays():
    """Texts kept as one value per part give the same frame (values and dtype) as a Python string per row,
    alone or next to parts that hold them as arrays."""
    def part(event: str, n: int, repeat: bool) -> Rows:
        return Rows.of(COLUMNS, n, {"event": event, "n": 3, "x": np.arange(n) / 2,
                                    "day": pd.Timestamp("2025-10-13").as_unit("ns"),
                                    "when": np.full(n, np.datetime64("2025-10-14", "ns"))}, repeat_text=repeat)

    plain = stack([part("e1", 2, False), Rows.empty(COLUMNS), part("e2", 3, False)], COLUMNS)
    repeated = stack([part("e1", 2, True), Rows.empty(COLUMNS), part("e2", 3, True)], COLUMNS)
    mixed = stack([part("e1", 2, True), part("e2", 3, False)], COLUMNS)
    assert isinstance(part("e1", 2, True).columns["event"], Repeated) and len(part("e1", 2, True)) == 2
    pd.testing.assert_frame_equal(repeated, plain, check_exact=True)
    pd.testing.assert_frame_equal(mixed, plain, check_exact=True)
    assert repeated["event"].tolist() == ["e1", "e1", "e2", "e2", "e2"]
