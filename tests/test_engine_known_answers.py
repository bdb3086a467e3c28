"""Known answers for the engine on real data, computed independently with statsmodels.

Event: JPMorgan Security and Resiliency Initiative, 2025-10-13 before the open
(day 0 = 2025-10-13). Market model, estimation window [-250, -11] on SPY's
trading days. The reference below never calls evstudy's returns, models,
abnormal or inference code: returns come from pandas closes, the estimation
rows are picked by position here, the fit is ``statsmodels.api.OLS`` and the
CAR variance is MacKinlay (1997, eq. 10-11) written out with the fit's own
(X'X)^-1:

    S_CAR^2 = s^2 * (L2 + 1' X* (X'X)^-1 X*' 1),   s^2 = SSR / (L1 - 2)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from numpy.testing import assert_allclose
from scipy import stats

from evstudy.config import Window, ad_hoc_config, config_from_dict
from evstudy.study import compute_study

from helpers import price_data, read_parquet_closes, simple_returns_reference

pytestmark = pytest.mark.shared_data

DAY0 = pd.Timestamp("2025-10-13")
STOCKS = ["MP", "USAR", "LAC"]
BENCHES = ["SPY", "REMX"]
EST = (-250, -11)
SPAN = (-10, 10)  # the default AR span, which contains every default window
WINDOWS = [(0, 0), (-1, 1), (0, 1), (0, 5), (-5, 5), (-10, 10)]  # the config defaults, written out here

# Relative 1e-8: every compared quantity is O(1e-3) or larger and both sides are
# double-precision least squares on a well-conditioned 240 x 2 design, so any
# disagreement beyond ~1e-12 is a formula difference, not rounding.
RTOL = 1e-8
# Absolute 1e-10 for abnormal returns, which can be arbitrarily close to zero
# on quiet days (a relative tolerance would be meaningless there); returns are
# O(0.01-0.2), so 1e-10 is still ~8 significant digits.
AR_ATOL = 1e-10


@pytest.fixture(scope="module")
def closes(market_parquet) -> pd.DataFrame:
    return read_parquet_closes(market_parquet, [*STOCKS, *BENCHES])


@pytest.fixture(scope="module")
def results(closes):
    cfg = config_from_dict({
        "name": "jpm-known-answers",
        "model": "market",
        "estimation_window": list(EST),
        "windows": [list(w) for w in WINDOWS],
        "ar_span": list(SPAN),
        "events": [{"id": "jpm", "date": "2025-10-13", "timing": "before_open"}],
        "baskets": [{"name": "minerals", "tickers": STOCKS, "benchmarks": BENCHES}],
    })
    return compute_study(cfg, price_data(closes, location="market parquet"))


def market_model_reference(closes: pd.DataFrame, day0: pd.Timestamp, stocks, benches) -> dict:
    """Independent market-model results for every (ticker, benchmark) pair around ``day0``."""
    spy = closes["SPY"]
    days = closes.index[spy.notna() & (spy > 0)]  # SPY's trading days
    rets = simple_returns_reference(closes.reindex(days))
    i0 = days.get_loc(day0)
    est = rets.iloc[i0 + EST[0]: i0 + EST[1] + 1]
    assert len(est) == EST[1] - EST[0] + 1
    out = {}
    for bench in benches:
        for ticker in stocks:
            pair = est[[ticker, bench]].dropna()
            y = pair[ticker].to_numpy()
            X = sm.add_constant(pair[bench].to_numpy())
            ols = sm.OLS(y, X).fit()
            L1 = len(y)
            alpha, beta = ols.params
            s2 = ols.ssr / (L1 - 2)
            xtx_inv = ols.normalized_cov_params  # (X'X)^-1 from statsmodels' pinv
            ar = {}
            for rel in range(SPAN[0], SPAN[1] + 1):
                r, rm = rets[ticker].iloc[i0 + rel], rets[bench].iloc[i0 + rel]
                ar[rel] = r - (alpha + beta * rm)
            cars = {}
            for start, end in WINDOWS:
                rows = rets.iloc[i0 + start: i0 + end + 1]
                L2 = len(rows)
                x_star = np.column_stack([np.ones(L2), rows[bench].to_numpy()])
                ones = np.ones(L2)
                var = s2 * (L2 + ones @ x_star @ xtx_inv @ x_star.T @ ones)
                car = sum(ar[d] for d in range(start, end + 1))
                t = car / np.sqrt(var)
                cars[(start, end)] = {
                    "car": car, "se": np.sqrt(var), "t": t, "p": 2 * stats.t.sf(abs(t), L1 - 2),
                }
            out[(ticker, bench)] = {
                "alpha": alpha, "beta": beta, "sigma": np.sqrt(s2), "r2": ols.rsquared, "n": L1,
                "ar": ar, "cars": cars, "est_start": est.index[0], "est_end": est.index[-1],
                "day0_return": rets[ticker].iloc[i0],
            }
    return out


@pytest.fixture(scope="module")
def reference(closes):
    return market_model_reference(closes, DAY0, STOCKS, BENCHES)


def _fit_row(results, ticker, bench):
    rows = results.fits[(results.fits["ticker"] == ticker) & (results.fits["benchmark"] == bench)]
    assert len(rows) == 1, f"expected one fit row for {ticker} vs {bench}, got {len(rows)}"
    return rows.iloc[0]


def _car_row(results, ticker, bench, window):
    c = results.cars
    rows = c[(c["ticker"] == ticker) & (c["benchmark"] == bench)
             & (c["window_start"] == window[0]) & (c["window_end"] == window[1])]
    assert len(rows) == 1, f"expected one CAR row for {ticker} vs {bench} {window}, got {len(rows)}"
    return rows.iloc[0]


def test_reference_matches_the_data_readme_anchor(reference):
    """The README's day-0 close-to-close returns (rounded to 0.1%) pin the reference itself."""
    anchor = {"MP": 0.213, "USAR": 0.186, "LAC": 0.126}
    for ticker, value in anchor.items():
        assert abs(reference[(ticker, "SPY")]["day0_return"] - value) < 0.0005 + 1e-12


