"""One filtered read of a price file: only the tickers and dates a request needs.

A long Parquet file (date, ticker, close) is read by row group: the groups
whose ticker statistics can hold a wanted ticker, the three columns only, and
the rows outside [start, end] or of other tickers are dropped in numpy before
the pivot (cheaper than an Arrow filter expression over millions of rows;
measured in benchmarks/README.md). Other shapes (CSV, wide files, folders)
go through :meth:`FileSource.load_all` and keep the wanted columns.

Unlike :meth:`FileSource.load`, a ticker the file does not hold is not an
error here: a request file of thousands of rows lists such rows in
excluded.csv and carries on, so the caller sees them as absent columns.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence

import numpy as np
import pyarrow.parquet as pq

from evstudy.prices.base import PriceData
from evstudy.prices.files import (
    FileSource, _check_range, _codes, _day_number, _days, _duplicate_note, _floats, _frame, _Long, _normalize_used,
    _pivot,
)


def load_closes(path: str | os.PathLike[str], tickers: Sequence[str], start: dt.date, end: dt.date) -> PriceData:
    """Closes of those ``tickers`` that ``path`` holds with at least one close in [start, end].

    Columns keep the order of ``tickers``; tickers without a close in the
    range are left out (the caller reports them).
    """
    _check_range(start, end)
    wanted = list(dict.fromkeys(tickers))
    source = FileSource(path)
    shape = source._shape
    if isinstance(shape, _Long) and shape.file.parquet is not None:
        file = shape.file
        groups = file.row_groups(shape.ticker, wanted)
        parquet = pq.ParquetFile(file.path)
        columns = [shape.date, shape.ticker, shape.value]
        table = parquet.read_row_groups(groups, columns=columns) if groups is not None else parquet.read(columns=columns)
        codes, raw_names = _codes(table.column(shape.ticker))
        position = {name: i for i, name in enumerate(wanted)}
        col_of_code = np.array([position.get(n, -1) for n in _normalize_used(codes, raw_names)] + [-1], dtype=np.int64)
        days = _days(table.column(shape.date), f"{file.path}, column {shape.date!r}")
        values = _floats(table.column(shape.value), f"{file.path}, column {shape.value!r}")
        del table
        wide = _pivot(days, col_of_code[codes], values, len(wanted), _day_number(start), _day_number(end))
        notes = _duplicate_note(wide, wanted, str(file.path))
        frame = _frame(wide, wanted)
        have = frame.columns[np.isfinite(frame.to_numpy()).any(axis=0)] if len(frame) else frame.columns[:0]
        frame = frame[list(have)] if len(have) < frame.shape[1] else frame
        return PriceData(frame, "files", str(file.path), notes=tuple(notes))
    data = source.load_all(start, end)
    present = [t for t in wanted if t in data.closes.columns]
    return PriceData(data.closes[present], data.source, data.location, notes=data.notes)
