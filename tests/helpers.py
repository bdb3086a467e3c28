"""Shared test utilities: PriceData from the real Parquet or from synthetic returns.

Everything here is deliberately independent of the engine's own return and
model code (only the PriceData container and the NYSE session list are
shared), so the tests that use it are known-answer checks, not echoes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from evstudy.calendar import nyse_calendar
from evstudy.prices.base import PriceData


def read_parquet_closes(path: str | Path, tickers: Sequence[str]) -> pd.DataFrame:
    """Wide closes (DatetimeIndex 'date' x tickers, float64) for ``tickers`` from the long market Parquet."""
    long = pd.read_parquet(path, columns=["date", "ticker", "close"], filters=[("ticker", "in", list(tickers))])
    long["ticker"] = long["ticker"].astype(str)
    wide = long.pivot(index="date", columns="ticker", values="close")
    missing = [t for t in tickers if t not in wide.columns]
    assert not missing, f"test data lacks {missing}"
    wide = wide[list(tickers)].astype("float64")
    wide.index = pd.DatetimeIndex(wide.index.astype("datetime64[ns]"), name="date")
    wide.columns = pd.Index(list(tickers), dtype=object)
    return wide.sort_index()


def price_data(closes: pd.DataFrame, source: str = "files", location: str = "synthetic") -> PriceData:
    """Wrap a wide closes frame in the PriceData contract (index named 'date', float64 columns)."""
    closes = closes.astype("float64")
    closes.index = pd.DatetimeIndex(closes.index, name="date")
    return PriceData(closes, source, location)


def nyse_dates(n: int, start: str = "2023-01-03") -> pd.DatetimeIndex:
    """``n`` consecutive NYSE sessions from ``start`` (tz-naive, named 'date')."""
    sessions = nyse_calendar().sessions
    picked = sessions[sessions >= pd.Timestamp(start)][:n]
    assert len(picked) == n, "the NYSE calendar is too short for this synthetic market"
    return pd.DatetimeIndex(picked.tz_localize(None) if picked.tz is not None else picked, name="date")


def closes_from_returns(
    returns: Mapping[str, np.ndarray], dates: pd.DatetimeIndex, start: float = 100.0
) -> pd.DataFrame:
    """Closes whose simple returns are exactly ``returns`` (element 0 of each array is ignored).

    P_0 = start, P_t = P_{t-1} * (1 + r_t).
    """
    cols = {}
    for ticker, r in returns.items():
        r = np.asarray(r, dtype=float)
        assert r.shape == (len(dates),)
        growth = np.concatenate([[1.0], 1.0 + r[1:]])
        cols[ticker] = start * np.cumprod(growth)
    return pd.DataFrame(cols, index=pd.DatetimeIndex(dates, name="date"))


def market_model_returns(rng: np.random.Generator, n_days: int, first_beta: float, stocks: int = 12
                         ) -> dict[str, np.ndarray]:
    """Returns of a benchmark "MKT" and ``stocks`` market-model stocks S00, S01, ... with betas first_beta,
    first_beta + 0.1, ..., alpha 0.0002 and idiosyncratic sd 0.01 (drawn in that order from ``rng``)."""
    market = rng.normal(0.0004, 0.01, n_days)
    returns = {"MKT": market}
    for k in range(stocks):
        returns[f"S{k:02d}"] = 0.0002 + (first_beta + 0.1 * k) * market + rng.normal(0, 0.01, n_days)
    return returns


def four_events(dates: pd.DatetimeIndex, last_tickers: Sequence[str]) -> list[dict]:
    """Events e1-e3 at sessions 520/560/600 with 3-stock baskets of S00-S08, and e4 at 640 with ``last_tickers``."""
    baskets = [["S00", "S01", "S02"], ["S03", "S04", "S05"], ["S06", "S07", "S08"], list(last_tickers)]
    return [{"id": f"e{i + 1}", "date": dates[row].date().isoformat(), "tickers": tickers}
            for i, (row, tickers) in enumerate(zip((520, 560, 600, 640), baskets))]


def simple_returns_reference(closes: pd.DataFrame) -> pd.DataFrame:
    """Independent simple returns: P_t / P_{t-1} - 1 with pandas, gaps never filled."""
    clean = closes.where(closes > 0)
    return clean / clean.shift(1) - 1.0