def test_day0_and_estimation_dates(results, reference):
    tl = results.timeline("jpm")
    assert tl.day0 == DAY0
    # [-250, -11] on SPY's sessions: day -11 is Fri 2025-09-26 (counting back over 10 sessions).
    assert tl.estimation_end == pd.Timestamp("2025-09-26") == reference[("MP", "SPY")]["est_end"]
    assert tl.estimation_start == reference[("MP", "SPY")]["est_start"] == pd.Timestamp("2024-10-11")


@pytest.mark.parametrize("bench", BENCHES)
@pytest.mark.parametrize("ticker", STOCKS)
def test_market_model_fit_matches_statsmodels(results, reference, ticker, bench):
    ref = reference[(ticker, bench)]
    row = _fit_row(results, ticker, bench)
    assert row["status"] == "included", row["reason"]
    assert row["model"] == "market"
    assert int(row["n_obs"]) == ref["n"] == 240
    assert int(row["df"]) == ref["n"] - 2
    assert_allclose(row["alpha"], ref["alpha"], rtol=RTOL, atol=0)
    assert_allclose(row["beta"], ref["beta"], rtol=RTOL, atol=0)
    assert_allclose(row["sigma"], ref["sigma"], rtol=RTOL, atol=0)
    assert_allclose(row["r2"], ref["r2"], rtol=RTOL, atol=0)


@pytest.mark.parametrize("bench", BENCHES)
@pytest.mark.parametrize("ticker", STOCKS)
def test_abnormal_returns_match_reference(results, reference, ticker, bench):
    ref = reference[(ticker, bench)]
    ar = results.abnormal_returns
    mine = ar[(ar["ticker"] == ticker) & (ar["benchmark"] == bench)].set_index("rel_day")["abnormal_return"]
    assert list(mine.index) == list(range(SPAN[0], SPAN[1] + 1))
    expected = np.array([ref["ar"][d] for d in mine.index])
    assert_allclose(mine.to_numpy(), expected, rtol=0, atol=AR_ATOL)
    # day 0 singled out, as the headline number
    assert_allclose(mine.loc[0], ref["ar"][0], rtol=0, atol=AR_ATOL)


