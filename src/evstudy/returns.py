"""Prices to simple returns on the benchmark's trading days, and the screen for price glitches.

A missing or invalid (zero, negative, non-finite) close makes that day's and
the next day's return missing: nothing is forward-filled, so a gap never
masquerades as a zero return.

Vendor glitches are valid-looking closes that no trade made: PPCB jumping
from $0.01 to $625 in a day, a bad tick that is undone the next day.
:func:`price_glitches` finds them per series so that a study and a scan
exclude the same series for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# pandas is imported by the two functions that build frames: the whole-market scan uses the numpy
# core (close_to_close) and the glitch screen without it.


@dataclass(frozen=True)
class ReturnPanel:
    """Simple returns (dates x tickers) plus what was dropped on the way."""

    returns: pd.DataFrame
    closes: pd.DataFrame
    invalid_prices: pd.Series  # per ticker: closes <= 0 or non-finite, treated as missing
    nonfinite_prices: pd.Series  # per ticker: the non-finite (inf) ones among them


def trading_days(closes: pd.DataFrame, benchmark: str) -> pd.DatetimeIndex:
    """The dates on which the benchmark has a valid (positive, finite) close."""
    import pandas as pd

    bench = closes[benchmark].to_numpy(dtype=float)
    valid = np.isfinite(bench) & (bench > 0)
    return pd.DatetimeIndex(closes.index[valid], name="date")


def simple_returns(closes: pd.DataFrame, days: pd.DatetimeIndex) -> ReturnPanel:
    """r_t = P_t / P_{t-1} - 1 on ``days``; invalid closes become gaps, never fills."""
    import pandas as pd

    # One copy of the closes and one array of returns, no other (days x tickers) temporary:
    # at 10,000 tickers each is ~25 MB of fresh memory.
    rows = closes.index.get_indexer(days)
    values = closes.to_numpy(dtype=float)[np.maximum(rows, 0)]
    values[rows < 0] = np.nan
    returns, invalid, nonfinite = close_to_close(values)
    return ReturnPanel(  # copy=False: pandas 3 would copy each (days x tickers) array again
        returns=pd.DataFrame(returns, index=days, columns=closes.columns, copy=False),
        closes=pd.DataFrame(values, index=days, columns=closes.columns, copy=False),
        invalid_prices=pd.Series(invalid, index=closes.columns, dtype=int),
        nonfinite_prices=pd.Series(nonfinite, index=closes.columns, dtype=int),
    )


def close_to_close(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simple returns of ``values`` (days x series, a fresh copy: invalid closes are set to NaN in place).

    Returns (returns, invalid closes per series, non-finite closes per series); the first row's
    returns are NaN. The arithmetic of :func:`simple_returns`, which calls it.
    """
    present = ~np.isnan(values)
    invalid = present & ~(np.isfinite(values) & (values > 0))
    nonfinite = np.isinf(values).sum(axis=0)
    values[invalid] = np.nan
    returns = np.empty_like(values)
    returns[:1] = np.nan
    np.divide(values[1:], values[:-1], out=returns[1:])
    returns[1:] -= 1.0
    return returns, invalid.sum(axis=0), nonfinite


def zero_share_of(returns: np.ndarray) -> np.ndarray:
    """Per column, the share of valid returns that are exactly zero (0 where none is valid)."""
    valid = np.isfinite(returns)
    return (returns == 0.0).sum(axis=0) / np.maximum(valid.sum(axis=0), 1)


# --------------------------------------------------------------------------- glitches

GLITCH_MIN_CLOSE = 0.05  # a close below 5 cents: one tick moves it 20%+, and vendors write 0.01 as a placeholder
GLITCH_JUMP_FACTOR = 5.0  # a close 5x (or 1/5) the day before's, before the event span
GLITCH_SPIKE_FACTOR = 2.0  # a move by 2x or more ...
GLITCH_SPIKE_SIGMAS = 10.0  # ... beyond 10 robust sigmas (1.4826 x MAD of the log returns) ...
GLITCH_REVERSAL = 0.75  # ... that the next day's return undoes by at least three quarters
GLITCH_KINDS = ("", "jump", "spike", "sub_nickel")


@dataclass(frozen=True)
class Glitches:
    """Per series, the first price glitch found (``kind`` 0 = none; see GLITCH_KINDS), its row and closes."""

    kind: np.ndarray  # (K,) int: index into GLITCH_KINDS
    row: np.ndarray  # (K,) row of the glitch day in the closes given (-1 where none)
    before: np.ndarray  # (K,) the close the day before (NaN where none)
    after: np.ndarray  # (K,) the close on the glitch day

    @property
    def found(self) -> np.ndarray:
        return self.kind > 0

    def reason(self, k: int, dates: pd.DatetimeIndex) -> str:
        """Why series ``k`` is excluded, naming the day and the closes ("" when it is clean)."""
        kind, row = GLITCH_KINDS[int(self.kind[k])], int(self.row[k])
        if not kind:
            return ""
        day = dates[row].date()
        moved = f"{self.before[k]:,.4g} → {self.after[k]:,.4g} on {day}"
        if kind == "jump":
            return (f"price glitch: the close jumps by a factor of {_factor(self.before[k], self.after[k])} in one day "
                    f"({moved}) before the event window: an unadjusted split, a vendor error or a change of regime "
                    f"that no single fit covers")
        if kind == "spike":
            return (f"price glitch: the close moves by a factor of {_factor(self.before[k], self.after[k])} ({moved}) "
                    f"and the next close undoes it: a bad tick, not a trade")
        return (f"price glitch: a close of {self.after[k]:.4g} on {day}, below ${GLITCH_MIN_CLOSE:.2f} "
                f"(a placeholder or sub-nickel quote; its returns are tick noise)")


