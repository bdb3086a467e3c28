"""One filtered read of a price file: only the tickers and dates a request needs.

A long file with a local index (:mod:`evstudy.prices.dataset`, built on the
file's second read) is answered from it: the wanted tickers' rows of the
memory-mapped (tickers x days) matrix over [start, end], nothing decoded.
Otherwise a long Parquet file (date, ticker, close) is read by row group: for up to
:data:`PRUNE_MAX` tickers only the groups whose ticker statistics can hold
one of them, and only the three columns; the rows outside [start, end] or of
other tickers are dropped in numpy during the pivot (no Arrow filter
expression over millions of rows; measured in benchmarks/README.md). Other
shapes (CSV, wide files, folders) go through :meth:`FileSource.load_all` and
keep the wanted columns.

Unlike :meth:`FileSource.load`, a ticker the file does not hold is not an
error here: a request file of thousands of rows lists such rows in
excluded.csv and carries on, so the caller sees them as absent columns.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from evstudy.prices.base import PriceData
from evstudy.prices.dataset import PriceIndex, _index_for
from evstudy.prices.files import (
    FileSource, _check_range, _codes, _day_number, _days, _duplicate_note, _floats, _frame, _Long, _normalize_used,
    _pivot, _Wide,
)

PRUNE_MAX = 1_000  # tickers up to which row groups are chosen by their ticker statistics


def load_closes(path: str | os.PathLike[str], tickers: Sequence[str], start: dt.date, end: dt.date) -> PriceData:
    """Closes of those ``tickers`` that ``path`` holds, over [start, end].

    Columns come in the file's order (a long Parquet file sorted by ticker
    is then pivoted by one sequential scatter); a ticker the file does not
    know is not a column, one it knows without a close in the range is an
    all-NaN column (the caller reports both).
    """
    _check_range(start, end)
    wanted = set(tickers)
    source = FileSource(path)
    shape = source._shape
    index = _index_for(source.path, shape)
    if index is not None:
        return _from_index(index, wanted, start, end, str(source.path))
    if isinstance(shape, _Long) and shape.file.parquet is not None:
        file = shape.file
        # Pruning by ticker statistics pays for a few tickers; for thousands every group holds some.
        groups = file.row_groups(shape.ticker, sorted(wanted)) if len(wanted) <= PRUNE_MAX else None
        parquet = pq.ParquetFile(file.path)
        columns = [shape.date, shape.ticker, shape.value]
        if groups is None:
            table = parquet.read(columns=columns)
        else:
            table = parquet.read_row_groups(groups, columns=columns)
        codes, raw_names = _codes(table.column(shape.ticker))
        normalized = _normalize_used(codes, raw_names)
        # One column per wanted name, in code order; several raw spellings of one ticker share it.
        names = list(dict.fromkeys(n for n in normalized if n in wanted))
        position = {name: i for i, name in enumerate(names)}
        col_of_code = np.array([position.get(n, -1) for n in normalized] + [-1], dtype=np.int64)
        days = _days(table.column(shape.date), f"{file.path}, column {shape.date!r}")
        values = _floats(table.column(shape.value), f"{file.path}, column {shape.value!r}")
        del table
        wide = _pivot(days, col_of_code[codes], values, len(names), _day_number(start), _day_number(end))
        notes = _duplicate_note(wide, names, str(file.path))
        return PriceData(_frame(wide, names), "files", str(file.path), notes=tuple(notes))
    data = source.load_all(start, end)
    present = [t for t in wanted if t in data.closes.columns]
    return PriceData(data.closes[present], data.source, data.location, notes=data.notes)


@dataclass(frozen=True)
class TickerCloses:
    """Closes as a (tickers x days) matrix: ``closes[k, d]`` is ``tickers[k]``'s close on ``dates[d]``."""

    tickers: pd.Index
    dates: pd.DatetimeIndex
    closes: np.ndarray
    source: str
    location: str


def load_ticker_closes(
    path: str | os.PathLike[str], tickers: Sequence[str], start: dt.date, end: dt.date
) -> TickerCloses:
    """The closes :func:`load_closes` gives, as (tickers x days); from a file's index, a view of its memory map.

    The index answers with every ticker of the file over [start, end] without
    copying or pivoting anything (a request file gathers each firm-event's
    window from it); other files are read by :func:`load_closes` and transposed.
    """
    _check_range(start, end)
    source = FileSource(path)
    index = _index_for(source.path, source._shape)
    if index is not None:
        days = index.day_range(_day_number(start), _day_number(end))
        dates = pd.DatetimeIndex(index.days[days].astype("datetime64[D]").astype("datetime64[ns]"), name="date")
        return TickerCloses(pd.Index(index.tickers), dates, index.closes[:, days], "files", str(source.path))
    data = load_closes(path, tickers, start, end)
    return TickerCloses(data.closes.columns, pd.DatetimeIndex(data.closes.index),
                        np.ascontiguousarray(data.closes.to_numpy(dtype=float).T), data.source, data.location)


def _from_index(index: PriceIndex, wanted: set[str], start: dt.date, end: dt.date, where: str) -> PriceData:
    """The wanted tickers' closes over [start, end] from a file's index, in the index's ticker order.

    The index exists only for files whose pivot does not depend on the subset
    asked (no duplicate dates, one spelling per ticker), so this is the frame
    the direct read gives, up to the order of its columns.
    """
    rows = np.array(sorted(i for i, name in enumerate(index.tickers) if name in wanted), dtype=np.int64)
    days = index.day_range(_day_number(start), _day_number(end))
    values = index.closes[rows, days].T if len(rows) else np.empty((days.stop - days.start, 0))
    wide = _Wide(index.days[days].copy(), values, np.zeros(len(rows), np.int64))
    return PriceData(_frame(wide, [index.tickers[i] for i in rows]), "files", where)
