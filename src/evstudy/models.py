"""Expected-return models, fitted for many series at once.

Every model is a linear regression of a stock's return on a design X over the
estimation window (market model: X = [1, R_m]; constant mean: X = [1];
market-adjusted: no free parameter; two-index: X = [1, R_m, R_sector];
factor: R - RF on X = [1, F_1..F_q]; Dimson: X = [1, R_m,t-1, R_m,t, R_m,t+1]).
Each series has its own set of valid days, so the normal equations are built
with a (days x series) mask and solved as a batch of small p x p systems: no
Python loop over tickers. :func:`model_inputs` turns return arrays into what a
model regresses, once for the whole panel; any window is then a row slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evstudy.config import ModelName

PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "market": ("alpha", "beta"),
    "constant_mean": ("mean",),
    "market_adjusted": (),
    "two_index": ("alpha", "beta", "beta_sector"),
    "dimson": ("alpha", "beta_lag", "beta_0", "beta_lead"),
}

SINGULAR_DET = 1e-12  # |det| of the scale-free X'X below which a design is singular (fit; kernels.measure_rows)


def param_names(model: ModelName, factor_names: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Names of ``model``'s coefficients in the order of :attr:`ModelFit.params`."""
    if model == "factor":
        return ("alpha", *factor_names)
    return PARAM_NAMES[model]


def design(model: ModelName, market: np.ndarray) -> np.ndarray:
    """The regressors X (days x series x p) of ``model``.

    ``market`` holds the non-constant regressors: market returns (days x series)
    for the market, market-adjusted and constant-mean models, or a (days x
    series x q) stack from :func:`model_inputs` for the two-index, factor and
    Dimson models, which get X = [1, regressors].
    """
    if market.ndim == 3:
        return np.concatenate([np.ones(market.shape[:2] + (1,)), market], axis=-1)
    ones = np.ones_like(market)
    if model == "market":
        return np.stack([ones, market], axis=-1)
    if model == "constant_mean":
        return ones[..., None]
    return np.empty(market.shape + (0,))


@dataclass(frozen=True)
class ModelFit:
    """Estimation-window fit of one model for K series (arrays indexed by series).

    ``s2`` is the residual variance SSR / df with df = n - p (MacKinlay 1997,
    eq. 9 for the market model); for the market-adjusted model s2 is the sample
    variance of the abnormal returns (df = n - 1) and there is no estimation
    error term.
    """

    model: ModelName
    params: np.ndarray  # (K, p)
    xtx_inv: np.ndarray  # (K, p, p)
    s2: np.ndarray  # (K,)
    n: np.ndarray  # (K,) valid returns used
    df: np.ndarray  # (K,)
    r2: np.ndarray  # (K,) NaN where undefined
    residuals: np.ndarray  # (L, K), NaN on days not used

    @property
    def sigma(self) -> np.ndarray:
        return np.sqrt(self.s2)

    def series(self, cols: slice | np.ndarray, contiguous: bool = False) -> ModelFit:
        """The fit of the series ``cols`` (positions or a mask) alone; ``contiguous``: residuals row-major,
        laid out as a fit of those series would lay them out (so later sums over them run in its order)."""
        residuals = self.residuals[:, cols]
        return ModelFit(self.model, self.params[cols], self.xtx_inv[cols], self.s2[cols], self.n[cols],
                        self.df[cols], self.r2[cols], np.ascontiguousarray(residuals) if contiguous else residuals)


