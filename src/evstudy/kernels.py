"""Compiled per-firm-event kernels of the request-file engine: one pass over each firm-event's days.

numpy spends a request file's time in ~10 passes over (firm-events x 262 days)
matrices, each allocating and touching a fresh block (benchmarks/README.md,
"Request files"). These numba kernels do the same arithmetic row by row, the
row's days in cache: :func:`measure_rows` gathers a firm-event's closes,
divides its returns, fits the model (the formulas of
:func:`evstudy.models.fit`), and measures the abnormal returns and CARs with
MacKinlay's variance (:func:`evstudy.abnormal.car_stats`);
:func:`pooled_rank_sums` turns each row's sort into Corrado ranks;
:func:`unit_cluster_sums` adds the unit-length residual vectors per day-0 cluster.
Sums run left to right, so results differ from numpy's pairwise and BLAS sums
in the last bits only (see benchmarks/README.md for how much).

Compiled code is kept between runs (``cache=True``) in the evstudy cache folder's
``numba/`` (``$NUMBA_CACHE_DIR`` if the user set it): the first run on a machine
compiles (seconds), later runs load it. ``nogil=True``: blocks run in threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from evstudy.models import SINGULAR_DET  # models.fit's rule, compiled in as a constant
from evstudy.prices.locations import default_cache_dir

NUMBA_DIR = "numba"


def _kernel(function: Callable[..., Any]) -> Any:
    """``numba.njit(cache=True, nogil=True)``, its compiled code kept in the evstudy cache folder.

    numba picks a function's cache folder when it is decorated, from
    ``numba.config.CACHE_DIR``; it is set for these decorations only, so
    other numba code in the process (and child processes) keeps its own.
    A folder that cannot be written falls back to numba's usual places.
    """
    saved = numba.config.CACHE_DIR
    if not os.environ.get("NUMBA_CACHE_DIR"):
        numba.config.CACHE_DIR = str(default_cache_dir() / NUMBA_DIR)
    try:
        return numba.njit(cache=True, nogil=True)(function)
    finally:
        numba.config.CACHE_DIR = saved

MODEL_CODES = {"market": 0, "constant_mean": 1, "market_adjusted": 2}


@_kernel
def _close(closes, day_cols, row, global_row, first_row):  # pragma: no cover - compiled
    """A valid close (positive, finite) of ``closes[row]`` on the calendar's ``global_row``, else NaN."""
    if global_row < 0:
        return np.nan
    value = closes[row, day_cols[global_row - first_row]]
    if value > 0.0 and value < np.inf:
        return value
    return np.nan


