"""The two-index, factor and Dimson models and BHARs, against independent statsmodels fits on real data.

Every reference here is computed from pandas returns and ``statsmodels.api.OLS``
with the regressors written out by hand; the CAR variance is MacKinlay (1997,
eq. 10-11) with the model's own event-window design X*:

    S_CAR^2 = s^2 * (L2 + 1' X* (X'X)^-1 X*' 1),   s^2 = SSR / (L1 - p)

The factor file is built from real ETF returns (market, size, value, momentum
spreads) and written as a CSV in percent, the way Kenneth French publishes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from numpy.testing import assert_allclose
from scipy import stats

from evstudy.api import load_study_factors
from evstudy.config import FactorSpec, ad_hoc_config, config_from_dict
from evstudy.errors import ConfigError
from evstudy.prices.factors import read_factors
from evstudy.study import compute_study

from helpers import price_data, read_parquet_closes, simple_returns_reference

pytestmark = pytest.mark.shared_data

DAY0 = pd.Timestamp("2025-10-13")
EST = (-250, -11)
WINDOWS = [(0, 0), (-1, 1), (0, 5), (-10, 10)]
SPAN = (-10, 10)
STOCKS = ["MP", "LAC", "UAMY"]
ETFS = ["SPY", "REMX", "IWM", "IWD", "IWF", "MTUM"]
RTOL = 1e-8  # both sides are double-precision least squares on well-conditioned designs
EVENT = {"id": "jpm", "date": "2025-10-13", "timing": "before_open"}


@pytest.fixture(scope="module")
def closes(market_parquet) -> pd.DataFrame:
    return read_parquet_closes(market_parquet, [*STOCKS, *ETFS])


@pytest.fixture(scope="module")
def rets(closes) -> pd.DataFrame:
    spy = closes["SPY"]
    days = closes.index[spy.notna() & (spy > 0)]
    return simple_returns_reference(closes.reindex(days))


def _config(model: str, **extra) -> dict:
    return {
        "model": model, "estimation_window": list(EST), "windows": [list(w) for w in WINDOWS],
        "ar_span": list(SPAN), "events": [EVENT], **extra,
    }


def _reference(y: pd.Series, X: pd.DataFrame, i0: int, ev_X: pd.DataFrame, ev_y: pd.Series) -> dict:
    """OLS on the estimation rows (complete cases), ARs and MacKinlay CAR/SE on the event rows."""
    data = pd.concat([y.rename("y"), X], axis=1).dropna()
    ols = sm.OLS(data["y"].to_numpy(), sm.add_constant(data[X.columns].to_numpy(), has_constant="add")).fit()
    L1, p = len(data), len(ols.params)
    s2 = ols.ssr / (L1 - p)
    Xs = sm.add_constant(ev_X.to_numpy(), has_constant="add")
    ar = ev_y.to_numpy() - Xs @ ols.params
    cars = {}
    for start, end in WINDOWS:
        rows = slice(start - SPAN[0], end - SPAN[0] + 1)
        ones = np.ones(end - start + 1)
        x_star = Xs[rows]
        var = s2 * (len(ones) + ones @ x_star @ ols.normalized_cov_params @ x_star.T @ ones)
        car = ar[rows].sum()
        cars[(start, end)] = (car, np.sqrt(var), 2 * stats.t.sf(abs(car / np.sqrt(var)), L1 - p))
    return {"params": ols.params, "bse": ols.bse, "s2": s2, "r2": ols.rsquared, "n": L1, "ar": ar, "cars": cars}


def _check(results, ticker: str, bench: str, ref: dict, beta: float) -> None:
    fit = results.fits[(results.fits.ticker == ticker) & (results.fits.benchmark == bench)].iloc[0]
    assert fit["status"] == "included" and fit["n_obs"] == ref["n"]
    assert_allclose([fit["alpha"], fit["beta"], fit["sigma"], fit["r2"]],
                    [ref["params"][0], beta, np.sqrt(ref["s2"]), ref["r2"]], rtol=RTOL)
    params = results.parameters[(results.parameters.ticker == ticker) & (results.parameters.benchmark == bench)]
    k = len(ref["params"])
    assert_allclose(params["estimate"].to_numpy()[:k], ref["params"], rtol=RTOL)
    assert_allclose(params["se"].to_numpy()[:k], ref["bse"], rtol=RTOL)
    ars = results.abnormal_returns
    got = ars[(ars.ticker == ticker) & (ars.benchmark == bench)].sort_values("rel_day")["abnormal_return"].to_numpy()
    assert_allclose(got, ref["ar"], rtol=0, atol=1e-10)
    for (start, end), (car, se, p) in ref["cars"].items():
        row = results.cars[(results.cars.ticker == ticker) & (results.cars.benchmark == bench)
                           & (results.cars.window_start == start) & (results.cars.window_end == end)].iloc[0]
        assert_allclose([row["car"], row["se"], row["p_value"]], [car, se, p], rtol=RTOL)


def _rows(rets: pd.DataFrame) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    i0 = rets.index.get_loc(DAY0)
    return i0, rets.iloc[i0 + EST[0]: i0 + EST[1] + 1], rets.iloc[i0 + SPAN[0]: i0 + SPAN[1] + 1]


# --------------------------------------------------------------------------- two-index


def test_two_index_model_equals_ols_on_market_and_sector(closes, rets):
    cfg = config_from_dict(_config("two_index", baskets=[
        {"name": "minerals", "tickers": STOCKS, "benchmarks": ["SPY"], "sector": "REMX"},
    ]))
    results = compute_study(cfg, price_data(closes))
    i0, est, ev = _rows(rets)
    assert set(results.fits.benchmark) == {"SPY+REMX"}
    for ticker in STOCKS:
        ref = _reference(est[ticker], est[["SPY", "REMX"]], i0, ev[["SPY", "REMX"]], ev[ticker])
        _check(results, ticker, "SPY+REMX", ref, beta=ref["params"][1])
    names = results.parameters[results.parameters.ticker == "MP"]["param"].tolist()
    assert names == ["alpha", "beta", "beta_sector"]


def test_two_index_config_errors():
    basket = {"name": "m", "tickers": ["MP"], "benchmarks": ["SPY"]}
    with pytest.raises(ConfigError, match=r"basket 'm'.*no 'sector'"):
        config_from_dict(_config("two_index", baskets=[basket]))
    with pytest.raises(ConfigError, match=r"'sector' in basket 'm'.*only by model = \"two_index\""):
        config_from_dict(_config("market", baskets=[{**basket, "sector": "REMX"}]))
    with pytest.raises(ConfigError, match=r"REMX is both the sector and a benchmark"):
        config_from_dict(_config("two_index", baskets=[{**basket, "benchmarks": ["SPY", "REMX"], "sector": "REMX"}]))
    with pytest.raises(ConfigError, match=r"--model two_index needs a sector"):
        ad_hoc_config(event="2025-10-13", tickers=["MP"], model="two_index")


# --------------------------------------------------------------------------- factor model


def _factor_frame(rets: pd.DataFrame) -> pd.DataFrame:
    """Daily factors in percent from ETF spreads, with a small time-varying risk-free rate."""
    rf = 0.016 + 0.002 * np.sin(np.arange(len(rets)) / 40.0)  # % per day
    return pd.DataFrame({
        "Mkt-RF": rets["SPY"] * 100 - rf,
        "SMB": (rets["IWM"] - rets["SPY"]) * 100,
        "HML": (rets["IWD"] - rets["IWF"]) * 100,
        "Mom": (rets["MTUM"] - rets["SPY"]) * 100,
        "RF": rf,
    }, index=rets.index).dropna()


def _write_factors(frame: pd.DataFrame, path: Path, scale: float = 1.0, french: bool = True) -> Path:
    out = frame * scale
    out.index = out.index.strftime("%Y%m%d") if french else out.index.strftime("%Y-%m-%d")
    header = "Built from ETF returns for the evstudy tests\n\n" if french else ""
    path.write_text(header + out.to_csv(index_label="" if french else "date")
                    + ("\nCopyright: none\n" if french else ""))
    return path


def test_factor_model_equals_ols_of_excess_returns_on_the_factors(closes, rets, tmp_path):
    frame = _factor_frame(rets)
    path = _write_factors(frame, tmp_path / "ff_daily.csv")
    cfg = config_from_dict(_config(
        "factor", factors={"file": str(path), "units": "percent", "columns": ["Mkt-RF", "SMB", "HML", "Mom"]},
        baskets=[{"name": "m", "tickers": STOCKS}],
    ))
    results = compute_study(cfg, price_data(closes), factors=load_study_factors(cfg))
    i0, est, ev = _rows(rets)
    f = frame.reindex(rets.index) / 100.0
    f_est, f_ev = f.iloc[i0 + EST[0]: i0 + EST[1] + 1], f.iloc[i0 + SPAN[0]: i0 + SPAN[1] + 1]
    cols = ["Mkt-RF", "SMB", "HML", "Mom"]
    assert set(results.fits.benchmark) == {"ff_daily"}
    for ticker in STOCKS:
        ref = _reference(est[ticker] - f_est["RF"], f_est[cols], i0, f_ev[cols], ev[ticker] - f_ev["RF"])
        _check(results, ticker, "ff_daily", ref, beta=ref["params"][1])
        # The AR table keeps raw returns; the normal return is RF + a + b'F.
        ars = results.abnormal_returns
        got = ars[ars.ticker == ticker].sort_values("rel_day")
        assert_allclose(got["return"].to_numpy(), ev[ticker].to_numpy(), rtol=1e-12)
        assert_allclose(got["expected_return"].to_numpy(), ev[ticker].to_numpy() - ref["ar"], rtol=0, atol=1e-10)


def test_factor_file_units_are_checked_by_magnitude(rets, tmp_path):
    frame = _factor_frame(rets)
    percent = _write_factors(frame, tmp_path / "pct.csv")
    decimal = _write_factors(frame, tmp_path / "dec.csv", scale=0.01, french=False)
    assert_allclose(read_factors(FactorSpec(str(decimal), "decimal")).factors.to_numpy(),
                    read_factors(FactorSpec(str(percent), "percent")).factors.to_numpy(), rtol=1e-8)
    with pytest.raises(ConfigError, match=r"factor file .*pct\.csv .*looks like percent.*says \"decimal\""):
        read_factors(FactorSpec(str(percent), "decimal"))
    with pytest.raises(ConfigError, match=r"factor file .*dec\.csv .*looks like decimals.*says \"percent\""):
        read_factors(FactorSpec(str(decimal), "percent"))
    with pytest.raises(ConfigError, match=r"has no column 'RMW'.*Mkt-RF, SMB, HML, Mom"):
        read_factors(FactorSpec(str(percent), "percent", columns=("Mkt-RF", "RMW")))
    with pytest.raises(ConfigError, match=r"no header line with a risk-free column 'RF_1M'"):
        read_factors(FactorSpec(str(percent), "percent", rf="RF_1M"))
    with pytest.raises(ConfigError, match=r"does not exist"):
        read_factors(FactorSpec(str(tmp_path / "nope.csv"), "percent"))


def test_factor_file_gaps(closes, rets, tmp_path):
    frame = _factor_frame(rets)
    i0 = rets.index.get_loc(DAY0)
    est_gap = rets.index[i0 - 100: i0 - 95]
    gappy = _write_factors(frame.drop(est_gap), tmp_path / "gappy.csv")
    base = _config("factor", factors={"file": str(gappy), "units": "percent"}, baskets=[{"name": "m", "tickers": ["MP"]}])
    cfg = config_from_dict(base)
    results = compute_study(cfg, price_data(closes), factors=load_study_factors(cfg))
    assert results.fits["n_obs"].iloc[0] == 240 - 5
    assert any("lacks 5 trading days of the estimation window" in note for note in results.notes)

    short = _write_factors(frame[frame.index < DAY0], tmp_path / "short.csv")
    cfg = config_from_dict({**base, "factors": {"file": str(short), "units": "percent"}})
    with pytest.raises(ConfigError, match=r"short\.csv .*no factors for 2025-10-13, .*event window of event 'jpm'"):
        compute_study(cfg, price_data(closes), factors=load_study_factors(cfg))


def test_factor_config_resolves_the_file_next_to_the_config(tmp_path):
    (tmp_path / "cfg").mkdir()
    from evstudy.config import load_config

    toml = tmp_path / "cfg" / "study.toml"
    toml.write_text('model = "factor"\n[factors]\nfile = "ff.csv"\nunits = "percent"\n'
                    '[[events]]\ndate = 2025-10-13\n[[baskets]]\nname = "m"\ntickers = ["MP"]\n')
    cfg = load_config(toml)
    assert cfg.factors is not None and cfg.factors.file == str(tmp_path / "cfg" / "ff.csv")
    assert cfg.factors.label == "ff"
    with pytest.raises(ConfigError, match=r"key 'units' in \[factors\].*'pct'; allowed: percent, decimal"):
        config_from_dict(_config("factor", factors={"file": "x.csv", "units": "pct"}, baskets=[{"name": "m", "tickers": ["MP"]}]))
    with pytest.raises(ConfigError, match=r"model \"factor\".*needs a \[factors\] table"):
        config_from_dict(_config("factor", baskets=[{"name": "m", "tickers": ["MP"]}]))


# --------------------------------------------------------------------------- Dimson


def test_dimson_betas_are_the_sum_of_lag_lead_ols_coefficients(closes, rets):
    cfg = config_from_dict(_config("dimson", baskets=[{"name": "m", "tickers": STOCKS, "benchmarks": ["SPY"]}]))
    results = compute_study(cfg, price_data(closes))
    i0, est, ev = _rows(rets)
    lagged = pd.DataFrame({"lag": rets["SPY"].shift(1), "now": rets["SPY"], "lead": rets["SPY"].shift(-1)})
    X_est = lagged.iloc[i0 + EST[0]: i0 + EST[1] + 1]
    X_ev = lagged.iloc[i0 + SPAN[0]: i0 + SPAN[1] + 1]
    for ticker in STOCKS:
        ref = _reference(est[ticker], X_est, i0, X_ev, ev[ticker])
        _check(results, ticker, "SPY", ref, beta=ref["params"][1:].sum())
        p = results.parameters[results.parameters.ticker == ticker].set_index("param")
        assert list(p.index) == ["alpha", "beta_lag", "beta_0", "beta_lead", "beta_sum"]
        assert_allclose(p.loc["beta_sum", "estimate"], ref["params"][1:].sum(), rtol=RTOL)


def test_dimson_beta_sum_standard_error(closes, rets):
    cfg = config_from_dict(_config("dimson", baskets=[{"name": "m", "tickers": ["UAMY"], "benchmarks": ["SPY"]}]))
    results = compute_study(cfg, price_data(closes))
    i0, est, _ = _rows(rets)
    X = pd.DataFrame({"lag": rets["SPY"].shift(1), "now": rets["SPY"], "lead": rets["SPY"].shift(-1)})
    data = pd.concat([est["UAMY"].rename("y"), X.iloc[i0 + EST[0]: i0 + EST[1] + 1]], axis=1).dropna()
    ols = sm.OLS(data["y"], sm.add_constant(data[["lag", "now", "lead"]])).fit()
    test = ols.t_test("lag + now + lead = 0")
    row = results.parameters.set_index("param").loc["beta_sum"]
    assert_allclose([row["estimate"], row["se"]], [float(test.effect[0]), float(test.sd[0, 0])], rtol=RTOL)


# --------------------------------------------------------------------------- BHAR


def test_bhar_is_the_product_formula_for_long_windows_only(closes, rets):
    cfg = config_from_dict(_config("market", baskets=[{"name": "m", "tickers": STOCKS, "benchmarks": ["SPY"]}]))
    results = compute_study(cfg, price_data(closes))
    assert set(zip(results.bhars.window_start, results.bhars.window_end)) == {(-10, 10)}  # only the 21-day window
    i0, est, ev = _rows(rets)
    for ticker in STOCKS:
        data = est[[ticker, "SPY"]].dropna()
        a, b = sm.OLS(data[ticker], sm.add_constant(data["SPY"])).fit().params
        expected = a + b * ev["SPY"]
        ref = np.prod(1 + ev[ticker]) - np.prod(1 + expected)
        row = results.bhars[results.bhars.ticker == ticker].iloc[0]
        assert_allclose(row["bhar"], ref, rtol=RTOL)
        assert_allclose(row["bh_return"], closes[ticker].loc[ev.index[-1]] / closes[ticker].loc[rets.index[i0 - 11]] - 1,
                        rtol=1e-10)
    assert list(results.cars.columns) == ["event", "ticker", "benchmark", "window_start", "window_end", "car", "se", "t",
                                          "p_value"]
