"""The one interface every price source implements, and what it returns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd


@dataclass(frozen=True)
class PriceData:
    """Adjusted daily closes for a set of tickers, plus where they came from.

    ``closes`` has a tz-naive, midnight, sorted, unique ``DatetimeIndex`` named
    ``date`` and one float64 column per ticker that the source knows, in the
    order asked for. A NaN means "no close that day" (never forward-filled).
    Non-positive closes are passed through untouched: the returns stage
    detects and reports them. ``missing`` lists tickers the source had no data
    for at all (only network sources report this; file sources raise
    :class:`~evstudy.errors.UnknownTickerError` instead), and
    ``missing_reasons`` why, per missing ticker, so the study can exclude it
    with that reason.
    """

    closes: pd.DataFrame
    source: str
    location: str
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    missing_reasons: Mapping[str, str] = field(default_factory=dict)

    def provenance(self) -> dict[str, Any]:
        """A JSON-ready description of the data for results and reports."""
        index = self.closes.index
        return {
            "source": self.source,
            "location": self.location,
            "first_date": index.min().date().isoformat() if len(index) else None,
            "last_date": index.max().date().isoformat() if len(index) else None,
            "tickers": list(self.closes.columns),
            "missing": list(self.missing),
            "notes": list(self.notes),
            **self.details,
        }


class PriceSource(Protocol):
    """Anything that turns tickers and an inclusive date range into closes."""

    def load(self, tickers: Sequence[str], start: dt.date, end: dt.date) -> PriceData:
        """Adjusted closes of ``tickers`` for every date in [start, end]."""
        ...