@_kernel
def measure_rows(
    closes, day_cols, first_row, stock_row, bench_returns, bench_of, first_close, n_est_days, event_start, model,
    selectors,
    min_close, spike_up, spike_down,
    combined, params, xtx_inv, s2, n_obs, r2, car, se, path, flat, zero_share, suspect, event_ok,
    share_positive,
):  # pragma: no cover - compiled
    """Per firm-event i: gather, returns, model fit, abnormal returns, CARs; every output array is filled.

    Row i's closes run over calendar rows ``first_close[i]`` .. ``first_close[i]
    + R`` of ``closes[stock_row[i]]``, its benchmark's returns are
    ``bench_returns[bench_of[i]]`` (by calendar row - ``first_row``; R returns: the estimation window's ``n_est_days`` first, the event
    span's W = ``path.shape[0]`` from column ``event_start``). The fit is OLS of
    the stock's return on [1, R_m] (model 0, market), [1] (1, constant mean)
    or the market-adjusted AR (2) over the days where both returns are valid;
    ``combined[i]`` gets the estimation residuals then the event ARs (NaN where
    missing). ``suspect``: a close under ``min_close`` or a return at or beyond
    the spike thresholds (a price-glitch candidate); ``event_ok``: bit 0 every
    benchmark event return valid, bit 1 every stock event return valid.
    """
    n = stock_row.shape[0]
    n_event = path.shape[0]
    n_ret = event_start + n_event
    n_windows = selectors.shape[0]
    y_all = np.empty(n_ret)
    m_all = np.empty(n_ret)
    ars = np.empty(n_event)
    for i in range(n):
        g0 = first_close[i]
        prev = _close(closes, day_cols, stock_row[i], g0, first_row)
        market = bench_returns[bench_of[i]]
        is_suspect = prev < min_close
        for j in range(n_ret):
            g = g0 + 1 + j
            c = _close(closes, day_cols, stock_row[i], g, first_row)
            r = c / prev - 1.0
            y_all[j] = r
            m_all[j] = market[g - first_row] if g >= 1 else np.nan
            if c < min_close or r >= spike_up or r <= spike_down:
                is_suspect = True
            prev = c
        suspect[i] = is_suspect

        # The estimation window: valid days, zero shares, moments.
        count, zeros_y, valid_m, zeros_m = 0, 0, 0, 0
        sum_y = sum_m = sum_mm = sum_my = sum_excess = 0.0
        for j in range(n_est_days):
            y, m = y_all[j], m_all[j]
            if np.isfinite(m):
                valid_m += 1
                if m == 0.0:
                    zeros_m += 1
            if np.isfinite(y) and np.isfinite(m):
                count += 1
                if y == 0.0:
                    zeros_y += 1
                sum_y += y
                sum_m += m
                sum_mm += m * m
                sum_my += m * y
                sum_excess += y - m
        flat[i] = zeros_m / max(valid_m, 1)
        zero_share[i] = zeros_y / max(count, 1)
        nf = float(count)
        n_obs[i] = nf
        alpha = beta = 0.0
        if model == 0:
            s0, s1 = np.sqrt(nf), np.sqrt(sum_mm)
            ok = s0 > 0 and s1 > 0
            if ok:
                c01 = sum_m / s0 / s1
                ok = abs(nf / s0 / s0 * (sum_mm / s1 / s1) - c01 * c01) > SINGULAR_DET
            a, b, d = (nf, sum_m, sum_mm) if ok else (1.0, 0.0, 1.0)
            det = a * d - b * b
            xtx_inv[i, 0, 0], xtx_inv[i, 0, 1], xtx_inv[i, 1, 0], xtx_inv[i, 1, 1] = d / det, -b / det, -b / det, a / det
            if ok:
                alpha = xtx_inv[i, 0, 0] * sum_y + xtx_inv[i, 0, 1] * sum_my
                beta = xtx_inv[i, 1, 0] * sum_y + xtx_inv[i, 1, 1] * sum_my
            else:
                alpha = beta = np.nan
            params[i, 0], params[i, 1] = alpha, beta
            df = nf - 2.0
        elif model == 1:
            ok = nf > 0 and abs(nf / np.sqrt(nf) / np.sqrt(nf)) > SINGULAR_DET
            xtx_inv[i, 0, 0] = 1.0 / nf if ok else 1.0
            alpha = xtx_inv[i, 0, 0] * sum_y if ok else np.nan
            params[i, 0] = alpha
            df = nf - 1.0
        else:
            alpha = sum_excess / max(nf, 1.0)  # the mean excess return
            df = nf - 1.0

        # Residuals, their sums of squares, and the share above zero.
        ssr = tss = 0.0
        ybar = sum_y / max(nf, 1.0)
        positive = 0
        for j in range(n_est_days):
            y, m = y_all[j], m_all[j]
            e = np.nan
            if np.isfinite(y) and np.isfinite(m):
                if model == 0:
                    e = y - (alpha + beta * m)
                elif model == 1:
                    e = y - alpha
                else:
                    e = (y - m) - alpha
                if np.isfinite(e):
                    ssr += e * e
                    positive += e > 0.0  # no branch: its sign is a coin toss, a mispredicted jump half the time
                tss += (y - ybar) * (y - ybar)
            combined[i, j] = e if np.isfinite(e) else np.nan
        s2[i] = ssr / df if df > 0 else np.nan
        r2[i] = 1.0 - ssr / tss if model == 0 and tss > 0 else np.nan
        share_positive[i] = positive / nf if nf > 0 else np.nan

        # The event span: abnormal returns, their running sum, each window's CAR and variance.
        flags = 3
        running = 0.0
        for k in range(n_event):
            y, m = y_all[event_start + k], m_all[event_start + k]
            if not np.isfinite(m):
                flags &= 2
            if not np.isfinite(y):
                flags &= 1
            if model == 0:
                ar = y - (alpha + m * beta)
            elif model == 1:
                ar = y - alpha
            else:
                ar = y - m
            ars[k] = ar
            combined[i, n_est_days + k] = ar if np.isfinite(ar) else np.nan
            running += ar
            path[k, i] = running
        event_ok[i] = flags
        for w in range(n_windows):
            total = days = sum_mw = 0.0
            for k in range(n_event):
                if selectors[w, k] > 0:
                    total += ars[k]
                    days += 1.0
                    sum_mw += m_all[event_start + k]
            if model == 0:
                correction = (days * (xtx_inv[i, 0, 0] * days + xtx_inv[i, 0, 1] * sum_mw)
                              + sum_mw * (xtx_inv[i, 1, 0] * days + xtx_inv[i, 1, 1] * sum_mw))
            elif model == 1:
                correction = days * xtx_inv[i, 0, 0] * days
            else:
                correction = 0.0
            car[w, i] = total
            se[w, i] = np.sqrt(s2[i] * (days + correction))


