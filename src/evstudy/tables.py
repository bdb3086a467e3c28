"""One event's rows of a results table as column arrays, and every event's rows joined into one frame.

A catalogue computes its tables event by event; building a pandas frame per
event and concatenating hundreds of them cost more than the statistics. The
engine instead hands each event's rows over as numpy columns
(:class:`Rows`) and :func:`stack` makes one frame per table. A text that is
the same on every row of a part (the event id, a basket's name) can be kept as
:class:`Repeated` until then: the stacked column is built from one value per
part, not from a Python string per row. Pure computation, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

# What a frame makes of a column of Python strings (pandas' str dtype, or object where strings are not inferred).
TEXT_DTYPE = pd.Series(["text"]).dtype


@dataclass(frozen=True)
class Repeated:
    """One text on each of ``n`` rows, kept as the text and the count until :func:`stack`."""

    value: str
    n: int

    def __len__(self) -> int:
        return self.n

    def values(self) -> np.ndarray:
        return np.full(self.n, self.value, dtype=object)


@dataclass(frozen=True)
class Rows:
    """Columns of equal length, in the table's column order."""

    columns: dict[str, np.ndarray | Repeated]

    @classmethod
    def of(cls, columns: list[str], n: int, values: Mapping[str, object], *, repeat_text: bool = False) -> Rows:
        """``values`` as ``n`` rows: arrays kept, a scalar repeated (text as objects, a timestamp as datetime64[ns]).

        With ``repeat_text``, a text scalar is kept as one :class:`Repeated` (for parts only :func:`stack` reads).
        """
        out: dict[str, np.ndarray | Repeated] = {}
        for name in columns:
            value = values[name]
            if isinstance(value, np.ndarray):
                out[name] = value
            elif value is pd.NaT or isinstance(value, pd.Timestamp):
                out[name] = np.full(n, np.datetime64(value, "ns"))
            elif isinstance(value, str):
                out[name] = Repeated(value, n) if repeat_text else np.full(n, value, dtype=object)
            else:
                out[name] = np.full(n, value)
        return cls(out)

    @classmethod
    def empty(cls, columns: list[str]) -> Rows:
        return cls({name: np.empty(0, dtype=object) for name in columns})

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


def _column(parts: list[np.ndarray | Repeated]) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """One column from every part's values; texts repeated in every part by one Arrow take of the parts' texts."""
    if isinstance(TEXT_DTYPE, pd.StringDtype) and all(isinstance(p, Repeated) for p in parts):
        texts = pa.array([p.value for p in parts], type=pa.large_string())  # type: ignore[union-attr]
        rows = np.repeat(np.arange(len(parts)), [p.n for p in parts])  # type: ignore[union-attr]
        return pd.array(texts.take(rows), dtype=TEXT_DTYPE)
    return np.concatenate([p.values() if isinstance(p, Repeated) else p for p in parts])


def stack(parts: list[Rows], columns: list[str]) -> pd.DataFrame:
    """One frame of every part's rows in order; with no rows at all, an empty frame with ``columns``."""
    filled = [part for part in parts if len(part)]
    if not filled:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame({name: _column([part.columns[name] for part in filled]) for name in columns},
                        columns=columns)
