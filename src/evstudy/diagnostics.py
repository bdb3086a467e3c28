"""Estimation-window hygiene: can a stock's model fit be trusted, and on which days?

A market model estimated over 240 days assumes one regime. A SPAC that merges
inside the window (USAR: flat near $10 until its 2025-03-14 merger, then a
volatile operating company) mixes two regimes and yields a meaningless fit
(beta -0.2, R² 0.001). This module flags, per series and vectorized over
series, what makes a fit untrustworthy:

- ``variance_break``: a change of residual variance (Inclán & Tiao 1994,
  centred cumulative sum of squares, in the kurtosis-robust form of Sansó,
  Aragó & Carrion 2004), with the date the new regime starts;
- ``mean_break``: a shift of the residuals' level (OLS-CUSUM, Ploberger &
  Krämer 1992);
- ``flat_run``: a long run of exactly-zero returns (halted, untraded or a
  SPAC's trust value);
- ``few_returns``: fewer valid returns than the study requires;
- ``outlier``: a residual beyond 8 robust standard deviations, with its date.

Flags never exclude anything by themselves: they are shown. A config may give
a ticker an ``active_from`` date, or the user may accept detected breaks
(``accept_breaks``, CLI ``--accept-breaks``); the series is then estimated on
the active part only (``trimmed`` flag), never silently. Both fits, full
window and active part, are kept for the report.

Also here: the market-adjusted CARs every report shows as a robustness check
of the model choice, buy-and-hold abnormal returns for long windows and the
long table of every model coefficient with its standard error.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evstudy.abnormal import AbnormalReturns, abnormal_returns, buy_and_hold, car_stats
from evstudy.config import StudyConfig, Window
from evstudy.errors import InsufficientDataError
from evstudy.models import ModelFit, alpha_beta, exact_fit, fit, param_names
from evstudy.returns import Glitches, nan_median, zero_share_of  # noqa: F401 - nan_median: tests import it here
from evstudy.tables import Rows

BREAK_CRITICAL_5PCT = 1.358  # 5% quantile of sup|Brownian bridge| (Inclán & Tiao 1994, Table 1)
OUTLIER_SIGMAS = 8.0  # |residual - median| beyond this many robust sigmas is an outlier
FLAT_RUN_DAYS = 10  # this many consecutive exactly-zero returns is a flat run
MIN_BREAK_OBS = 30  # fewer valid residuals: no break test
MAD_TO_SIGMA = 1.4826  # sigma = 1.4826 x MAD for a normal distribution
BHAR_MIN_DAYS = 11  # buy-and-hold abnormal returns for windows longer than 10 days
NOT_ACTED_ON = "; not acted on: set active_from or use --accept-breaks to estimate from this date"

DIAGNOSTIC_COLUMNS = ["event", "ticker", "benchmark", "flag", "detail", "date"]
FIT_COMPARISON_COLUMNS = [
    "event", "ticker", "benchmark", "fit", "used", "estimation_start", "estimation_end", "n_obs", "alpha", "beta",
    "r2", "sigma", "window_start", "window_end", "car", "se", "t", "p_value",
]
ROBUSTNESS_COLUMNS = ["event", "ticker", "benchmark", "model", "window_start", "window_end", "car", "se", "t", "p_value"]
BHAR_COLUMNS = ["event", "ticker", "benchmark", "window_start", "window_end", "bh_return", "bh_expected", "bhar"]
PARAMETER_COLUMNS = ["event", "ticker", "benchmark", "model", "param", "estimate", "se"]


EXACT_FIT_REASON = (
    "the model fits exactly (residual sigma below 1e-10, R² = 1): the series is a copy or a multiple of its "
    "benchmark, so its residual sigma is rounding error and any t would be spurious"
)

# --------------------------------------------------------------------------- screens


def screen_reasons(reasons: list[str], glitches: Glitches, dates: pd.DatetimeIndex, fitted: ModelFit) -> list[str]:
    """Add the glitch and exact-fit screens to a study's exclusion reasons (one per series).

    ``glitches``: :func:`~evstudy.returns.price_glitches` of the series' closes
    (a catalogue screens several events' closes in one call), whose rows are
    ``dates``. A glitch is named ahead of any other reason (it is the cause),
    except that a series without prices stays "no prices"; an exact fit is
    named where nothing else excluded the series. The scan applies the same two
    screens (:func:`evstudy.returns.price_glitches`, :func:`exact_fit`).
    """
    exact = exact_fit(fitted)
    out = []
    for k, reason in enumerate(reasons):  # string choice per series; the screens above are vectorized
        glitch = glitches.reason(k, dates) if glitches.kind[k] else ""
        if glitch and not reason.startswith("no prices"):
            reason = glitch
        elif not reason and exact[k]:
            reason = EXACT_FIT_REASON
        out.append(reason)
    return out


def check_benchmarks_trade(returns: np.ndarray, benchmarks: list[str], max_zero_share: float, who: str,
                           window: Window) -> None:
    """Refuse a benchmark flat on more than ``max_zero_share`` of the estimation window.

    ``returns`` holds the estimation window's returns (days x benchmarks) of
    ``benchmarks``, in that order. A stock's beta against a benchmark that
    does not move is estimated from the few days it did: meaningless, and
    every AR inherits it.
    """
    shares = zero_share_of(returns)
    for bench, share in zip(benchmarks, shares):
        if share > max_zero_share:
            raise InsufficientDataError(f"{who}: {flat_benchmark_reason(bench, share, max_zero_share, window)}")


def flat_benchmark_reason(bench: str, share: float, max_zero_share: float, window: Window) -> str:
    """Why a benchmark flat on ``share`` of the estimation window cannot carry a beta (run and request files alike)."""
    return (
        f"benchmark {bench} is flat on {share:.0%} of the estimation window {window.label} "
        f"(exactly-zero returns; allowed: {max_zero_share:.0%}): betas against it would be meaningless; "
        f"check its prices or choose a benchmark that trades (e.g. SPY)"
    )


# --------------------------------------------------------------------------- statistics



@dataclass(frozen=True)
class BreakTest:
    """A sup-CUSUM break test per series (arrays indexed by series).

    ``start`` is the row where the new regime's first observation lies (-1 when
    the statistic is undefined); ``before`` and ``after`` describe the two
    regimes on the raw residuals (standard deviation for a variance break, mean
    for a mean break).
    """

    statistic: np.ndarray  # (K,) NaN where undefined (too few observations)
    start: np.ndarray  # (K,) int
    before: np.ndarray
    after: np.ndarray

    @functools.cached_property
    def significant(self) -> np.ndarray:
        """(K,) whether the break is significant at 5%; computed once (flag_table reads it per series)."""
        return np.nan_to_num(self.statistic, nan=0.0) > BREAK_CRITICAL_5PCT


def robust_scale(resid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the median and 1.4826 x the median absolute deviation, ignoring NaN (Hampel 1974)."""
    valid = np.isfinite(resid).any(axis=0)
    safe = np.where(valid[None, :], resid, 0.0)
    center = nan_median(safe)
    scale = MAD_TO_SIGMA * nan_median(np.abs(safe - center))
    return np.where(valid, center, np.nan), np.where(valid, scale, np.nan)