@_kernel
def pooled_rank_sums(values, order, n_est_days, codes, in_pool, totals, present_count):  # pragma: no cover
    """Add each row's Corrado ranks U = K / (T + 1), per window's pool, into ``totals`` (groups x windows x L+W).

    ``values`` (rows x L + W): estimation ARs then event ARs, not finite where
    missing; ``order`` sorts each row, the missing ARs last (as +inf or NaN). For window w the pool is every
    estimation AR and the event ARs of the days ``in_pool[w]``; ranks start at
    1, ties averaged, T the pool's ARs present. Ranks are summed as integers
    (twice the average rank) over consecutive rows sharing a group and every
    window's T, then weighted by 1 / (T + 1) once. ``present_count`` (groups x
    L + W) counts each column's ARs.
    """
    n, width = values.shape
    n_windows = in_pool.shape[0]
    member = np.ones((width, n_windows), dtype=np.int64)  # member[c, w]: column c is in window w's pool
    for k in range(width - n_est_days):
        for w in range(n_windows):
            member[n_est_days + k, w] = 1 if in_pool[w, k] else 0
    seg = np.zeros((width, n_windows), dtype=np.int64)  # twice the rank sums of the current run of rows
    seg_t = np.full(n_windows, -1, dtype=np.int64)
    t = np.zeros(n_windows, dtype=np.int64)
    rank = np.zeros(n_windows, dtype=np.int64)
    tied = np.zeros(n_windows, dtype=np.int64)
    seg_group = -1
    for i in range(n + 1):
        present = 0
        if i < n:
            while present < width and np.isfinite(values[i, order[i, present]]):
                present += 1
            event_present = 0  # T of each pool: the estimation ARs present, and its event days' ARs present
            for c in range(n_est_days, width):
                event_present += np.isfinite(values[i, c])
            for w in range(n_windows):
                t[w] = present - event_present
            for c in range(n_est_days, width):
                if np.isfinite(values[i, c]):
                    for w in range(n_windows):
                        t[w] += member[c, w]
        same = i < n and codes[i] == seg_group
        for w in range(n_windows):
            same = same and t[w] == seg_t[w]
        if not same:
            if seg_group >= 0:  # the finished run of rows: weight its integer sums once
                for w in range(n_windows):
                    scale = 1.0 / (seg_t[w] + 1.0)
                    for c in range(width):
                        if seg[c, w] != 0:
                            totals[seg_group, w, c] += (seg[c, w] * 0.5) * scale
                            seg[c, w] = 0
            if i == n:
                break
            seg_group = codes[i]
            seg_t[:] = t
        g = codes[i]
        for w in range(n_windows):
            rank[w] = 0
        pos = 0
        while pos < present:
            idx = order[i, pos]
            present_count[g, idx] += 1
            if pos + 1 == present or values[i, order[i, pos + 1]] != values[i, idx]:  # no tie
                if idx < n_est_days:  # an estimation AR: the next rank in every pool
                    for w in range(n_windows):
                        rank[w] += 1
                        seg[idx, w] += 2 * rank[w]
                else:  # an event AR: the next rank of each pool it is in
                    for w in range(n_windows):
                        rank[w] += member[idx, w]
                        seg[idx, w] += 2 * rank[w] * member[idx, w]
                pos += 1
                continue
            end = pos + 1  # a run of equal values: each pool's members share their average rank
            while end < present and values[i, order[i, end]] == values[i, idx]:
                end += 1
            for w in range(n_windows):
                tied[w] = 0
            for q in range(pos, end):
                for w in range(n_windows):
                    tied[w] += member[order[i, q], w]
            for q in range(pos, end):
                c = order[i, q]
                if q > pos:
                    present_count[g, c] += 1
                for w in range(n_windows):
                    seg[c, w] += (2 * rank[w] + tied[w] + 1) * member[c, w]
            for w in range(n_windows):
                rank[w] += tied[w]
            pos = end


@_kernel
def unit_cluster_sums(values, n_days, rows, cluster, cluster_all, sums, varies):  # pragma: no cover - compiled
    """z_i = (e_i - mean e_i) / ||e_i - mean e_i|| over each row's valid days, added into its clusters' ``sums``.

    ``values[rows[i], :n_days]`` are firm-event i's estimation residuals (NaN
    where not used); z_i is added to ``sums[cluster[i]]`` and, where
    ``cluster_all[i] >= 0``, to ``sums[cluster_all[i]]``, in the order of i.
    A row whose residuals do not vary (fewer than 3, or a norm at rounding
    level) adds nothing and gets ``varies`` 0.
    """
    z = np.empty(n_days)
    for i in range(rows.shape[0]):
        r = rows[i]
        count = 0
        total = 0.0
        largest = 0.0
        for j in range(n_days):
            e = values[r, j]
            if np.isfinite(e):
                count += 1
                total += e
                largest = max(largest, e * e)
        mean = total / max(count, 1)
        norm2 = 0.0
        for j in range(n_days):
            e = values[r, j]
            z[j] = e - mean if np.isfinite(e) else 0.0
            norm2 += z[j] * z[j]
        norm = np.sqrt(norm2)
        scale = np.sqrt(largest)
        if count >= 3 and norm > 1e-12 * max(scale, 1e-300) * np.sqrt(max(count, 1)):
            varies[i] = 1.0
            for j in range(n_days):
                z[j] /= norm
            for j in range(n_days):
                sums[cluster[i], j] += z[j]
            if cluster_all[i] >= 0:
                for j in range(n_days):
                    sums[cluster_all[i], j] += z[j]
        else:
            varies[i] = 0.0
