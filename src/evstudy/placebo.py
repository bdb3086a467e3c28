"""Placebo-date inference: the study's own procedure re-run on pseudo-event days.

When every stock of a basket shares one event day, their abnormal returns are
cross-correlated and the textbook tests' null distributions are wrong. The
placebo test asks the data instead: how often does the same basket, under the
same model, windows and exclusion rules, show a CAAR (or a BMP t) at least as
large on days when nothing happened? Pseudo-event days are drawn without
replacement from :func:`candidate_days`: the :data:`PLACEBO_LOOKBACK` sessions
before the estimation window and the estimation window itself (the regime
nearest the event), up to the last day whose event span ends before the
event's, skipping any day whose event span would contain a real event or
confounder of the config.

Everything is vectorized over pseudo-dates AND series with prefix sums: each
(stock, regressor) pair's cumulative sums over the day axis (count, X'X,
X'y, y'y, zero returns, complete days, window sums) give any window's sums
as one difference, so a pseudo-day's fit, CARs and MacKinlay standard errors
cost O(p^2) whatever the window lengths, instead of re-summing 240 + 21 rows
per draw. Pure computation, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from evstudy.config import ModelName, Window
from evstudy.inference import bmp_t_statistic, standardized_cars
from evstudy.models import design

PLACEBO_LOOKBACK = 504  # two years of trading days before the estimation window
PAIR_CHUNK = 512  # (stock, regressor) pairs whose prefix sums are held at once: ~30 MB at 1,000 days, market model
BLOCK_CELLS = 32_768  # (pseudo-day, series) cells fitted at once: ~256 KB per plane, so the temporaries stay in cache


def lookback_offset(estimation: Window, lookback: int = PLACEBO_LOOKBACK) -> int:
    """The earliest trading day, relative to day 0, that the placebo needs: the first pseudo-day's estimation start."""
    return (estimation.start - lookback) + estimation.start


def candidate_days(
    day0: int, estimation: Window, span: Window, blocked: Sequence[int], lookback: int = PLACEBO_LOOKBACK
) -> np.ndarray:
    """Rows that may serve as a pseudo day 0: the documented placebo pool.

    From ``lookback`` rows before the estimation window, day0 + est.start -
    lookback, through the estimation window itself (the market regime nearest
    the event) up to day0 + span.start - span.end - 1, the last day whose
    event span ends before the event's own span begins. Kept are the rows
    with a full event span inside the data (first row >= 1) whose event span
    [d + span.start, d + span.end] contains none of the ``blocked`` rows
    (events' day 0s and confounders).
    """
    rows = np.arange(day0 + estimation.start - lookback, day0 + span.start - span.end)
    rows = rows[rows + span.start >= 1]
    blocked_rows = np.asarray(blocked, dtype=int)
    if not (np.diff(blocked_rows) > 0).all():  # sorted, each once (a catalogue passes them so: no sort per event)
        blocked_rows = np.unique(blocked_rows)
    if blocked_rows.size:
        first = np.searchsorted(blocked_rows, rows + span.start, side="left")
        last = np.searchsorted(blocked_rows, rows + span.end, side="right")
        rows = rows[last == first]
    return rows


