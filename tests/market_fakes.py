"""A small synthetic market with every kind of dirt, and a yfinance stand-in that fails on cue.

Used by the error-table, fault and injection tests: each case gets a tiny
price file (milliseconds to read) instead of the 46 MB market Parquet, and
Yahoo is never contacted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from yfinance import multi as yf_multi
from yfinance import utils as yf_utils

from helpers import nyse_dates

SESSIONS = 420  # 2023-01-03 .. 2024-09-04
EVENT = "2024-03-13"  # a Wednesday, session 299: 250 sessions before it, 120 after
EVENT_INDEX = 299


def market(seed: int = 7) -> pd.DataFrame:
    """Closes (NYSE sessions x tickers) of a market model world, with named dirty series.

    SPY and QQQ are benchmarks; AAA, BBB, CCC are clean (r = a + b r_m + e);
    FLAT is unchanged on 60% of estimation-window days; NEG has a zero and a
    negative close; EXT jumps +400% one estimation day and falls back the
    next; LATE starts trading 10 sessions before the event (no estimation
    returns); EMPTY has no close at all.
    """
    rng = np.random.default_rng(seed)
    days = nyse_dates(SESSIONS)
    m = rng.normal(0.0004, 0.01, SESSIONS)
    rets = {"SPY": m, "QQQ": 1.2 * m + rng.normal(0, 0.004, SESSIONS)}
    for name, beta in (("AAA", 0.8), ("BBB", 1.3), ("CCC", 1.0), ("FLAT", 0.5), ("NEG", 1.1), ("EXT", 0.9),
                       ("LATE", 1.0), ("EMPTY", 1.0)):
        rets[name] = 0.0002 + beta * m + rng.normal(0, 0.015, SESSIONS)
    rets["AAA"][EVENT_INDEX] += 0.08  # a real event effect on day 0
    flat = rng.random(SESSIONS) < 0.6
    flat[EVENT_INDEX - 10:] = False
    rets["FLAT"][flat] = 0.0
    rets["EXT"][150] = 4.0
    rets["EXT"][151] = 1 / 5.0 - 1
    closes = pd.DataFrame(
        {t: 50.0 * np.cumprod(1.0 + np.where(np.arange(SESSIONS) == 0, 0.0, r)) for t, r in rets.items()},
        index=pd.DatetimeIndex(days, name="date"),
    )
    closes.iloc[100, closes.columns.get_loc("NEG")] = 0.0
    closes.iloc[101, closes.columns.get_loc("NEG")] = -3.0
    closes.iloc[: EVENT_INDEX - 10, closes.columns.get_loc("LATE")] = np.nan
    closes["EMPTY"] = np.nan
    return closes


def write_wide_csv(closes: pd.DataFrame, path: Path) -> Path:
    """The wide shape: a Date column and one column per ticker; NaN written as an empty cell."""
    frame = closes.copy()
    frame.index = frame.index.strftime("%Y-%m-%d")
    frame.index.name = "Date"
    frame.to_csv(path, na_rep="")
    return path


# --------------------------------------------------------------------------- yfinance


def history(closes: pd.Series, tz: str = "America/New_York") -> pd.DataFrame:
    """What ``Ticker.history`` returns for daily bars (OHLCV at exchange midnight)."""
    index = pd.DatetimeIndex(closes.index).tz_localize(tz)
    index.name = "Date"
    values = closes.to_numpy()
    return pd.DataFrame(
        {"Open": values, "High": values, "Low": values, "Close": values, "Volume": 1e6}, index=index
    )


def download_frame(per_ticker: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
    """Assemble per-ticker frames as yfinance 1.7's ``download`` does (group_by='column')."""
    dfs = {t: (df if df is not None else yf_utils.empty_df()) for t, df in per_ticker.items()}
    for df in dfs.values():
        if df.shape[0] > 0:
            df.index = df.index.tz_localize(None)
    dfs = yf_multi.reindex_dfs(dfs, True)
    data = pd.concat(dfs.values(), axis=1, sort=True, keys=dfs.keys(), names=["Ticker", "Price"])
    data.columns = data.columns.swaplevel(0, 1)
    return data.sort_index(level=0, axis=1)


class FlakyYahoo:
    """Stands in for ``yfinance.download``: serves ``closes``, fails as told, records every call.

    ``fail(call)`` is consulted before each answer with the call's tickers
    and number (1-based): it may raise (a network error, a rate limit) or
    return tickers to answer empty for.
    """

    def __init__(self, closes: pd.DataFrame, fail: Callable[[list[str], int], Iterable[str] | None] | None = None):
        self.closes = closes
        self.fail = fail
        self.calls: list[list[str]] = []

    def __call__(self, tickers, start=None, end=None, **kwargs):
        tickers = sorted({t.upper() for t in tickers})
        self.calls.append(tickers)
        empty = set(self.fail(tickers, len(self.calls)) or ()) if self.fail else set()
        first, after = pd.Timestamp(start), pd.Timestamp(end)
        per_ticker = {}
        for ticker in tickers:
            series = self.closes[ticker].dropna() if ticker in self.closes and ticker not in empty else None
            if series is not None:
                series = series[(series.index >= first) & (series.index < after)]
            per_ticker[ticker] = history(series) if series is not None and len(series) else None
        return download_frame(per_ticker)
