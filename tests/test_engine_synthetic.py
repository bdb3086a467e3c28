"""Synthetic markets with known answers: the engine must recover what was planted.

Returns are generated from a seeded numpy Generator on real NYSE sessions with
known alpha, beta and sigma; closes are built from them, so every return the
engine sees is known exactly (to ~1e-16). Day 0 is session index I0; the
estimation window [-250, -11] is rows I0-250 .. I0-11 (240 returns).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from evstudy.config import config_from_dict
from evstudy.errors import InsufficientDataError
from evstudy.returns import simple_returns
from evstudy.study import compute_study

from helpers import closes_from_returns, nyse_dates, price_data

N_DAYS = 330
I0 = 300
EST = (-250, -11)
L1 = EST[1] - EST[0] + 1  # 240
EST_ROWS = np.arange(I0 + EST[0], I0 + EST[1] + 1)
SPAN = (-10, 10)
WINDOWS = [(0, 0), (-1, 1), (0, 1), (0, 5), (-5, 5), (-10, 10)]
INJECT = 0.05
BENCH = "MKT"
# name: (alpha, beta, sigma, injected day-0 return)
TRUTH = {
    "AAA": (0.0010, 1.5, 0.004, INJECT),
    "BBB": (-0.0005, 0.6, 0.006, INJECT),
    "CCC": (0.0002, 1.0, 0.005, 0.0),
    "EXACT": (0.0003, 1.2, 1e-9, INJECT),  # follows the market model up to 1e-9 noise
}
# Returns rebuilt from closes differ from the generated ones by a few ulp
# (P_t / P_{t-1} of a cumulative product): 1e-12 absolute is ~10,000x that
# margin and still far below any modelling difference (returns are ~1e-2).
RET_ATOL = 1e-12


@pytest.fixture(scope="module")
def market():
    rng = np.random.default_rng(20251013)
    dates = nyse_dates(N_DAYS, start="2024-06-03")
    rm = rng.normal(0.0005, 0.01, N_DAYS)
    returns = {BENCH: rm}
    noise = {}
    for name, (alpha, beta, sigma, jump) in TRUTH.items():
        eps = rng.normal(0.0, sigma, N_DAYS)
        r = alpha + beta * rm + eps
        r[I0] += jump
        returns[name] = r
        noise[name] = eps
    closes = closes_from_returns(returns, dates)
    return {"dates": dates, "returns": returns, "noise": noise, "closes": closes}


def _config(tickers, model="market", benchmarks=(BENCH,), day0=None, **extra):
    raw = {
        "name": "synthetic",
        "benchmark": BENCH,
        "model": model,
        "estimation_window": list(EST),
        "windows": [list(w) for w in WINDOWS],
        "ar_span": list(SPAN),
        "events": [{"id": "ev", "date": day0, "timing": "before_open"}],
        "baskets": [{"name": "b", "tickers": list(tickers), "benchmarks": list(benchmarks)}],
        **extra,
    }
    return config_from_dict(raw)


def _run(market, tickers, model="market", closes=None, **kw):
    day0 = market["dates"][I0].date().isoformat()
    cfg = _config(tickers, model=model, day0=day0, **kw)
    frame = market["closes"] if closes is None else closes
    return compute_study(cfg, price_data(frame))


def _fit(res, ticker, bench=BENCH):
    f = res.fits
    rows = f[(f["ticker"] == ticker) & (f["benchmark"] == bench)]
    assert len(rows) == 1
    return rows.iloc[0]


def _ars(res, ticker):
    a = res.abnormal_returns
    return a[a["ticker"] == ticker].set_index("rel_day")


def _ols(y, x):
    X = np.column_stack([np.ones_like(x), x])
    xtx_inv = np.linalg.inv(X.T @ X)
    params = xtx_inv @ X.T @ y
    resid = y - X @ params
    return params, resid @ resid / (len(y) - 2), xtx_inv


# --------------------------------------------------------------------------- market model


@pytest.fixture(scope="module")
def market_res(market):
    return _run(market, list(TRUTH))


def test_day0_lands_on_the_planted_session(market, market_res):
    assert market_res.timeline("ev").day0 == market["dates"][I0]
    assert market_res.timeline("ev").estimation_start == market["dates"][I0 + EST[0]]
    assert market_res.timeline("ev").estimation_end == market["dates"][I0 + EST[1]]


@pytest.mark.parametrize("name", ["AAA", "BBB", "CCC"])
def test_estimates_are_close_to_the_truth(market, market_res, name):
    """Within 4 theoretical standard errors of the planted parameters (seeded, so deterministic)."""
    alpha, beta, sigma, _ = TRUTH[name]
    rm = market["returns"][BENCH][EST_ROWS]
    X = np.column_stack([np.ones(L1), rm])
    se_alpha, se_beta = sigma * np.sqrt(np.diag(np.linalg.inv(X.T @ X)))
    row = _fit(market_res, name)
    assert row["status"] == "included"
    assert int(row["n_obs"]) == L1 and int(row["df"]) == L1 - 2
    assert abs(row["beta"] - beta) < 4 * se_beta, (row["beta"], beta, se_beta)
    assert abs(row["alpha"] - alpha) < 4 * se_alpha, (row["alpha"], alpha, se_alpha)
    # s/sigma has sd ~ 1/sqrt(2 * 238) ~ 4.6%: 4 sd is 18%
    assert abs(row["sigma"] / sigma - 1) < 0.18


@pytest.mark.parametrize("name", list(TRUTH))
def test_fit_equals_exact_ols_on_the_generated_returns(market, market_res, name):
    y = market["returns"][name][EST_ROWS]
    x = market["returns"][BENCH][EST_ROWS]
    params, s2, _ = _ols(y, x)
    row = _fit(market_res, name)
    # 1e-9 absolute on alpha/beta: the returns differ from the generated ones by ~1e-16,
    # amplified at most by (X'X)^-1 norms of ~1e4 for beta.
    assert_allclose([row["alpha"], row["beta"]], params, rtol=0, atol=1e-9)
    if name != "EXACT":  # sigma of EXACT is 1e-9 itself: only the relative check below is meaningful
        assert_allclose(row["sigma"], np.sqrt(s2), rtol=1e-8)


@pytest.mark.parametrize("name", ["AAA", "BBB", "CCC"])
def test_day0_ar_is_injection_plus_noise(market, market_res, name):
    """AR_0 = jump + eps_0 - (alpha_hat - alpha) - (beta_hat - beta) R_m0; the last two are bounded by 4 SE."""
    alpha, beta, sigma, jump = TRUTH[name]
    rm = market["returns"][BENCH]
    X = np.column_stack([np.ones(L1), rm[EST_ROWS]])
    x0 = np.array([1.0, rm[I0]])
    pred_se = sigma * np.sqrt(x0 @ np.linalg.inv(X.T @ X) @ x0)
    ar0 = _ars(market_res, name).loc[0, "abnormal_return"]
    assert abs(ar0 - (jump + market["noise"][name][I0])) < 4 * pred_se
    if jump:
        assert ar0 > 0.03


def test_exact_market_model_stock_has_zero_ar_except_on_day0(market_res):
    alpha, beta, _, jump = TRUTH["EXACT"]
    row = _fit(market_res, "EXACT")
    # noise is 1e-9: parameters within 1e-7 (beta's SE is ~1e-9 / (0.01 * sqrt(240)) ~ 6e-9)
    assert_allclose([row["alpha"], row["beta"]], [alpha, beta], rtol=0, atol=1e-7)
    ars = _ars(market_res, "EXACT")["abnormal_return"]
    assert_allclose(ars.loc[0], jump, rtol=0, atol=1e-7)
    others = ars.drop(index=0)
    assert len(others) == SPAN[1] - SPAN[0]
    assert_allclose(others.to_numpy(), 0.0, rtol=0, atol=1e-7)
    # every window holding day 0 has CAR = jump; windows without it, ~0
    cars = market_res.cars[market_res.cars["ticker"] == "EXACT"]
    for _, c in cars.iterrows():
        expected = jump if c["window_start"] <= 0 <= c["window_end"] else 0.0
        assert_allclose(c["car"], expected, rtol=0, atol=1e-6)


def test_car_is_the_sum_of_ars_over_each_window(market_res):
    checked = 0
    for (ticker, bench), group in market_res.abnormal_returns.groupby(["ticker", "benchmark"]):
        ar = group.set_index("rel_day")["abnormal_return"]
        cars = market_res.cars[(market_res.cars["ticker"] == ticker) & (market_res.cars["benchmark"] == bench)]
        assert len(cars) == len(WINDOWS)
        for _, c in cars.iterrows():
            # sums of ~20 doubles of size 1e-2: 1e-14 absolute is generous
            assert_allclose(c["car"], ar.loc[c["window_start"]:c["window_end"]].sum(), rtol=0, atol=1e-14)
            checked += 1
        path = market_res.car_paths[(market_res.car_paths["ticker"] == ticker)].set_index("rel_day")["car"]
        assert_allclose(path.to_numpy(), ar.sort_index().cumsum().to_numpy(), rtol=0, atol=1e-14)
    assert checked == len(TRUTH) * len(WINDOWS)


def test_t_and_p_follow_from_car_and_se(market_res):
    cars = market_res.cars.merge(market_res.fits[["ticker", "benchmark", "df"]], on=["ticker", "benchmark"])
    assert_allclose(cars["t"], cars["car"] / cars["se"], rtol=1e-12)
    assert_allclose(cars["p_value"], 2 * stats.t.sf(cars["t"].abs(), cars["df"]), rtol=1e-10, atol=1e-300)


def test_market_model_se_is_mackinlay(market, market_res):
    rm = market["returns"][BENCH]
    for name in TRUTH:
        _, s2, xtx_inv = _ols(market["returns"][name][EST_ROWS], rm[EST_ROWS])
        if name == "EXACT":
            continue  # s2 ~ 1e-18 is rounding noise: compared elsewhere only through ARs
        for start, end in WINDOWS:
            rows = np.arange(I0 + start, I0 + end + 1)
            v = np.array([len(rows), rm[rows].sum()])  # 1'X* for X* = [1, R_m]
            se = np.sqrt(s2 * (len(rows) + v @ xtx_inv @ v))
            c = market_res.cars
            got = c[(c["ticker"] == name) & (c["window_start"] == start) & (c["window_end"] == end)]["se"].item()
            assert_allclose(got, se, rtol=1e-8)


def test_basket_caar_on_injected_names(market_res):
    b = market_res.baskets
    day0 = b[(b["window_start"] == 0) & (b["window_end"] == 0)].iloc[0]
    cars = market_res.cars
    c0 = cars[(cars["window_start"] == 0) & (cars["window_end"] == 0)]["car"].to_numpy()
    assert int(day0["n"]) == len(TRUTH)
    assert_allclose(day0["caar"], c0.mean(), rtol=0, atol=1e-14)
    assert_allclose(day0["cs_t"], c0.mean() / (c0.std(ddof=1) / np.sqrt(len(c0))), rtol=1e-10)
    # three of four names carry +5%: CAAR near 3.75%
    assert abs(day0["caar"] - 0.0375) < 0.01


# --------------------------------------------------------------------------- other models


@pytest.fixture(scope="module")
def constant_mean_res(market):
    return _run(market, list(TRUTH), model="constant_mean")


@pytest.fixture(scope="module")
def market_adjusted_res(market):
    return _run(market, list(TRUTH), model="market_adjusted")


@pytest.mark.parametrize("name", ["AAA", "BBB", "CCC"])
def test_constant_mean_ar_and_variance(market, constant_mean_res, name):
    """AR = R - mean(R_est); Var(CAR) = s^2 (L2 + L2^2 / n), s^2 the ddof=1 variance of R_est."""
    r = market["returns"][name]
    est = r[EST_ROWS]
    mu, s2, n = est.mean(), est.var(ddof=1), len(est)
    row = _fit(constant_mean_res, name)
    assert row["model"] == "constant_mean"
    assert_allclose(row["alpha"], mu, rtol=0, atol=RET_ATOL)  # the mean is reported as alpha
    assert np.isnan(row["beta"])
    assert_allclose(row["sigma"], np.sqrt(s2), rtol=1e-9)
    assert int(row["df"]) == n - 1
    ars = _ars(constant_mean_res, name)
    for rel in range(SPAN[0], SPAN[1] + 1):
        assert_allclose(ars.loc[rel, "abnormal_return"], r[I0 + rel] - mu, rtol=0, atol=RET_ATOL)
        assert_allclose(ars.loc[rel, "expected_return"], mu, rtol=0, atol=RET_ATOL)
    c = constant_mean_res.cars
    for start, end in WINDOWS:
        L2 = end - start + 1
        got = c[(c["ticker"] == name) & (c["window_start"] == start) & (c["window_end"] == end)].iloc[0]
        se = np.sqrt(s2 * (L2 + L2**2 / n))
        assert_allclose(got["se"], se, rtol=1e-9)
        car = (r[I0 + start: I0 + end + 1] - mu).sum()
        assert_allclose(got["car"], car, rtol=0, atol=1e-11)
        assert_allclose(got["p_value"], 2 * stats.t.sf(abs(car / se), n - 1), rtol=1e-7)


@pytest.mark.parametrize("name", ["AAA", "BBB", "CCC"])
def test_market_adjusted_ar_and_variance(market, market_adjusted_res, name):
    """AR = R - R_m; Var(CAR) = s^2 L2, s^2 the ddof=1 variance of (R - R_m) over the estimation window."""
    r, rm = market["returns"][name], market["returns"][BENCH]
    excess = r[EST_ROWS] - rm[EST_ROWS]
    s2, n = excess.var(ddof=1), len(excess)
    row = _fit(market_adjusted_res, name)
    assert row["model"] == "market_adjusted"
    assert np.isnan(row["alpha"]) and np.isnan(row["beta"])
    assert_allclose(row["sigma"], np.sqrt(s2), rtol=1e-9)
    assert int(row["df"]) == n - 1
    ars = _ars(market_adjusted_res, name)
    for rel in range(SPAN[0], SPAN[1] + 1):
        assert_allclose(ars.loc[rel, "abnormal_return"], r[I0 + rel] - rm[I0 + rel], rtol=0, atol=RET_ATOL)
    c = market_adjusted_res.cars
    for start, end in WINDOWS:
        L2 = end - start + 1
        got = c[(c["ticker"] == name) & (c["window_start"] == start) & (c["window_end"] == end)].iloc[0]
        se = np.sqrt(s2 * L2)
        assert_allclose(got["se"], se, rtol=1e-9)
        car = (r[I0 + start: I0 + end + 1] - rm[I0 + start: I0 + end + 1]).sum()
        assert_allclose(got["car"], car, rtol=0, atol=1e-11)
        assert_allclose(got["p_value"], 2 * stats.t.sf(abs(car / se), n - 1), rtol=1e-7)


# --------------------------------------------------------------------------- dirty prices


def _dirty(market, **edits):
    """A copy of the synthetic closes with cells replaced: edits = {ticker: {row: value}}."""
    closes = market["closes"].copy()
    for ticker, cells in edits.items():
        for row, value in cells.items():
            closes.iloc[row, closes.columns.get_loc(ticker)] = value
    return closes


def test_nan_close_makes_that_and_the_next_return_missing(market):
    k = I0 - 150  # inside the estimation window
    closes = _dirty(market, CCC={k: np.nan})
    panel = simple_returns(closes, closes.index)
    r = panel.returns["CCC"].to_numpy()
    p = closes["CCC"].to_numpy()
    assert np.isnan(r[k]) and np.isnan(r[k + 1])
    # never forward-filled: day k+1 is not P_{k+1}/P_{k-1} - 1, and the neighbours are untouched
    assert_allclose(r[k - 1], p[k - 1] / p[k - 2] - 1, rtol=0, atol=RET_ATOL)
    assert_allclose(r[k + 2], p[k + 2] / p[k + 1] - 1, rtol=0, atol=RET_ATOL)
    assert int(panel.invalid_prices["CCC"]) == 0  # a missing close is missing, not invalid

    res = _run(market, ["AAA", "CCC"], closes=closes)
    row = _fit(res, "CCC")
    assert row["status"] == "included"
    assert int(row["n_obs"]) == L1 - 2
    assert int(row["invalid_prices"]) == 0
    keep = ~np.isin(EST_ROWS, [k, k + 1])
    params, s2, _ = _ols(market["returns"]["CCC"][EST_ROWS][keep], market["returns"][BENCH][EST_ROWS][keep])
    assert_allclose([row["alpha"], row["beta"]], params, rtol=0, atol=1e-9)
    assert_allclose(row["sigma"], np.sqrt(s2), rtol=1e-8)


def test_zero_negative_and_infinite_closes_are_missing_and_counted(market):
    k1, k2, k3 = I0 - 200, I0 - 120, I0 - 60
    closes = _dirty(market, CCC={k1: 0.0, k2: -3.5, k3: np.inf})
    res = _run(market, ["AAA", "CCC"], closes=closes)
    row = _fit(res, "CCC")
    assert row["status"] == "included"
    assert int(row["invalid_prices"]) == 3
    assert int(_fit(res, "AAA")["invalid_prices"]) == 0
    assert int(row["n_obs"]) == L1 - 6
    keep = ~np.isin(EST_ROWS, [k1, k1 + 1, k2, k2 + 1, k3, k3 + 1])
    params, s2, _ = _ols(market["returns"]["CCC"][EST_ROWS][keep], market["returns"][BENCH][EST_ROWS][keep])
    assert_allclose([row["alpha"], row["beta"]], params, rtol=0, atol=1e-9)
    assert_allclose(row["sigma"], np.sqrt(s2), rtol=1e-8)
    # issue 11: the inf close is named as non-finite, not as "zero or negative"
    assert "zero or negative closes treated as missing: CCC (2)" in res.notes, res.notes
    assert "non-finite (inf) closes treated as missing: CCC (1)" in res.notes, res.notes
    for table in (res.fits, res.cars, res.abnormal_returns):
        numeric = table.select_dtypes("number").to_numpy(dtype=float)
        assert not np.isinf(numeric).any()


def test_too_few_estimation_returns_is_excluded_with_the_count(market):
    start = I0 - 100  # first close; first return at start + 1; last estimation row I0 - 11
    closes = _dirty(market, CCC={i: np.nan for i in range(start)})
    res = _run(market, ["AAA", "CCC"], closes=closes)
    row = _fit(res, "CCC")
    count = (I0 + EST[1]) - start  # rows start+1 .. I0-11
    assert count == 89
    assert row["status"] == "excluded"
    assert f"only {count} valid returns" in row["reason"]
    assert "needs 120" in row["reason"]
    assert "[-250,-11]" in row["reason"]
    assert "CCC" not in set(res.cars["ticker"])
    assert set(res.exclusions["ticker"]) == {"CCC"}
    assert int(res.baskets.iloc[0]["n"]) == 1


def test_missing_return_in_event_window_names_the_dates(market):
    dates = market["dates"]
    closes = _dirty(market, CCC={I0 + 3: np.nan})
    res = _run(market, ["AAA", "CCC"], closes=closes)
    row = _fit(res, "CCC")
    assert row["status"] == "excluded"
    assert f"{dates[I0 + 3].date()} (day +3)" in row["reason"]
    assert f"{dates[I0 + 4].date()} (day +4)" in row["reason"]
    assert "event window" in row["reason"]
    assert _fit(res, "AAA")["status"] == "included"


def test_benchmark_gap_in_event_window_excludes_that_pair_only(market):
    dates = market["dates"]
    closes = market["closes"].copy()
    closes["MKT2"] = closes[BENCH] * 2.0
    closes.iloc[I0 - 2, closes.columns.get_loc("MKT2")] = np.nan
    res = _run(market, ["AAA"], closes=closes, benchmarks=(BENCH, "MKT2"))
    assert _fit(res, "AAA", BENCH)["status"] == "included"
    row = _fit(res, "AAA", "MKT2")
    assert row["status"] == "excluded"
    assert "MKT2" in row["reason"] and f"{dates[I0 - 2].date()} (day -2)" in row["reason"]


def test_flat_ticker_is_excluded_with_its_zero_share(market):
    last_flat = I0 - 100  # closes constant on rows 0..last_flat: zero returns on rows 1..last_flat
    closes = market["closes"].copy()
    closes.iloc[: last_flat + 1, closes.columns.get_loc("CCC")] = 42.0
    res = _run(market, ["AAA", "CCC"], closes=closes)
    row = _fit(res, "CCC")
    zeros = last_flat - EST_ROWS[0] + 1
    assert zeros == 151
    assert_allclose(row["zero_share"], zeros / L1, rtol=0, atol=1e-15)
    assert row["status"] == "excluded"
    assert f"{zeros / L1:.0%}" in row["reason"] and "exactly zero" in row["reason"]
    assert "50%" in row["reason"]  # the allowed share is named


def test_zero_share_below_the_limit_is_kept(market):
    last_flat = I0 - 200  # 51 zero returns of 240 = 21%
    closes = market["closes"].copy()
    closes.iloc[: last_flat + 1, closes.columns.get_loc("CCC")] = 42.0
    row = _fit(_run(market, ["AAA", "CCC"], closes=closes), "CCC")
    assert row["status"] == "included"
    assert_allclose(row["zero_share"], 51 / L1, rtol=0, atol=1e-15)


def test_every_ticker_excluded_raises(market):
    closes = market["closes"].copy()
    closes.iloc[: I0 - 50, closes.columns.get_loc("AAA")] = np.nan  # too few returns
    closes.iloc[I0 + 1, closes.columns.get_loc("CCC")] = np.nan  # gap in the event window
    with pytest.raises(InsufficientDataError) as info:
        _run(market, ["AAA", "CCC"], closes=closes)
    message = str(info.value)
    assert "AAA" in message and "CCC" in message
    assert "valid returns" in message and "event window" in message


def test_ticker_absent_from_source_is_excluded(market):
    closes = market["closes"]
    day0 = market["dates"][I0].date().isoformat()
    cfg = _config(["AAA", "ZZZ"], day0=day0)
    from evstudy.prices.base import PriceData

    res = compute_study(cfg, PriceData(closes, "files", "synthetic", missing=("ZZZ",)))
    row = _fit(res, "ZZZ")
    assert row["status"] == "excluded" and "no prices" in row["reason"]


def test_rebased_prices_have_no_base_when_day_0_is_the_first_session():
    """Rebased = close / day -1's close x 100; with day 0 on the data's first session there is no day -1, so
    rebased is missing (it was divided by the data's last close: a number for the report's chart that is wrong)."""
    from helpers import market_model_returns

    dates = nyse_dates(400, start="2022-01-03")
    closes = closes_from_returns(market_model_returns(np.random.default_rng(1), 400, first_beta=0.6), dates)
    config = config_from_dict({
        "name": "first-day", "benchmark": "MKT", "estimation_window": [-300, 150], "windows": [[160, 162]],
        "ar_span": [160, 162], "drift_window": [-3, -1],
        "events": [{"id": "e", "date": dates[0].date().isoformat(), "tickers": ["S00"]}],
    })
    prices = compute_study(config, price_data(closes)).prices
    assert len(prices) and prices["rebased"].isna().all()
    s00 = prices[prices["ticker"] == "S00"]
    assert_allclose(s00["close"].to_numpy(), closes["S00"].iloc[159:163].to_numpy())