@pytest.mark.parametrize("bench", BENCHES)
@pytest.mark.parametrize("ticker", STOCKS)
@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: f"[{w[0]},{w[1]}]")
def test_car_and_mackinlay_t_match_reference(results, reference, ticker, bench, window):
    ref = reference[(ticker, bench)]["cars"][window]
    row = _car_row(results, ticker, bench, window)
    assert_allclose(row["car"], ref["car"], rtol=0, atol=AR_ATOL)  # a sum of ARs: absolute, as for ARs
    assert_allclose(row["se"], ref["se"], rtol=RTOL, atol=0)
    assert_allclose(row["t"], ref["t"], rtol=1e-7, atol=1e-9)  # t of a near-zero CAR inherits the CAR's atol
    assert_allclose(row["p_value"], ref["p"], rtol=1e-7, atol=1e-9)


def test_car_minus1_plus1_headline_values(results, reference):
    """CAR[-1,+1] and its t for the three names vs SPY, the numbers a reader quotes."""
    for ticker in STOCKS:
        ref = reference[(ticker, "SPY")]["cars"][(-1, 1)]
        row = _car_row(results, ticker, "SPY", (-1, 1))
        assert_allclose([row["car"], row["t"], row["p_value"]], [ref["car"], ref["t"], ref["p"]], rtol=1e-7, atol=0)
    # MP's 3-day CAR against SPY is large and significant at 1%: a sanity anchor on the reference.
    assert reference[("MP", "SPY")]["cars"][(-1, 1)]["car"] > 0.25
    assert reference[("MP", "SPY")]["cars"][(-1, 1)]["p"] < 0.01


@pytest.mark.parametrize("bench", BENCHES)
def test_basket_caar_and_cross_sectional_t(results, reference, bench):
    b = results.baskets
    for window in WINDOWS:
        cars = np.array([reference[(t, bench)]["cars"][window]["car"] for t in STOCKS])
        n = len(cars)
        caar = cars.mean()
        sd = cars.std(ddof=1)
        t = caar / (sd / np.sqrt(n))
        p = 2 * stats.t.sf(abs(t), n - 1)
        rows = b[(b["basket"] == "minerals") & (b["benchmark"] == bench)
                 & (b["window_start"] == window[0]) & (b["window_end"] == window[1])]
        assert len(rows) == 1
        row = rows.iloc[0]
        assert int(row["n"]) == 3
        assert_allclose(row["caar"], caar, rtol=0, atol=AR_ATOL)
        assert_allclose(row["se"], sd / np.sqrt(n), rtol=RTOL, atol=0)
        assert_allclose(row["cs_t"], t, rtol=1e-7, atol=1e-9)
        assert_allclose(row["cs_p"], p, rtol=1e-7, atol=1e-9)
        tests = results.tests
        cs = tests[(tests["benchmark"] == bench) & (tests["test"] == "cs_t")
                   & (tests["window_start"] == window[0]) & (tests["window_end"] == window[1])]
        assert len(cs) == 1
        assert_allclose(cs.iloc[0]["statistic"], t, rtol=1e-7, atol=1e-9)


def test_two_benchmarks_give_one_row_per_benchmark(results):
    fits = results.fits
    assert len(fits) == len(STOCKS) * len(BENCHES)
    assert set(zip(fits["ticker"], fits["benchmark"])) == {(t, b) for t in STOCKS for b in BENCHES}
    cars = results.cars
    assert len(cars) == len(STOCKS) * len(BENCHES) * len(WINDOWS)
    keys = list(zip(cars["ticker"], cars["benchmark"], cars["window_start"], cars["window_end"]))
    assert len(set(keys)) == len(keys)
    assert set(results.baskets["benchmark"]) == set(BENCHES)
    # The two benchmarks must give different numbers (no column mix-up that copies one onto the other).
    mp_spy, mp_remx = _fit_row(results, "MP", "SPY"), _fit_row(results, "MP", "REMX")
    assert abs(mp_spy["beta"] - mp_remx["beta"]) > 0.1