def _moments_one_regressor(
    model: ModelName, n: np.ndarray, m: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """X'X (K x p x p) and X'y (K x p) of the market or constant-mean model from column sums.

    With X = [1, R_m] (or [1]) on each series' valid days, X'X = [[n, sum R_m],
    [sum R_m, sum R_m^2]] and X'y = [sum R, sum R_m R]: a few passes over the
    (days x series) matrices instead of building the (days x series x p)
    design, which is most of the fit's time at 9,000 series. ``m`` and ``y``
    are already zero on invalid days.
    """
    if model == "constant_mean":
        return n[:, None, None].astype(float), y.sum(axis=0)[:, None]
    sum_m = m.sum(axis=0)
    xtx = np.empty((m.shape[1], 2, 2))
    xtx[:, 0, 0] = n
    xtx[:, 0, 1] = xtx[:, 1, 0] = sum_m
    xtx[:, 1, 1] = np.einsum("lk,lk->k", m, m)
    xty = np.stack([y.sum(axis=0), np.einsum("lk,lk->k", m, y)], axis=-1)
    return xtx, xty


def fit(model: ModelName, stock: np.ndarray, market: np.ndarray) -> ModelFit:
    """Fit ``model`` by OLS for every column of ``stock`` (days x series) at once.

    Days where the stock or any regressor is missing are dropped series by
    series. Series with too few days or a singular design get NaN parameters;
    the study excludes them with a reason before anything is reported.
    ``market`` is (days x series), or (days x series x q) for the models with
    several regressors (:func:`model_inputs`).
    """
    mask = np.isfinite(stock) & (np.isfinite(market) if market.ndim == 2 else np.isfinite(market).all(axis=-1))
    y = np.where(mask, stock, 0.0)
    m = np.where(mask if market.ndim == 2 else mask[..., None], market, 0.0)
    n = mask.sum(axis=0).astype(float)

    if model == "market_adjusted":
        excess = y - m
        mean = excess.sum(axis=0) / np.maximum(n, 1)
        resid = np.where(mask, excess - mean, np.nan)
        df = n - 1
        s2 = np.nansum(resid**2, axis=0) / np.where(df > 0, df, np.nan)
        k = stock.shape[1]
        return ModelFit(model, np.empty((k, 0)), np.empty((k, 0, 0)), s2, n, df, np.full(k, np.nan), resid)

    one_regressor = market.ndim == 2 and model in ("market", "constant_mean")
    if one_regressor:
        xtx, xty = _moments_one_regressor(model, n, m, y)
    else:
        X = design(model, m) * mask[..., None]
        xtx = np.einsum("lkp,lkq->kpq", X, X)
        xty = np.einsum("lkp,lk->kp", X, y)
    p = xtx.shape[-1]
    # Singularity on the scale-free (correlation-like) X'X, so that small regressors
    # such as decimal factor returns are not mistaken for a singular design.
    scale = np.sqrt(np.einsum("kpp->kp", xtx))
    scaled = xtx / np.where(scale > 0, scale, 1.0)[:, :, None] / np.where(scale > 0, scale, 1.0)[:, None, :]
    det_ok = (scale > 0).all(axis=1) & (np.abs(np.linalg.det(scaled)) > SINGULAR_DET)
    safe = np.where(det_ok[:, None, None], xtx, np.eye(p))
    xtx_inv = np.linalg.inv(safe)
    params = np.einsum("kpq,kq->kp", xtx_inv, xty)
    params[~det_ok] = np.nan
    if one_regressor:
        fitted = params[:, 0] + params[:, 1] * m if model == "market" else np.broadcast_to(params[:, 0], y.shape)
    else:
        fitted = np.einsum("lkp,kp->lk", X, params)
    # In place where possible: at 9,000 series each (days x series) temporary is ~20 MB of fresh pages.
    resid = np.subtract(y, fitted)
    resid[~mask] = 0.0
    squares = np.square(resid)
    np.copyto(squares, 0.0, where=np.isnan(squares))  # as np.nansum: a NaN fit (singular design) sums to 0
    ssr = squares.sum(axis=0)
    resid[~mask] = np.nan
    df = n - p
    s2 = ssr / np.where(df > 0, df, np.nan)
    ybar = y.sum(axis=0) / np.maximum(n, 1)
    np.subtract(y, ybar, out=squares)
    squares[~mask] = 0.0
    np.square(squares, out=squares)
    tss = squares.sum(axis=0)
    r2 = 1.0 - ssr / np.where(tss > 0, tss, np.nan) if p > 1 else np.full(n.shape, np.nan)
    return ModelFit(model, params, xtx_inv, s2, n, df, r2, resid)


def expected_returns(fitted: ModelFit, market: np.ndarray) -> np.ndarray:
    """Normal returns in the event window (days x series) implied by the fit."""
    if fitted.model == "market_adjusted":
        return market.copy()
    X = design(fitted.model, market)
    return np.einsum("wkp,kp->wk", X, fitted.params)


@dataclass(frozen=True)
class ModelInputs:
    """What a model regresses, for every trading day of the panel (rows) and series (columns).

    The normal return of a series on a day is ``offset + X b``: ``offset`` is
    the risk-free rate for the factor model (which regresses R - RF) and 0
    otherwise, so ``y = return - offset``.
    """

    y: np.ndarray  # (T, K) dependent variable
    x: np.ndarray  # (T, K) market returns, or (T, K, q) regressors besides the constant
    offset: np.ndarray  # (T, K)


def model_inputs(
    model: ModelName,
    stock: np.ndarray,
    market: np.ndarray,
    *,
    sector: np.ndarray | None = None,
    factors: np.ndarray | None = None,
    rf: np.ndarray | None = None,
) -> ModelInputs:
    """Dependent variable and regressors of ``model`` over a whole (T x K) panel.

    Build once per study and slice any estimation or event window by rows;
    a lag or lead then never crosses a window edge by accident.

    Parameters
    ----------
    stock, market : (T, K) simple returns of the stocks and of each series' market index.
    sector : (T, K) returns of each series' sector index (``two_index``).
    factors : (T, q) factor returns in decimals (``factor``), the same for every series.
    rf : (T,) risk-free rate in decimals (``factor``).

    Notes
    -----
    - two-index: R_it = a + b_m R_mt + b_s R_st + e_it.
    - factor: R_it - RF_t = a + sum_j b_j F_jt + e_it (Fama & French 1993;
      Carhart 1997 add momentum; Fama & French 2015 five factors).
    - Dimson (1979, "Risk measurement when shares are subject to infrequent
      trading", JFE 7(2), 197-226; aggregated coefficients, one lag and one lead):
      R_it = a + b_-1 R_m,t-1 + b_0 R_mt + b_+1 R_m,t+1 + e_it; the beta is the
      sum b_-1 + b_0 + b_+1. Lags and leads are previous/next trading days of
      the panel, so the event-window design carries them too.
    """
    offset = np.zeros_like(stock)
    if model == "two_index":
        if sector is None:
            raise ValueError("the two-index model needs sector returns")
        return ModelInputs(stock, np.stack([market, sector], axis=-1), offset)
    if model == "dimson":
        lag = np.full_like(market, np.nan)
        lead = np.full_like(market, np.nan)
        lag[1:] = market[:-1]
        lead[:-1] = market[1:]
        return ModelInputs(stock, np.stack([lag, market, lead], axis=-1), offset)
    if model == "factor":
        if factors is None or rf is None:
            raise ValueError("the factor model needs factor returns and the risk-free rate")
        shape = stock.shape + (factors.shape[1],)
        offset = np.broadcast_to(rf[:, None], stock.shape).copy()
        return ModelInputs(stock - offset, np.broadcast_to(factors[:, None, :], shape), offset)
    return ModelInputs(stock, market, offset)


def alpha_beta(fitted: ModelFit) -> tuple[np.ndarray, np.ndarray]:
    """Per series: the intercept, and the market beta each model reports.

    beta is the market slope for the market and two-index models, the sum of
    the lag, contemporaneous and lead slopes for Dimson (1979), and the loading
    on the first factor column (by convention the market factor, Mkt-RF) for
    the factor model; NaN where a model has no such parameter.
    """
    k = len(fitted.s2)
    none = np.full(k, np.nan)
    if fitted.model == "market_adjusted":
        return none, none
    alpha = fitted.params[:, 0]
    if fitted.model == "constant_mean":
        return alpha, none
    if fitted.model == "dimson":
        return alpha, fitted.params[:, 1:4].sum(axis=1)
    return alpha, fitted.params[:, 1]


# A residual daily sigma below this is floating-point rounding, not noise: returns of ~1e-2 carry
# rounding of ~1e-18, and a quoted price (4+ significant digits) never moves by less than ~1e-6.
EXACT_FIT_SIGMA = 1e-10


def exact_fit(fitted: ModelFit) -> np.ndarray:
    """Per series: does the model explain every estimation-window return (collinear with its regressors)?

    The market model of a ticker that is c x the benchmark has residuals of
    about 1e-18: a "sigma" that makes every event-window t astronomically
    large. Such a series has no idiosyncratic risk to test against. R² cannot
    tell (it rounds to 1 long before); the residual sigma itself can.
    """
    with np.errstate(invalid="ignore"):
        return (fitted.s2 > 0) & (np.sqrt(np.maximum(fitted.s2, 0.0)) < EXACT_FIT_SIGMA)
