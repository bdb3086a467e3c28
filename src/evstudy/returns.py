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
    # One copy of the closes and one array of returns, no other (days x tickers) temporary:
    # at 10,000 tickers each is ~25 MB of fresh memory.
    rows = closes.index.get_indexer(days)
    values = closes.to_numpy(dtype=float)[np.maximum(rows, 0)]
    values[rows < 0] = np.nan
    present = ~np.isnan(values)
    invalid = present & ~(np.isfinite(values) & (values > 0))
    values[invalid] = np.nan
    returns = np.empty_like(values)
    returns[:1] = np.nan
    np.divide(values[1:], values[:-1], out=returns[1:])
    returns[1:] -= 1.0
    return ReturnPanel(  # copy=False: pandas 3 would copy each (days x tickers) array again
        returns=pd.DataFrame(returns, index=days, columns=closes.columns, copy=False),
        closes=pd.DataFrame(values, index=days, columns=closes.columns, copy=False),
        invalid_prices=pd.Series(invalid.sum(axis=0), index=closes.columns, dtype=int),
    )
