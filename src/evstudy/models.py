"""Expected-return models, fitted for many series at once.

Every model is a linear regression of a stock's return on a design X over the
estimation window (market model: X = [1, R_m]; constant mean: X = [1];
market-adjusted: no free parameter). Each series has its own set of valid
days, so the normal equations are built with a (days x series) mask and solved
as a batch of small p x p systems: no Python loop over tickers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evstudy.config import ModelName

PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "market": ("alpha", "beta"),
    "constant_mean": ("mean",),
    "market_adjusted": (),
}


def design(model: ModelName, market: np.ndarray) -> np.ndarray:
    """The regressors X (days x series x p) of ``model`` given market returns (days x series)."""
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


def fit(model: ModelName, stock: np.ndarray, market: np.ndarray) -> ModelFit:
    """Fit ``model`` by OLS for every column of ``stock`` (days x series) at once.

    Days where the stock or its market return is missing are dropped series by
    series. Series with too few days or a singular design get NaN parameters;
    the study excludes them with a reason before anything is reported.
    """
    mask = np.isfinite(stock) & np.isfinite(market)
    y = np.where(mask, stock, 0.0)
    m = np.where(mask, market, 0.0)
    w = mask.astype(float)
    n = w.sum(axis=0)

    if model == "market_adjusted":
        excess = y - m
        mean = excess.sum(axis=0) / np.maximum(n, 1)
        resid = np.where(mask, excess - mean, np.nan)
        df = n - 1
        s2 = np.nansum(resid**2, axis=0) / np.where(df > 0, df, np.nan)
        k = stock.shape[1]
        return ModelFit(model, np.empty((k, 0)), np.empty((k, 0, 0)), s2, n, df, np.full(k, np.nan), resid)

    X = design(model, m) * w[..., None]
    xtx = np.einsum("lkp,lkq->kpq", X, X)
    xty = np.einsum("lkp,lk->kp", X, y)
    p = X.shape[-1]
    det_ok = np.abs(np.linalg.det(xtx)) > 1e-12 * np.maximum(n, 1) ** p
    safe = np.where(det_ok[:, None, None], xtx, np.eye(p))
    xtx_inv = np.linalg.inv(safe)
    params = np.einsum("kpq,kq->kp", xtx_inv, xty)
    params[~det_ok] = np.nan
    fitted = np.einsum("lkp,kp->lk", X, params)
    resid = np.where(mask, y - fitted, np.nan)
    ssr = np.nansum(resid**2, axis=0)
    df = n - p
    s2 = ssr / np.where(df > 0, df, np.nan)
    ybar = y.sum(axis=0) / np.maximum(n, 1)
    tss = (np.where(mask, y - ybar, 0.0) ** 2).sum(axis=0)
    r2 = 1.0 - ssr / np.where(tss > 0, tss, np.nan) if model == "market" else np.full(n.shape, np.nan)
    return ModelFit(model, params, xtx_inv, s2, n, df, r2, resid)


def expected_returns(fitted: ModelFit, market: np.ndarray) -> np.ndarray:
    """Normal returns in the event window (days x series) implied by the fit."""
    if fitted.model == "market_adjusted":
        return market.copy()
    X = design(fitted.model, market)
    return np.einsum("wkp,kp->wk", X, fitted.params)
