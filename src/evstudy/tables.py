"""One event's rows of a results table as column arrays, and every event's rows joined into one frame.

A catalogue computes its tables event by event; building a pandas frame per
event and concatenating hundreds of them cost more than the statistics. The
engine instead hands each event's rows over as numpy columns
(:class:`Rows`) and :func:`stack` makes one frame per table. Pure
computation, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Rows:
    """Columns of equal length, in the table's column order."""

    columns: dict[str, np.ndarray]

    @classmethod
    def of(cls, columns: list[str], n: int, values: Mapping[str, object]) -> Rows:
        """``values`` as ``n`` rows: arrays kept, a scalar repeated (text as objects, a timestamp as datetime64[ns])."""
        out = {}
        for name in columns:
            value = values[name]
            if isinstance(value, np.ndarray):
                out[name] = value
            elif value is pd.NaT or isinstance(value, pd.Timestamp):
                out[name] = np.full(n, np.datetime64(value, "ns"))
            elif isinstance(value, str):
                out[name] = np.full(n, value, dtype=object)
            else:
                out[name] = np.full(n, value)
        return cls(out)

    @classmethod
    def empty(cls, columns: list[str]) -> Rows:
        return cls({name: np.empty(0, dtype=object) for name in columns})

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


def stack(parts: list[Rows], columns: list[str]) -> pd.DataFrame:
    """One frame of every part's rows in order; with no rows at all, an empty frame with ``columns``."""
    filled = [part for part in parts if len(part)]
    if not filled:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame({name: np.concatenate([part.columns[name] for part in filled]) for name in columns},
                        columns=columns)