def winsorize(resid: np.ndarray, sigmas: float = OUTLIER_SIGMAS,
              robust: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Clip each column at median ± ``sigmas`` robust sigmas (NaN stays NaN; a zero MAD clips nothing).

    ``robust``: :func:`robust_scale` of ``resid`` if the caller has it already.
    """
    center, scale = robust_scale(resid) if robust is None else robust
    ok = np.isfinite(scale) & (scale > 0)
    low = np.where(ok, center - sigmas * scale, -np.inf)
    high = np.where(ok, center + sigmas * scale, np.inf)
    return np.clip(resid, low, high)


def _split_start(valid: np.ndarray, last_old: np.ndarray) -> np.ndarray:
    """Row of the first valid observation after row ``last_old`` in each column."""
    rows = np.arange(valid.shape[0])[:, None]
    after = valid & (rows > last_old[None, :])
    return np.where(after.any(axis=0), after.argmax(axis=0), -1)


def _segment_stat(values: np.ndarray, valid: np.ndarray, start: np.ndarray, func: str) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(values.shape[0])[:, None]
    first = valid & (rows < start[None, :])
    second = valid & (rows >= start[None, :]) & (start[None, :] >= 0)
    out = []
    for part in (first, second):
        n = part.sum(axis=0)
        if func == "rms":
            value = np.sqrt(np.where(part, values**2, 0.0).sum(axis=0) / np.maximum(n, 1))
        else:
            value = np.where(part, values, 0.0).sum(axis=0) / np.maximum(n, 1)
        out.append(np.where(n > 0, value, np.nan))
    return out[0], out[1]


def variance_break(resid: np.ndarray, winsorized: np.ndarray | None = None) -> BreakTest:
    """Test each column of ``resid`` (days x series, NaN = missing) for one change of variance.

    Notes
    -----
    Inclán & Tiao (1994), "Use of cumulative sums of squares for retrospective
    detection of changes of variance", JASA 89(427), eq. 2 and section 2.1:
    with C_k = sum_{t<=k} a_t^2, the centred cumulative sum of squares is
    D_k = C_k / C_T - k / T, and sqrt(T/2) max_k |D_k| converges to
    sup |W*(r)| of a Brownian bridge, whose 5% critical value is 1.358.
    That limit assumes Gaussian residuals; daily returns are fat-tailed and
    the plain statistic then flags most stocks. We use the kurtosis-robust
    form of Sansó, Aragó & Carrion (2004), "Testing for changes in the
    unconditional variance of financial time series", Revista de Economía
    Financiera 4, the kappa_1 statistic:

        kappa_1 = max_k T^(-1/2) |C_k - (k/T) C_T| / sqrt(eta_4 - sigma^4),

    eta_4 = T^-1 sum a_t^4, sigma^2 = C_T / T, with the same 1.358 critical
    value (it equals Inclán-Tiao for Gaussian data, where eta_4 = 3 sigma^4).
    The residuals are first winsorized at 8 robust sigmas, so one extreme day
    (flagged separately as an outlier) can neither mask nor fake a regime.
    The break k* = argmax is the last day of the old regime; ``start`` is the
    first valid day after it. ``winsorized``: :func:`winsorize` of ``resid`` if the caller has it already.
    """
    a = winsorize(resid) if winsorized is None else winsorized
    valid = np.isfinite(a)
    T = valid.sum(axis=0)
    a2 = np.where(valid, a**2, 0.0)
    C = np.cumsum(a2, axis=0)
    k = np.cumsum(valid, axis=0)
    CT = C[-1]
    Tsafe = np.maximum(T, 1)
    eta4 = (a2**2).sum(axis=0) / Tsafe
    denom = np.sqrt(eta4 - (CT / Tsafe) ** 2)
    ok = (T >= MIN_BREAK_OBS) & np.isfinite(denom) & (denom > 0)
    path = np.abs(C - k / Tsafe * CT) / np.sqrt(Tsafe) / np.where(ok, denom, 1.0)
    path = np.where(valid, path, -1.0)
    last_old = path.argmax(axis=0)
    statistic = np.where(ok, path.max(axis=0), np.nan)
    start = np.where(ok, _split_start(valid, last_old), -1)
    before, after = _segment_stat(resid, np.isfinite(resid), start, "rms")
    return BreakTest(statistic, start, before, after)


def mean_break(resid: np.ndarray, winsorized: np.ndarray | None = None) -> BreakTest:
    """Test each column of ``resid`` for one shift of its mean (OLS-CUSUM).

    Notes
    -----
    Ploberger & Krämer (1992), "The CUSUM test with OLS residuals",
    Econometrica 60(2): max_k |sum_{t<=k} e_t| / (sigma_hat sqrt(T)) converges
    to sup |W*(r)| of a Brownian bridge, 5% critical value 1.358. The
    residuals are winsorized at 8 robust sigmas and centred (so the partial
    sums end at zero); sigma_hat is their standard deviation. ``before`` and
    ``after`` are the raw residual means on either side of the argmax (``winsorized`` as in
    :func:`variance_break`).
    """
    a = winsorize(resid) if winsorized is None else winsorized
    valid = np.isfinite(a)
    T = valid.sum(axis=0)
    Tsafe = np.maximum(T, 1)
    mean = np.where(valid, a, 0.0).sum(axis=0) / Tsafe
    e = np.where(valid, a - mean, 0.0)
    sigma = np.sqrt((e**2).sum(axis=0) / np.maximum(T - 1, 1))
    ok = (T >= MIN_BREAK_OBS) & (sigma > 0)
    path = np.abs(np.cumsum(e, axis=0)) / (np.where(ok, sigma, 1.0) * np.sqrt(Tsafe))
    path = np.where(valid, path, -1.0)
    last_old = path.argmax(axis=0)
    statistic = np.where(ok, path.max(axis=0), np.nan)
    start = np.where(ok, _split_start(valid, last_old), -1)
    before, after = _segment_stat(resid, np.isfinite(resid), start, "mean")
    return BreakTest(statistic, start, before, after)


def longest_zero_run(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the length of the longest run of exactly-zero returns, and the row it starts on.

    A missing return (NaN) ends a run. Vectorized with cumulative sums: the
    run length at row t is the count of zeros so far minus that count at the
    last non-zero row before t.
    """
    zero = returns == 0.0
    count = np.cumsum(zero, axis=0)
    reset = np.maximum.accumulate(np.where(~zero, count, 0), axis=0)
    run = count - reset
    length = run.max(axis=0) if len(run) else np.zeros(returns.shape[1], dtype=int)
    end = run.argmax(axis=0) if len(run) else np.zeros(returns.shape[1], dtype=int)
    return length.astype(int), (end - length + 1).astype(int)


@dataclass(frozen=True)
class WindowDiagnostics:
    """Every hygiene statistic for K series over one estimation window."""

    n: np.ndarray  # (K,) valid residuals
    variance: BreakTest
    mean: BreakTest
    zero_run: np.ndarray  # (K,) longest run of zero returns
    zero_run_start: np.ndarray  # (K,) its first row
    center: np.ndarray  # (K,) residual median
    scale: np.ndarray  # (K,) robust sigma
    outliers: np.ndarray  # (L, K) bool


def diagnose(resid: np.ndarray, stock: np.ndarray) -> WindowDiagnostics:
    """All checks on a fit's residuals and the raw returns (both days x series), at once."""
    center, scale = robust_scale(resid)
    ok = np.isfinite(scale) & (scale > 0)
    with np.errstate(invalid="ignore"):
        outliers = ok[None, :] & (np.abs(resid - center) > OUTLIER_SIGMAS * np.where(ok, scale, 1.0))
    run, run_start = longest_zero_run(stock)
    clipped = winsorize(resid, robust=(center, scale))  # both break tests' input, from the one robust scale
    return WindowDiagnostics(
        np.isfinite(resid).sum(axis=0), variance_break(resid, clipped), mean_break(resid, clipped), run, run_start,
        center, scale,
        np.nan_to_num(outliers, nan=0).astype(bool),
    )


# --------------------------------------------------------------------------- trimming


@dataclass(frozen=True)
class Hygiene:
    """The estimation-window fits of one event, with what was trimmed and why.

    ``fitted`` is what the study uses: the full window, or for trimmed series
    the rows from ``first_row`` on. ``active`` is every series fitted from its
    ``active_row`` (the trimming row, or else its detected variance break), for
    the side-by-side comparison; ``compare`` marks the series shown that way.
    """

    tickers: tuple[str, ...]
    full: ModelFit
    fitted: ModelFit
    active: ModelFit
    full_diag: WindowDiagnostics
    used_diag: WindowDiagnostics
    first_row: np.ndarray  # (K,) 0 = whole window
    active_row: np.ndarray  # (K,)
    how: tuple[str, ...]  # per series: "", "active_from" or "break"
    compare: np.ndarray  # (K,) bool
    used_stock: np.ndarray  # (L, K) raw returns of the rows used (NaN elsewhere)
    dates: pd.DatetimeIndex  # estimation-window dates

    @property
    def trimmed(self) -> np.ndarray:
        return np.array([h != "" for h in self.how], dtype=bool)

    def panel(self, values: np.ndarray, first_est_row: int) -> np.ndarray:
        """A whole-panel array (T x K [x q]) with each trimmed series' days before its first used return as NaN.

        ``first_est_row`` is the panel row of the estimation window's first day.
        Tests that re-estimate on the panel (rank tests, placebo dates) then
        see the same active regime as the fit.
        """
        return _cut(values, np.where(self.trimmed, first_est_row + self.first_row, 0))


def _cut(values: np.ndarray, first_row: np.ndarray) -> np.ndarray:
    rows = np.arange(values.shape[0]).reshape((-1,) + (1,) * (values.ndim - 1))
    first = first_row.reshape((1, -1) + (1,) * (values.ndim - 2))
    return np.where(rows >= first, values, np.nan)


def estimation_hygiene(
    config: StudyConfig,
    tickers: list[str],
    y: np.ndarray,
    x: np.ndarray,
    stock: np.ndarray,
    dates: pd.DatetimeIndex,
) -> Hygiene:
    """Fit the estimation window, run every check, and trim where the config says so.

    ``y`` and ``x`` are the model's dependent variable and regressors over the
    estimation window (:func:`evstudy.models.model_inputs`), ``stock`` the raw
    returns. A ticker in ``config.active_from`` is estimated on the returns
    after its active_from day: the return *on* that day is measured from the
    last close of the old regime (USAR's +72% on its merger day), so it
    belongs to neither. With ``config.accept_breaks``, a series with a
    significant variance break is estimated from the break's first day on.
    """
    model = config.model
    full = fit(model, y, x)
    full_diag = diagnose(full.residuals, stock)
    k = len(tickers)
    first_row = np.zeros(k, dtype=int)
    how = [""] * k
    for i, ticker in enumerate(tickers):  # a dictionary lookup per series, no arithmetic
        day = config.active_from.get(ticker)
        if day is not None:
            first_row[i] = int(dates.searchsorted(pd.Timestamp(day), side="right"))
            how[i] = "active_from" if first_row[i] > 0 else ""
    breaks = full_diag.variance
    accepted = config.accept_breaks & breaks.significant & (first_row == 0) & (breaks.start > 0)
    first_row = np.where(accepted, breaks.start, first_row)
    how = [("break" if accepted[i] else h) for i, h in enumerate(how)]
    trimmed = np.array([h != "" for h in how], dtype=bool)
    active_row = np.where(trimmed, first_row, np.where(breaks.significant, breaks.start, 0))
    active = fit(model, _cut(y, active_row), x) if active_row.any() else full  # nothing cut: the same fit
    fitted = _choose(trimmed, active, full)
    used_stock = _cut(stock, first_row)
    used_diag = diagnose(fitted.residuals, used_stock) if trimmed.any() else full_diag
    compare = trimmed | (breaks.significant & (breaks.start > 0))
    return Hygiene(tuple(tickers), full, fitted, active, full_diag, used_diag, first_row, active_row, tuple(how), compare,
                   used_stock, dates)


def _choose(mask: np.ndarray, a: ModelFit, b: ModelFit) -> ModelFit:
    """Series-wise ``a`` where ``mask`` else ``b`` (both fitted with the same model and window length)."""
    def pick(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
        shape = [1] * x.ndim
        shape[axis] = -1
        return np.where(mask.reshape(shape), x, y)

    return ModelFit(
        a.model, pick(a.params, b.params, 0), pick(a.xtx_inv, b.xtx_inv, 0), pick(a.s2, b.s2, 0),
        pick(a.n, b.n, 0), pick(a.df, b.df, 0), pick(a.r2, b.r2, 0), pick(a.residuals, b.residuals, 1),
    )


def trim_reasons(config: StudyConfig, hyg: Hygiene) -> list[str]:
    """An exclusion reason for each trimmed series left with too few returns ("" otherwise)."""
    out = []
    need = config.min_estimation_returns
    for i, how in enumerate(hyg.how):
        n = int(hyg.fitted.n[i])
        if not how or n >= need:
            out.append("")
            continue
        start = hyg.dates[hyg.first_row[i]].date() if hyg.first_row[i] < len(hyg.dates) else None
        why = _trim_words(config, hyg, i)
        if start is None:
            out.append(f"{why}, after the estimation window ends ({hyg.dates[-1].date()}): no returns to estimate on")
        else:
            out.append(
                f"only {n} valid returns from {start} to {hyg.dates[-1].date()} ({why}); needs {need} "
                f"(min_estimation_returns)"
            )
    return out


def _trim_words(config: StudyConfig, hyg: Hygiene, i: int) -> str:
    if hyg.how[i] == "break":
        return f"variance break detected from {hyg.dates[hyg.first_row[i]].date()}, accepted with --accept-breaks"
    return f"active_from {config.active_from[hyg.tickers[i]]} in the config"


# --------------------------------------------------------------------------- tables


def _pct(x: float) -> str:
    return f"{x * 100:+.2f}%"


def flag_table(
    config: StudyConfig,
    event_id: str,
    tickers: list[str],
    benchmarks: list[str],
    hyg: Hygiene,
) -> Rows:
    """The diagnostics table: one row per flag (outliers: one row per date), in series order."""
    rows: list[tuple] = []
    need = config.min_estimation_returns
    dates = hyg.dates
    stamps = dates.to_numpy(dtype="datetime64[ns]")  # a flag's date by position, without a Timestamp per flag
    no_date = np.datetime64("NaT", "ns")
    trimmed = hyg.trimmed

    def add(i: int, flag: str, detail: str, row: int | None) -> None:
        day = stamps[row] if row is not None and 0 <= row < len(stamps) else no_date
        rows.append((event_id, tickers[i], benchmarks[i], flag, detail, day))

    for i in _flagged(hyg, need).tolist():  # builds text only for the few flagged series
        scopes = [("", hyg.full_diag, hyg.full)]
        if trimmed[i]:
            start = dates[hyg.first_row[i]].date() if hyg.first_row[i] < len(dates) else "after the window"
            add(i, "trimmed", f"estimated on returns from {start} ({_trim_words(config, hyg, i)}); "
                f"{int(hyg.fitted.n[i])} returns used, {int(hyg.full.n[i])} in the full window", hyg.first_row[i])
            scopes.append(("active part: ", hyg.used_diag, hyg.fitted))
        elif hyg.full.n[i] < need:
            add(i, "few_returns", f"{int(hyg.full.n[i])} valid returns in the estimation window "
                f"{config.estimation_window.label}, {need} needed", None)
        for prefix, diag, fitted in scopes:
            var, mean = diag.variance, diag.mean
            if var.significant[i]:
                hint = "" if trimmed[i] or config.accept_breaks else NOT_ACTED_ON
                add(i, "variance_break",
                    f"{prefix}residual s.d. {var.before[i]:.2%} before, {var.after[i]:.2%} from this date "
                    f"(kappa_1 = {var.statistic[i]:.2f} > {BREAK_CRITICAL_5PCT}, 5%){'' if prefix else hint}",
                    int(var.start[i]))
            if mean.significant[i]:
                add(i, "mean_break",
                    f"{prefix}mean residual {_pct(mean.before[i])}/day before, {_pct(mean.after[i])}/day from this "
                    f"date (OLS-CUSUM {mean.statistic[i]:.2f} > {BREAK_CRITICAL_5PCT}, 5%)", int(mean.start[i]))
            if diag.zero_run[i] >= FLAT_RUN_DAYS:
                end = min(int(diag.zero_run_start[i] + diag.zero_run[i] - 1), len(dates) - 1)
                add(i, "flat_run", f"{prefix}{int(diag.zero_run[i])} consecutive zero returns, to {dates[end].date()}",
                    int(diag.zero_run_start[i]))
            if trimmed[i] and not prefix:
                continue  # outliers of the part left out are not shown
            for row in np.flatnonzero(diag.outliers[:, i]):
                resid = fitted.residuals[row, i]
                z = (resid - diag.center[i]) / diag.scale[i]
                add(i, "outlier", f"{prefix}residual {_pct(resid)}, {z:+.1f} robust sigmas", int(row))
    if not rows:
        return Rows.empty(DIAGNOSTIC_COLUMNS)
    columns = list(zip(*rows))
    return Rows({
        **{name: np.array(values, dtype=object) for name, values in zip(DIAGNOSTIC_COLUMNS[:-1], columns)},
        "date": np.array(columns[-1], dtype="datetime64[ns]"),
    })


def _flagged(hyg: Hygiene, need: int) -> np.ndarray:
    """The series :func:`flag_table` writes a row for (any flag of the full window; trimmed series), in order."""
    diag = hyg.full_diag
    any_flag = (hyg.trimmed | (hyg.full.n < need) | diag.variance.significant | diag.mean.significant
                | (diag.zero_run >= FLAT_RUN_DAYS) | diag.outliers.any(axis=0))
    return np.flatnonzero(any_flag)


def _car_rows(
    event_id: str, tickers: list[str], benchmarks: list[str], fitted: ModelFit, ar: AbnormalReturns,
    windows: list[Window], lead: dict[str, object], columns: list[str],
) -> Rows:
    stats = car_stats(fitted, ar, windows)
    n_series, n_win = len(tickers), len(windows)
    return Rows.of(columns, n_series * n_win, {
        "event": event_id,
        "ticker": np.tile(np.asarray(tickers, dtype=object), n_win),
        "benchmark": np.tile(np.asarray(benchmarks, dtype=object), n_win),
        **{key: (np.tile(value, n_win) if isinstance(value, np.ndarray) else value) for key, value in lead.items()},
        "window_start": np.repeat([w.start for w in windows], n_series),
        "window_end": np.repeat([w.end for w in windows], n_series),
        "car": stats.car.ravel(),
        "se": stats.se.ravel(),
        "t": stats.t.ravel(),
        "p_value": stats.p_value.ravel(),
    })


def robustness_windows(config: StudyConfig) -> list[Window]:
    """Day 0 and every event window: what the market-adjusted robustness table covers."""
    return list(dict.fromkeys([Window(0, 0), *config.windows]))


@dataclass(frozen=True)
class EventWindowInputs:
    """Event-window arrays of the included series (days x series), as the study computed them."""

    stock: np.ndarray  # raw returns
    x: np.ndarray  # the model's regressors
    offset: np.ndarray  # the normal return outside the regression (RF for the factor model)
    market: np.ndarray  # each series' market index (for the market-adjusted check)
    rel_days: np.ndarray


def comparison_table(
    config: StudyConfig, event_id: str, tickers: list[str], benchmarks: list[str], hyg: Hygiene,
    ev: EventWindowInputs,
) -> Rows:
    """Full-window and active-part fits side by side, with the CARs each implies, for flagged/trimmed series.

    ``ev`` holds the event-window arrays of *every* series of the event (the
    comparison includes excluded series: a trimmed series may be excluded for
    too few returns, and the full-window fit is still worth seeing).
    """
    cols = np.flatnonzero(hyg.compare)
    if not len(cols):
        return Rows.empty(FIT_COMPARISON_COLUMNS)
    windows = list(config.windows)
    parts = []
    dates = hyg.dates
    for label, fitted, first in (("full window", hyg.full, np.zeros(len(tickers), dtype=int)),
                                 ("active part", hyg.active, hyg.active_row)):  # two fits, not a loop over series
        sub = fitted.series(cols)
        ar = abnormal_returns(sub, ev.stock[:, cols], ev.x[:, cols], ev.rel_days, offset=ev.offset[:, cols])
        alpha, beta = alpha_beta(sub)
        used = hyg.trimmed[cols] == (label == "active part")
        start = np.asarray(dates[np.minimum(first[cols], len(dates) - 1)])
        parts.append(_car_rows(event_id, [tickers[c] for c in cols], [benchmarks[c] for c in cols], sub, ar, windows, {
            "fit": label, "used": used, "estimation_start": start,
            "estimation_end": np.full(len(cols), np.datetime64(dates[-1], "ns")),
            "n_obs": sub.n.astype(int), "alpha": alpha, "beta": beta, "r2": sub.r2, "sigma": sub.sigma,
        }, FIT_COMPARISON_COLUMNS))
    # series order (each series' rows: full window, then active part, window by window), as a stable sort by series
    series = np.tile(cols, len(windows))
    order = np.argsort(np.concatenate([series, series]), kind="stable")
    return Rows({name: np.concatenate([part.columns[name] for part in parts])[order]
                 for name in FIT_COMPARISON_COLUMNS})


def robustness_table(
    config: StudyConfig, event_id: str, tickers: list[str], benchmarks: list[str], used_stock: np.ndarray,
    market_est: np.ndarray, ev: EventWindowInputs,
) -> Rows:
    """Market-adjusted CARs (AR = R - R_m, no estimated parameter) of the included series, for comparison.

    MacKinlay (1997), section 4.3: the market-adjusted model is the market
    model with alpha = 0 and beta = 1 imposed, so its CARs do not depend on an
    estimation window that may be contaminated; s^2 is the variance of
    R - R_m over the estimation days the study used.
    """
    fitted = fit("market_adjusted", used_stock, market_est)
    ar = abnormal_returns(fitted, ev.stock, ev.market, ev.rel_days)
    return _car_rows(event_id, tickers, benchmarks, fitted, ar, robustness_windows(config),
                     {"model": "market_adjusted"}, ROBUSTNESS_COLUMNS)


def bhar_table(config: StudyConfig, event_id: str, tickers: list[str], benchmarks: list[str],
               ar: AbnormalReturns) -> Rows:
    """Buy-and-hold abnormal returns of every included series for each window longer than 10 days."""
    windows = [w for w in config.windows if w.length >= BHAR_MIN_DAYS]
    if not windows or not tickers:
        return Rows.empty(BHAR_COLUMNS)
    bh = buy_and_hold(ar, windows)
    n = len(tickers)
    return Rows.of(BHAR_COLUMNS, n * len(windows), {
        "event": event_id,
        "ticker": np.tile(np.asarray(tickers, dtype=object), len(windows)),
        "benchmark": np.tile(np.asarray(benchmarks, dtype=object), len(windows)),
        "window_start": np.repeat([w.start for w in windows], n),
        "window_end": np.repeat([w.end for w in windows], n),
        "bh_return": bh.bh_return.ravel(),
        "bh_expected": bh.bh_expected.ravel(),
        "bhar": bh.bhar.ravel(),
    })


def parameter_table(event_id: str, tickers: list[str], benchmarks: list[str], fitted: ModelFit,
                    factor_names: tuple[str, ...] = ()) -> Rows:
    """Every coefficient with its OLS standard error sqrt(s^2 [(X'X)^-1]_jj), per included series.

    For the Dimson model a ``beta_sum`` row adds b_-1 + b_0 + b_+1 with
    standard error sqrt(s^2 c'(X'X)^-1 c), c = (0, 1, 1, 1) (Dimson 1979).
    """
    names = list(param_names(fitted.model, factor_names))
    if not names or not tickers:
        return Rows.empty(PARAMETER_COLUMNS)
    estimates = fitted.params
    variances = fitted.s2[:, None] * np.einsum("kpp->kp", fitted.xtx_inv)
    if fitted.model == "dimson":
        c = np.array([0.0, 1.0, 1.0, 1.0])
        names.append("beta_sum")
        estimates = np.column_stack([estimates, estimates @ c])
        variances = np.column_stack([variances, fitted.s2 * np.einsum("p,kpq,q->k", c, fitted.xtx_inv, c)])
    n, p = len(tickers), len(names)
    return Rows.of(PARAMETER_COLUMNS, n * p, {
        "event": event_id,
        "ticker": np.repeat(np.asarray(tickers, dtype=object), p),
        "benchmark": np.repeat(np.asarray(benchmarks, dtype=object), p),
        "model": fitted.model,
        "param": np.tile(np.asarray(names, dtype=object), n),
        "estimate": estimates.ravel(),
        "se": np.sqrt(variances).ravel(),
    })