def _factor(before: float, after: float) -> str:
    ratio = max(after / before, before / after)
    return f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.1f}"


def nan_median(values: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """Per column of (rows x columns), the median of the non-NaN values (NaN where none).

    What ``np.nanmedian(values, axis=0)`` gives, the middle two of the sorted
    values averaged as (low + high) / 2, from one sort (NaN sorts last)
    instead of its masked-array path (~10x slower on (240 x 5,000)). With
    ``in_place`` it sorts ``values`` itself (a caller's own copy) instead of
    allocating another.
    """
    if not len(values):
        return np.full(values.shape[1], np.nan)
    if in_place:
        values.sort(axis=0)
        ordered = values
    else:
        ordered = np.sort(values, axis=0)
    n = (~np.isnan(ordered)).sum(axis=0)
    cols = np.arange(values.shape[1])
    low = ordered[np.maximum((n - 1) // 2, 0), cols]
    high = ordered[np.maximum(n // 2, 0), cols]
    return np.where(n > 0, (low + high) / 2.0, np.nan)


def price_glitches(closes: np.ndarray, jump_rows: int) -> Glitches:
    """Find vendor glitches in ``closes`` (days x series, invalid closes already NaN).

    Three rules, each the mark of a data error (or of a regime change no
    single model fit covers) rather than of an ordinary market move:

    - ``jump``: one day's close is at least GLITCH_JUMP_FACTOR times (or at
      most 1/GLITCH_JUMP_FACTOR of) the previous one, in the first
      ``jump_rows`` rows (before the event window, where such a move may be
      the news itself); 5x, not 10x: the shared data's unadjusted 1:10
      reverse splits show as 9.8x after a falling day (CMCT, OMH, SLXN);
    - ``spike``: a move by GLITCH_SPIKE_FACTOR or more that also exceeds
      GLITCH_SPIKE_SIGMAS robust standard deviations of the series' log
      returns (1.4826 x MAD; Hampel 1974) and is undone by at least
      GLITCH_REVERSAL of it the next day (a bad tick), anywhere;
    - ``sub_nickel``: a close below GLITCH_MIN_CLOSE, anywhere.

    Vectorized over series; the robust scale is computed only for the few
    series with a move of 2x or more, so a whole-market scan pays one pass.
    """
    k = closes.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = closes[1:] / closes[:-1]  # comparisons on the ratio: logs only for the few candidate series
    rows = np.arange(len(ratio))[:, None] + 1  # the row of the day each return ends on
    jump = ((ratio >= GLITCH_JUMP_FACTOR) | (ratio <= 1.0 / GLITCH_JUMP_FACTOR)) & (rows < jump_rows)
    spike = np.zeros_like(jump)
    big = (ratio >= GLITCH_SPIKE_FACTOR) | (ratio <= 1.0 / GLITCH_SPIKE_FACTOR)
    cols = np.flatnonzero(big.any(axis=0))
    if len(cols):
        sub = np.log(ratio[:, cols])
        center = np.nanmedian(sub, axis=0)
        sigma = 1.4826 * np.nanmedian(np.abs(sub - center), axis=0)
        following = np.vstack([sub[1:], np.full((1, len(cols)), np.nan)])
        with np.errstate(invalid="ignore"):
            undone = (np.sign(following) == -np.sign(sub)) & (np.abs(following) >= GLITCH_REVERSAL * np.abs(sub))
            spike[:, cols] = big[:, cols] & (np.abs(sub - center) > GLITCH_SPIKE_SIGMAS * sigma) & undone
    with np.errstate(invalid="ignore"):
        low = closes < GLITCH_MIN_CLOSE
    first = np.zeros((1, k), bool)  # no return ends on the first row
    kind = np.zeros(k, dtype=np.int64)
    row = np.full(k, -1, dtype=np.int64)
    for code, mask in ((3, low), (1, np.vstack([first, jump])), (2, np.vstack([first, spike]))):  # last wins
        hit = mask.any(axis=0)
        kind = np.where(hit, code, kind)
        row = np.where(hit, mask.argmax(axis=0), row)
    cols_all = np.arange(k)
    safe = np.maximum(row, 0)
    before = np.where(row > 0, closes[np.maximum(safe - 1, 0), cols_all], np.nan)
    after = np.where(row >= 0, closes[safe, cols_all], np.nan)
    return Glitches(kind, row, before, after)