def draw_days(candidates: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """min(``k``, len(``candidates``)) distinct pseudo day-0 rows, drawn without replacement.

    Without replacement, so that every draw is a different day and the
    empirical p-value's floor 1 / (draws + 1) is honest: drawing the same
    day twice adds no evidence. Asking for more days than the pool holds
    gives every candidate once, in random order.
    """
    if len(candidates) == 0 or k <= 0:
        return np.empty(0, dtype=int)
    return rng.choice(candidates, size=min(k, len(candidates)), replace=False)


@dataclass(frozen=True)
class SeriesPlacebo:
    """Per (pseudo-day, series): CAR and SCAR per window, NaN where the series is excluded that day.

    ``car`` and ``scar`` are (D, windows, S) for ``day0`` (D, S).
    """

    day0: np.ndarray
    car: np.ndarray
    scar: np.ndarray

    @property
    def usable(self) -> np.ndarray:
        """(D, S): whether each series passes the study's exclusion rules at each pseudo-day."""
        return np.isfinite(self.car[:, 0, :])


_CUMSUM_COLUMNS = 160  # measured crossover: below it np.cumsum beats the row loop


def _prefix(terms: np.ndarray) -> np.ndarray:
    """Cumulative sums over days (axis 0) with a leading zero row: the sum of rows [a, b) is P[b] - P[a].

    Row by row, each step one vectorized add over every (term, series): the same sums, in the same
    order, as ``np.cumsum(axis=0)``, which walks each column down the rows one cache line at a
    time and took ~15x longer on (1,000 days x 7 terms x 1,024 series). A narrow stack (a
    catalogue event's 20 stocks: 40-140 columns) is the other way round: the row loop's per-step
    overhead then costs 1.5-5x ``np.cumsum``, whose sequential sums are bit-identical.
    """
    out = np.empty((terms.shape[0] + 1, *terms.shape[1:]))
    out[0] = 0.0
    if terms[:1].size <= _CUMSUM_COLUMNS:
        np.cumsum(terms, axis=0, out=out[1:])
        return out
    if len(terms):
        out[1] = terms[0]
    for row in range(1, len(terms)):
        np.add(out[row], terms[row], out=out[row + 1])
    return out


class _Layout:
    """Where each per-day term of a p-parameter fit sits in the moment stack (days x terms x series).

    The design's first column is the constant, so X'X[0, 0] is the valid-day count, X'X[0, j] the sum
    of z_j and X'y[0] the sum of y: each is stored once. The first p + 1 terms (count, z_1..z_p-1, y)
    are all a window's CAR needs, so they come first and a window gathers one contiguous slice.
    """

    def __init__(self, p: int):
        self.p = p
        self.y = p  # terms 0..p-1: the valid-day count and the sums of z_1..z_p-1 (the window's v)
        self.zero = p + 1
        pairs = [(i, j) for i in range(1, p) for j in range(i, p)]
        self.zz = {pair: p + 2 + k for k, pair in enumerate(pairs)}
        self.zy = {j: p + 2 + len(pairs) + j - 1 for j in range(1, p)}
        self.yy = p + 1 + len(pairs) + p
        self.terms = self.yy + 1

    def xtx(self, i: int, j: int) -> int:
        """The term holding X'X[i, j]."""
        i, j = min(i, j), max(i, j)
        return j if i == 0 else self.zz[(i, j)]

    def xty(self, j: int) -> int:
        return self.y if j == 0 else self.zy[j]


def _moment_prefix(model: ModelName, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, _Layout]:
    """Prefix sums over days of every term a fit and its windows need: (days + 1) x terms x series.

    ``y`` (days x s) and ``x`` (days x s [x q]) as in :func:`series_placebo`. A day counts when the
    stock and every regressor have a return; the terms are those of the normal equations on the
    design z (:func:`evstudy.models.design`), the zero-return count, and the AR's y and y^2.
    """
    adjusted = model == "market_adjusted"
    x_ok = np.isfinite(x) if x.ndim == 2 else np.isfinite(x).all(axis=-1)
    valid = np.isfinite(y) & x_ok
    x0 = np.where(x_ok[..., None] if x.ndim == 3 else x_ok, x, 0.0)
    ar_y = np.where(valid, y - x0 if adjusted else y, 0.0)  # what the AR subtracts from
    z = np.ones(y.shape + (1,)) if adjusted else design(model, x0)
    layout = _Layout(z.shape[-1])
    terms = np.empty((y.shape[0], layout.terms, y.shape[1]))
    terms[:, 0] = valid
    zv = [z[..., j] * valid for j in range(1, layout.p)]
    for j in range(1, layout.p):
        terms[:, j] = zv[j - 1]
        terms[:, layout.zy[j]] = zv[j - 1] * ar_y
        for i in range(1, j + 1):
            terms[:, layout.zz[(i, j)]] = zv[i - 1] * zv[j - 1]
    terms[:, layout.y] = ar_y
    terms[:, layout.zero] = valid & (y == 0.0)
    terms[:, layout.yy] = ar_y**2
    return _prefix(terms), layout


def _gather(prefix: np.ndarray, rows: np.ndarray, local: np.ndarray | None, terms: slice = slice(None)) -> np.ndarray:
    """``prefix`` at ``rows`` (clipped to the data) as (terms, draws, series).

    ``rows`` is (draws,), shared by every series (whole prefix rows are copied), or (draws, series);
    ``local`` picks the series' columns of ``prefix`` (None: all of them, in order).
    """
    rows = np.clip(rows, 0, prefix.shape[0] - 1)
    if rows.ndim == 1:
        out = prefix[rows, terms]
        return (out if local is None else out[..., local]).transpose(1, 0, 2)
    width = prefix.shape[1] * prefix.shape[2]
    offsets = (np.arange(prefix.shape[1])[terms] * prefix.shape[2])[:, None, None]
    cols = np.arange(prefix.shape[2]) if local is None else local
    return prefix.reshape(-1)[rows * width + cols + offsets]


def _sums(prefix: np.ndarray, start: np.ndarray, stop: np.ndarray, local: np.ndarray | None,
          terms: slice = slice(None)) -> np.ndarray:
    """Sums over rows [start, stop) of every term, missing rows adding nothing: (terms, draws, series)."""
    out = _gather(prefix, stop, local, terms)
    out -= _gather(prefix, start, local, terms)
    return out


def _det(m: np.ndarray) -> np.ndarray:
    """Determinants of a stack of p x p matrices; 2 x 2 (the market model) in closed form, not LAPACK's LU."""
    if m.shape[-1] == 2:
        return m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
    return np.linalg.det(m)


def _inv(m: np.ndarray) -> np.ndarray:
    """Inverses of a stack of invertible p x p matrices; 2 x 2 by the adjugate over the determinant."""
    if m.shape[-1] != 2:
        return np.linalg.inv(m)
    out = np.empty_like(m)
    out[..., 0, 0], out[..., 1, 1] = m[..., 1, 1], m[..., 0, 0]
    out[..., 0, 1], out[..., 1, 0] = -m[..., 0, 1], -m[..., 1, 0]
    out /= _det(m)[..., None, None]
    return out


@dataclass(frozen=True)
class _Fits:
    """Estimation-window fits of a block of (draw, series) cells, as planes (draws x series) per entry."""

    usable: np.ndarray
    b: list[np.ndarray]
    xtx_inv: list[list[np.ndarray]]
    s2: np.ndarray

    def rows(self, keep: np.ndarray) -> _Fits:
        return _Fits(self.usable[keep], [v[keep] for v in self.b], [[v[keep] for v in r] for r in self.xtx_inv],
                     self.s2[keep])


def _dot(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """sum_j a_j b_j over planes, accumulated in j order: bit-identical to einsum's contraction of 1 or 2 terms."""
    out = a[0] * b[0]
    for j in range(1, len(a)):
        out = out + a[j] * b[j]
    return out


def _fit(est: np.ndarray, span_n: np.ndarray, layout: _Layout, span_days: int, min_returns: int,
         max_zero_share: float) -> _Fits:
    """The study's fit and exclusion rules (:func:`evstudy.models.fit`) from a block's window sums.

    ``est`` holds the estimation window's sums per term (terms x draws x series), ``span_n`` the valid
    days in the event span. b = (X'X)^-1 X'y, s^2 = (y'y - b'X'y) / (n - p). Written out entry by
    entry in the order of the einsum/LAPACK forms they replace (2 x 2 in closed form), so every
    value is bit-identical to them.
    """
    p = layout.p
    full = None
    n, zeros, yy = est[0], est[layout.zero], est[layout.yy]
    xty = [est[layout.xty(j)] for j in range(p)]
    scale = [np.sqrt(est[layout.xtx(j, j)]) for j in range(p)]
    positive = np.logical_and.reduce([s > 0 for s in scale])
    unit = [np.where(s > 0, s, 1.0) for s in scale]
    if p == 2:
        scaled = [[est[layout.xtx(i, j)] / unit[i] / unit[j] for j in range(2)] for i in range(2)]
        det_ok = positive & (np.abs(scaled[0][0] * scaled[1][1] - scaled[0][1] * scaled[1][0]) > 1e-12)
        m = [[np.where(det_ok, est[layout.xtx(i, j)], float(i == j)) for j in range(2)] for i in range(2)]
        det = m[0][0] * m[1][1] - m[0][1] * m[1][0]
        inv = [[m[1][1] / det, -m[0][1] / det], [-m[1][0] / det, m[0][0] / det]]
    else:
        xtx = np.stack([np.stack([est[layout.xtx(i, j)] for j in range(p)], axis=-1) for i in range(p)], axis=-2)
        units = np.stack(unit, axis=-1)
        det_ok = positive & (np.abs(_det(xtx / units[..., :, None] / units[..., None, :])) > 1e-12)
        full = _inv(np.where(det_ok[..., None, None], xtx, np.eye(p)))
        inv = [[full[..., i, j] for j in range(p)] for i in range(p)]
    if p <= 2:  # b_i = sum_j inv_ij xty_j, in einsum's order for two terms
        b = [_dot(row, xty) for row in inv]
        fitted = _dot(b, xty)
    else:  # einsum itself: for 3 or more terms it sums in another order
        xty_all = np.stack(xty, axis=-1)
        b_all = np.einsum("...pq,...q->...p", full, xty_all)
        b = [b_all[..., i] for i in range(p)]
        fitted = np.einsum("...p,...p->...", b_all, xty_all)
    df = n - p
    s2 = (yy - fitted) / np.where(df > 0, df, np.nan)
    usable = (n >= min_returns) & (zeros / np.maximum(n, 1) <= max_zero_share) & det_ok & (span_n == span_days)
    for value in b:
        usable &= np.isfinite(value)
    usable &= np.isfinite(s2) & (s2 > 0)
    return _Fits(usable, b, inv, s2)


def _window_cars(
    prefix: np.ndarray, layout: _Layout, d: np.ndarray, local: np.ndarray | None, fits: _Fits,
    windows: Sequence[Window], adjusted: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """CAR and S_CAR (MacKinlay 1997, eq. 10-11) per window of a block's cells: (draws, windows, series).

    CAR = sum y - v'b and S_CAR^2 = s^2 (L2 + v'(X'X)^-1 v), v = sum z over the window (einsum order);
    NaN where the cell is not usable.
    """
    p = layout.p
    bounds = sorted({w.start for w in windows} | {w.end + 1 for w in windows})
    gathered = {offset: _gather(prefix, d + offset, local, slice(0, p + 1)) for offset in bounds}
    shape = (fits.s2.shape[0], len(windows), fits.s2.shape[1])
    car, se = np.empty(shape), np.empty(shape)
    keep = fits.usable
    for w, window in enumerate(windows):
        v = gathered[window.end + 1] - gathered[window.start]  # (p + 1, draws, series)
        length = float(window.end - window.start + 1)
        if adjusted:
            car_part, var_part = v[layout.y], fits.s2 * length
        elif p <= 2:
            car_part = v[layout.y] - _dot(list(v[:p]), fits.b)
            quad = None  # einsum's three-operand order: sum over (i, j) of (v_i inv_ij) v_j
            for i in range(p):
                for j in range(p):
                    term = v[i] * fits.xtx_inv[i][j] * v[j]
                    quad = term if quad is None else quad + term
            var_part = fits.s2 * (length + quad)
        else:
            z_sum = np.stack(list(v[:p]), axis=-1)[:, None]  # (draws, 1, series, p), as einsum saw it before
            b_all, inv_all = np.stack(fits.b, axis=-1), np.stack([np.stack(r, axis=-1) for r in fits.xtx_inv], -2)
            car_part = v[layout.y] - np.einsum("dwsp,dsp->dws", z_sum, b_all)[:, 0]
            quad = np.einsum("dwsp,dspq,dwsq->dws", z_sum, inv_all, z_sum)[:, 0]
            var_part = fits.s2 * (length + quad)
        car[:, w] = np.where(keep, car_part, np.nan)
        se[:, w] = np.where(keep, np.sqrt(np.where(keep, var_part, np.nan)), np.nan)
    return car, se


def _placebo_cells(
    model: ModelName,
    stock: np.ndarray,
    regressors: np.ndarray,
    stock_cols: np.ndarray,
    regressor_cols: np.ndarray,
    day0: np.ndarray,
    *,
    estimation: Window,
    span: Window,
    windows: Sequence[Window],
    min_returns: int,
    max_zero_share: float,
    car_draws: Callable[[np.ndarray], np.ndarray] | None = None,
    chunk: int = PAIR_CHUNK,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which (pseudo-day, series) cells pass the exclusion rules, and CAR and S_CAR where asked.

    Returns ``usable`` (D, S), the draws ``rows`` whose CARs were computed, and ``car``/``se``
    (len(rows), windows, S). ``car_draws`` maps the cells that pass the count rules (enough
    estimation returns, few zero returns, a full event span; a superset of ``usable``) to the draws
    whose CARs are wanted; None computes them for every draw.
    """
    stock_cols = np.asarray(stock_cols, dtype=np.int64)
    regressor_cols = np.asarray(regressor_cols, dtype=np.int64)
    n_series = len(stock_cols)
    day0 = np.asarray(day0, dtype=np.int64)
    shared_day0 = day0.ndim == 1
    n_draws = day0.shape[0]
    adjusted = model == "market_adjusted"
    span_days = span.end - span.start + 1
    # Prefix rows past the last one any draw reads are never used: the sums stop there (a catalogue
    # event's draws all lie before its day 0, so this skips the panel's later years). Each kept
    # prefix row is the same sum as before, bit for bit: only the end is cut, never the start.
    if day0.size:
        reach = max(estimation.end, span.end, *(w.end for w in windows)) + 1
        stop = max(int(day0.max()) + reach, 1)
        stock, regressors = stock[:stop], regressors[:stop]

    pair_key = stock_cols * (regressors.shape[1] + 1) + regressor_cols
    if len(pair_key) and (np.diff(pair_key) > 0).all():  # each pair once, in order (series k on column k)
        unique_key, first = pair_key, np.arange(len(pair_key))
        pair_of = first
    else:
        unique_key, first, pair_of = np.unique(pair_key, return_index=True, return_inverse=True)
    u_stock, u_reg = stock_cols[first], regressor_cols[first]
    chunks = []
    for start in range(0, len(unique_key), chunk):
        in_chunk = np.flatnonzero((pair_of >= start) & (pair_of < start + chunk))
        local = pair_of[in_chunk] - start
        whole = len(local) == min(chunk, len(unique_key) - start) and (local == np.arange(len(local))).all()
        chunks.append((slice(start, start + chunk), in_chunk, None if whole else local))

    def cell_rows(series: np.ndarray, draws: slice | np.ndarray) -> np.ndarray:
        return day0[draws] if shared_day0 else day0[draws][:, series]

    def moments(pairs: slice) -> tuple[np.ndarray, _Layout]:
        return _moment_prefix(model, stock[:, u_stock[pairs]], regressors[:, u_reg[pairs]])

    # one chunk (a catalogue event's basket): its moment prefix, computed once, also holds the two counts
    # (exact integer sums either way); with many, each chunk's counts alone, not every chunk's moments held
    single = moments(chunks[0][0]) if len(chunks) == 1 else None
    rows = np.arange(n_draws)

    def block_step(series: np.ndarray) -> int:  # draws per block of the fits, at most BLOCK_CELLS cells
        return max(1, BLOCK_CELLS // max(len(series), 1))

    # One chunk whose fits take every draw in one block: every draw's window sums, found once for the count
    # rules and the fits. Otherwise the count rules gather their two terms only.
    window_sums = None
    if car_draws is not None:
        counted = np.zeros((n_draws, n_series), dtype=bool)
        for pairs, series, local in chunks:
            d = cell_rows(series, slice(None))
            reuse = single is not None and block_step(series) >= n_draws
            if single is not None:
                full, layout = single
                prefix, zero_term = (full, layout.zero) if reuse else (full[:, [0, layout.zero]], 1)
            else:
                y = stock[:, u_stock[pairs]]
                x = regressors[:, u_reg[pairs]]
                valid = np.isfinite(y) & (np.isfinite(x) if x.ndim == 2 else np.isfinite(x).all(axis=-1))
                prefix, zero_term = _prefix(np.stack([valid, valid & (y == 0.0)], axis=1).astype(float)), 1
            est = _sums(prefix, d + estimation.start, d + estimation.end + 1, local)
            span_n = _sums(prefix, d + span.start, d + span.end + 1, local, slice(0, 1))[0]
            if reuse:
                window_sums = (est, span_n)
            n, zeros = est[0], est[zero_term]
            counted[:, series] = (n >= min_returns) & (zeros / np.maximum(n, 1) <= max_zero_share) & (
                span_n == span_days)
        rows = np.asarray(car_draws(counted), dtype=np.int64)
    car_row = np.full(n_draws, -1)
    car_row[rows] = np.arange(len(rows))

    usable = np.zeros((n_draws, n_series), dtype=bool)
    car = np.full((len(rows), len(windows), n_series), np.nan)
    se = np.full_like(car, np.nan)
    for pairs, series, local in chunks:
        prefix, layout = single if single is not None else moments(pairs)
        step = block_step(series)
        for begin in range(0, n_draws, step):
            block = slice(begin, begin + step)
            d = cell_rows(series, block)
            if window_sums is not None:  # one chunk, one block: the count rules' sums
                est, span_n = window_sums
            else:
                est = _sums(prefix, d + estimation.start, d + estimation.end + 1, local)
                span_n = _sums(prefix, d + span.start, d + span.end + 1, local, slice(0, 1))[0]
            fits = _fit(est, span_n, layout, span_days, min_returns, max_zero_share)
            usable[block, series] = fits.usable
            wanted = car_row[block] >= 0
            if wanted.any():
                fits = fits if wanted.all() else fits.rows(wanted)
                block_car, block_se = _window_cars(prefix, layout, d[wanted], local, fits, windows, adjusted)
                out = car_row[block][wanted]
                if len(series) == n_series:
                    car[out], se[out] = block_car, block_se
                else:
                    car[out[:, None], :, series] = block_car.transpose(0, 2, 1)
                    se[out[:, None], :, series] = block_se.transpose(0, 2, 1)
    return usable, rows, car, se


def series_placebo(
    model: ModelName,
    stock: np.ndarray,
    regressors: np.ndarray,
    stock_cols: np.ndarray,
    regressor_cols: np.ndarray,
    day0: np.ndarray,
    *,
    estimation: Window,
    span: Window,
    windows: Sequence[Window],
    min_returns: int,
    max_zero_share: float,
    chunk: int = PAIR_CHUNK,
) -> SeriesPlacebo:
    """CAR and SCAR of every series at every pseudo day 0, by the study's own procedure, from prefix sums.

    ``stock`` is a (days x M) return panel and ``regressors`` the model's
    (days x M' [x q]) regressor panel; series s uses ``stock[:, stock_cols[s]]``
    and ``regressors[:, regressor_cols[s]]``. ``day0`` holds row positions:
    (D,) shared by every series or (D, S) per series. For each (day, series):
    fit ``model`` on the rows [d + est.start, d + est.end]; exclude the
    series, as the study does, if it has fewer than ``min_returns`` valid
    returns there, more than ``max_zero_share`` zero returns, an unfittable
    model, or a missing stock or regressor return in the event span; else
    CAR and S_CAR (MacKinlay 1997, eq. 10-11) per window and SCAR = CAR / S_CAR.

    With the design z_t (:func:`evstudy.models.design`) and the valid-day
    mask, the estimation window's X'X, X'y, y'y, count and zero count are
    differences of prefix sums; b = (X'X)^-1 X'y, SSR = y'y - b'X'y,
    s^2 = SSR / (n - p); a window's CAR = sum y - (sum z)' b and
    S_CAR^2 = s^2 (L2 + v'(X'X)^-1 v) with v = sum z over the window.
    The market-adjusted model is the constant-mean fit of R - R_m for s^2,
    with CAR = sum (R - R_m) and S_CAR^2 = s^2 L2, as in the study.
    """
    _, _, car, se = _placebo_cells(
        model, stock, regressors, stock_cols, regressor_cols, day0, estimation=estimation, span=span,
        windows=windows, min_returns=min_returns, max_zero_share=max_zero_share, chunk=chunk,
    )
    return SeriesPlacebo(np.asarray(day0), car, standardized_cars(car, se))


@dataclass(frozen=True)
class BasketPlacebo:
    """A basket's placebo distribution: per draw, the CAAR and BMP t per window and the members usable that day."""

    caar: np.ndarray  # (D, ..., windows), NaN where the draw is dropped
    bmp: np.ndarray  # (D, ..., windows), NaN where the draw is dropped or the BMP t is undefined
    n: np.ndarray  # (D, ...): members with clean data on that pseudo-day
    members: int

    @property
    def dropped(self) -> np.ndarray:
        """Per basket (the axes after the draws): draws dropped because a member had no clean data that day."""
        return (self.n < self.members).sum(axis=0)


def basket_placebo(series: SeriesPlacebo, columns: np.ndarray) -> BasketPlacebo:
    """Aggregate per-series placebo CARs into one basket's CAAR and BMP t per draw (last axis = members).

    A draw counts only if every member of the real basket passes the
    exclusion rules on that pseudo-day: the placebo statistic is then the
    same basket's, not a smaller one's whose spread differs. Other draws are
    NaN (dropped) and counted in :attr:`BasketPlacebo.dropped`.
    """
    car = series.car[..., columns]
    complete = np.isfinite(car).all(axis=-1)
    caar = np.where(complete, car.mean(axis=-1), np.nan)
    bmp = np.where(complete, bmp_t_statistic(series.scar[..., columns]), np.nan)
    return BasketPlacebo(caar, bmp, np.isfinite(car[:, 0]).sum(axis=-1), len(columns))


def basket_placebos(
    model: ModelName,
    stock: np.ndarray,
    regressors: np.ndarray,
    day0: np.ndarray,
    baskets: Sequence[np.ndarray],
    *,
    estimation: Window,
    span: Window,
    windows: Sequence[Window],
    min_returns: int,
    max_zero_share: float,
) -> list[BasketPlacebo]:
    """Each basket's placebo distribution, as :func:`basket_placebo` of :func:`series_placebo` gives it.

    ``baskets`` are column lists of ``stock``/``regressors`` (series k uses column k of both). The
    window CARs are computed only on draws where some basket may have every member usable (each
    passing the count rules there): a draw missing a member is dropped whatever the other members'
    CARs, so a large basket with a thinly traded or recently listed member on every pseudo-day does
    not pay for draws x members CARs it cannot use. Each draw's count of usable members stays exact.
    """
    baskets = [np.asarray(cols, dtype=np.int64) for cols in baskets]
    k = stock.shape[1]

    def wanted(counted: np.ndarray) -> np.ndarray:
        return np.flatnonzero(np.logical_or.reduce([counted[:, cols].all(axis=1) for cols in baskets]))

    usable, rows, car, se = _placebo_cells(
        model, stock, regressors, np.arange(k), np.arange(k), day0, estimation=estimation, span=span,
        windows=windows, min_returns=min_returns, max_zero_share=max_zero_share, car_draws=wanted,
    )
    scar = standardized_cars(car, se)
    out = []
    for cols in baskets:
        shape = (len(day0), len(windows))
        caar, bmp = np.full(shape, np.nan), np.full(shape, np.nan)
        complete = usable[rows][:, cols].all(axis=1)
        if complete.any():
            caar[rows[complete]] = car[complete][..., cols].mean(axis=-1)
            bmp[rows[complete]] = bmp_t_statistic(scar[complete][..., cols])
        out.append(BasketPlacebo(caar, bmp, usable[:, cols].sum(axis=-1), len(cols)))
    return out
