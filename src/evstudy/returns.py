"""Prices to simple returns on the benchmark's trading days.

A missing or invalid (zero, negative, non-finite) close makes that day's and
the next day's return missing: nothing is forward-filled, so a gap never
masquerades as a zero return.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ReturnPanel:
    """Simple returns (dates x tickers) plus what was dropped on the way."""

    returns: pd.DataFrame
    closes: pd.DataFrame
    invalid_prices: pd.Series  # per ticker: closes <= 0 or non-finite, treated as missing


def trading_days(closes: pd.DataFrame, benchmark: str) -> pd.DatetimeIndex:
    """The dates on which the benchmark has a valid (positive, finite) close."""
    bench = closes[benchmark].to_numpy(dtype=float)
    valid = np.isfinite(bench) & (bench > 0)
    return pd.DatetimeIndex(closes.index[valid], name="date")


def simple_returns(closes: pd.DataFrame, days: pd.DatetimeIndex) -> ReturnPanel:
    """r_t = P_t / P_{t-1} - 1 on ``days``; invalid closes become gaps, never fills."""
    aligned = closes.reindex(days)
    values = aligned.to_numpy(dtype=float, copy=True)
    present = ~np.isnan(values)
    invalid = present & ~(np.isfinite(values) & (values > 0))
    values[invalid] = np.nan
    returns = np.full_like(values, np.nan)
    returns[1:] = values[1:] / values[:-1] - 1.0
    return ReturnPanel(
        returns=pd.DataFrame(returns, index=days, columns=closes.columns),
        closes=pd.DataFrame(values, index=days, columns=closes.columns),
        invalid_prices=pd.Series(invalid.sum(axis=0), index=closes.columns, dtype=int),
    )