def test_single_benchmark_run_equals_the_spy_rows_of_the_two_benchmark_run(closes, results):
    cfg = ad_hoc_config(
        event="2025-10-13:before_open", tickers=STOCKS, benchmark="SPY",
        estimation_window=Window(*EST), windows=[Window(*w) for w in WINDOWS],
    )
    alone = compute_study(cfg, price_data(closes[["MP", "USAR", "LAC", "SPY"]]))
    both = results.cars[results.cars["benchmark"] == "SPY"].reset_index(drop=True)
    alone_cars = alone.cars.reset_index(drop=True)
    key = ["ticker", "window_start", "window_end"]
    merged = alone_cars.merge(both, on=key, suffixes=("_alone", "_both"))
    assert len(merged) == len(alone_cars) == len(both)
    for col in ("car", "se", "t", "p_value"):
        assert_allclose(merged[f"{col}_alone"], merged[f"{col}_both"], rtol=1e-12, atol=1e-15)


def test_second_event_after_close_matches_its_own_reference(closes, results):
    """A two-event study: the LAC event (2025-09-30 after the close) is fitted around day 0 2025-10-01.

    Its numbers must equal statsmodels around 2025-10-01, and the JPM event's rows
    must be unchanged by the presence of the second event.
    """
    cfg = config_from_dict({
        "estimation_window": list(EST),
        "windows": [list(w) for w in WINDOWS],
        "ar_span": list(SPAN),
        "events": [
            {"id": "jpm", "date": "2025-10-13", "timing": "before_open"},
            {"id": "lac", "date": "2025-09-30", "timing": "after_close", "baskets": ["lac"]},
        ],
        "baskets": [
            {"name": "minerals", "tickers": STOCKS, "benchmarks": BENCHES},
            {"name": "lac", "tickers": ["LAC"], "benchmarks": ["SPY"]},
        ],
    })
    res = compute_study(cfg, price_data(closes))
    assert res.timeline("lac").day0 == pd.Timestamp("2025-10-01")
    ref = market_model_reference(closes, pd.Timestamp("2025-10-01"), ["LAC"], ["SPY"])[("LAC", "SPY")]
    fits = res.fits[res.fits["event"] == "lac"]
    assert list(zip(fits["ticker"], fits["benchmark"])) == [("LAC", "SPY")]
    assert_allclose(fits[["alpha", "beta", "sigma"]].to_numpy()[0], [ref["alpha"], ref["beta"], ref["sigma"]],
                    rtol=RTOL, atol=0)
    cars = res.cars[res.cars["event"] == "lac"]
    for window in WINDOWS:
        row = cars[(cars["window_start"] == window[0]) & (cars["window_end"] == window[1])].iloc[0]
        assert_allclose(row["car"], ref["cars"][window]["car"], rtol=0, atol=AR_ATOL)
        assert_allclose(row["t"], ref["cars"][window]["t"], rtol=1e-7, atol=1e-9)
    # a one-ticker basket has no cross-sectional t, and says why instead of showing NaN
    lac_basket = res.baskets[res.baskets["event"] == "lac"]
    assert lac_basket["cs_t"].isna().all() and lac_basket["note"].str.contains("at least 2").all()
    jpm_alone = results.cars.reset_index(drop=True)
    jpm_here = res.cars[res.cars["event"] == "jpm"].reset_index(drop=True)
    assert_allclose(jpm_here[["car", "se", "t"]].to_numpy(float), jpm_alone[["car", "se", "t"]].to_numpy(float),
                    rtol=1e-12, atol=1e-15)
