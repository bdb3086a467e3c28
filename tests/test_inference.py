"""The test battery: known answers on real data, undefined cases, and size and power on synthetic markets.

Known answers: the JPMorgan event (day 0 = 2025-10-13) for eight real
critical-minerals stocks vs SPY and REMX, with a few closes knocked out of the
estimation window (so that pairs of series share only some days). The
reference below never calls evstudy's returns, models, abnormal or inference
code: fits are ``statsmodels.api.OLS``, correlations ``pandas.DataFrame.corr``
(pairwise complete), t tests ``scipy.stats.ttest_1samp``, ranks
``scipy.stats.rankdata``, and the exact Wilcoxon p-value is counted over all
2^N sign patterns.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from evstudy.abnormal import abnormal_returns, car_paths, car_stats, window_selectors
from evstudy.config import Window, config_from_dict
from evstudy.inference import (
    TEST_IDS, CrossSection, bmp_t, bmp_t_statistic, corrado_rank, cross_section_tests, cs_t, equal_weighted, generalized_sign, kp_bmp_t,
    MIN_COMMON_DAYS, grank_t, mean_residual_correlation, patell_z, portfolio_t, sign_binomial, wilcoxon,
)
from evstudy.models import fit
from evstudy.report.files import results_json
from evstudy.study import compute_study

from helpers import price_data, read_parquet_closes, simple_returns_reference

DAY0 = pd.Timestamp("2025-10-13")
STOCKS = ["MP", "USAR", "LAC", "TMQ", "UAMY", "ALB", "FCX", "SGML"]
BENCHES = ["SPY", "REMX"]
EST = (-250, -11)
SPAN = (-10, 10)
WINDOWS = [(0, 0), (-1, 1), (0, 1), (0, 5), (-5, 5), (-10, 10)]
# Closes knocked out (each removes two returns): LAC and TMQ then share fewer estimation days with the others.
HOLES = {"LAC": ["2025-03-03", "2025-06-10", "2025-06-11"], "TMQ": ["2025-01-15"]}
# Every compared statistic is O(0.1) or larger and both sides are double-precision
# least squares and sums, so 1e-8 relative is a formula check, not a rounding one.
RTOL = 1e-8


@pytest.fixture(scope="module")
def closes(market_parquet) -> pd.DataFrame:
    wide = read_parquet_closes(market_parquet, [*STOCKS, *BENCHES])
    for ticker, dates in HOLES.items():
        wide.loc[pd.DatetimeIndex(dates), ticker] = np.nan
    return wide


@pytest.fixture(scope="module")
def results(closes):
    cfg = config_from_dict({
        "estimation_window": list(EST), "windows": [list(w) for w in WINDOWS], "ar_span": list(SPAN),
        "placebo_dates": 0,
        "events": [{"id": "jpm", "date": "2025-10-13", "timing": "before_open"}],
        "baskets": [{"name": "minerals", "tickers": STOCKS, "benchmarks": BENCHES},
                    {"name": "alone", "tickers": ["MP"]}],
    })
    return compute_study(cfg, price_data(closes, location="market parquet"))


def _reference(closes: pd.DataFrame, bench: str) -> dict:
    """Independent per-ticker fits, CARs, MacKinlay S_CARs, residuals and event ARs around DAY0."""
    spy = closes["SPY"]
    days = closes.index[spy.notna() & (spy > 0)]
    rets = simple_returns_reference(closes.reindex(days))
    i0 = days.get_loc(DAY0)
    est = rets.iloc[i0 + EST[0]: i0 + EST[1] + 1]
    ev = rets.iloc[i0 + SPAN[0]: i0 + SPAN[1] + 1]
    rel = np.arange(SPAN[0], SPAN[1] + 1)
    out = {"cars": [], "se": [], "df": [], "resid": {}, "ar": {}, "est": est, "ev": ev, "rel": rel}
    for ticker in STOCKS:
        pair = est[[ticker, bench]].dropna()
        ols = sm.OLS(pair[ticker].to_numpy(), sm.add_constant(pair[bench].to_numpy())).fit()
        alpha, beta = ols.params
        ar = ev[ticker] - (alpha + beta * ev[bench])
        cars, ses = [], []
        for start, end in WINDOWS:
            inside = (rel >= start) & (rel <= end)
            v = np.array([inside.sum(), ev[bench].to_numpy()[inside].sum()])
            cars.append(ar.to_numpy()[inside].sum())
            ses.append(np.sqrt(ols.scale * (inside.sum() + v @ ols.normalized_cov_params @ v)))
        out["cars"].append(cars)
        out["se"].append(ses)
        out["df"].append(ols.df_resid)
        out["resid"][ticker] = pd.Series(ols.resid, index=pair.index)
        out["ar"][ticker] = ar
    out["cars"] = np.array(out["cars"]).T  # windows x N
    out["se"] = np.array(out["se"]).T
    out["df"] = np.array(out["df"])
    out["resid"] = pd.DataFrame(out["resid"])
    return out


@pytest.fixture(scope="module", params=BENCHES)
def reference(request, closes):
    return request.param, _reference(closes, request.param)


def _row(results, bench: str, window: tuple[int, int], test: str, basket: str = "minerals") -> pd.Series:
    t = results.tests
    row = t[(t["basket"] == basket) & (t["benchmark"] == bench) & (t["test"] == test)
            & (t["window_start"] == window[0]) & (t["window_end"] == window[1])]
    assert len(row) == 1
    return row.iloc[0]


def _check(results, bench, window, test, statistic, p_value):
    row = _row(results, bench, window, test)
    assert row["statistic"] == pytest.approx(statistic, rel=RTOL), test
    assert row["p_value"] == pytest.approx(p_value, rel=RTOL, abs=1e-300), test
    assert row["n"] == len(STOCKS)


@pytest.mark.shared_data
def test_every_test_id_per_basket_and_window(results):
    t = results.tests
    assert list(t.columns)[:10] == ["event", "basket", "benchmark", "window_start", "window_end", "test",
                                    "statistic", "p_value", "n", "note"]  # then the verdict's `headline` flag
    groups = t.groupby(["basket", "benchmark", "window_start", "window_end"], sort=False)["test"]
    assert len(groups) == 3 * len(WINDOWS)
    # the battery in TEST_IDS order (a single-stock basket's verdict adds its own CAR t row after it)
    assert all(list(tests)[:len(TEST_IDS)] == list(TEST_IDS) for _, tests in groups)


@pytest.mark.shared_data
def test_cs_t_bmp_and_patell_match_their_formulas(results, reference):
    bench, ref = reference
    scar = ref["cars"] / ref["se"]
    for w, window in enumerate(WINDOWS):
        cs = stats.ttest_1samp(ref["cars"][w], 0.0)
        _check(results, bench, window, "cs_t", cs.statistic, cs.pvalue)
        bmp = stats.ttest_1samp(scar[w], 0.0)
        _check(results, bench, window, "bmp_t", bmp.statistic, bmp.pvalue)
        z = scar[w].sum() / np.sqrt((ref["df"] / (ref["df"] - 2)).sum())
        _check(results, bench, window, "patell_z", z, 2 * stats.norm.sf(abs(z)))


@pytest.mark.shared_data
def test_kolari_pynnonen_uses_the_pairwise_residual_correlation(results, reference):
    """Adjusted BMP: t sqrt((1 - r̄)/(1 + (N-1) r̄)); adjusted Patell: Z / sqrt(1 + (N-1) r̄) (KP 2010, eq. 13).

    Changed with issue 8: kp_patell_z was Z sqrt((1 - r̄)/(1 + (N-1) r̄)), which is not the published form.
    """
    bench, ref = reference
    corr = ref["resid"].corr(min_periods=MIN_COMMON_DAYS).to_numpy()  # pandas: each pair over the days both have
    assert np.isnan(ref["resid"].to_numpy()).any()  # the holes make the pairs' day sets differ
    n = len(STOCKS)
    rbar = max(np.nanmean(corr[np.triu_indices(n, 1)]), 0.0)
    scar = ref["cars"] / ref["se"]
    for w, window in enumerate(WINDOWS):
        bmp = stats.ttest_1samp(scar[w], 0.0).statistic * np.sqrt((1 - rbar) / (1 + (n - 1) * rbar))
        _check(results, bench, window, "kp_bmp_t", bmp, 2 * stats.t.sf(abs(bmp), n - 1))
        z = scar[w].sum() / np.sqrt((ref["df"] / (ref["df"] - 2)).sum()) / np.sqrt(1 + (n - 1) * rbar)
        _check(results, bench, window, "kp_patell_z", z, 2 * stats.norm.sf(abs(z)))
        assert f"r̄ = {rbar:.3f}" in _row(results, bench, window, "kp_bmp_t")["note"]


@pytest.mark.shared_data
def test_corrado_rank_with_standardized_ranks(results, reference):
    """Changed with issue 8: the rank pool is the estimation window plus the window itself (as estudy2), not the
    whole event span, so a window's statistic no longer depends on the config's other windows."""
    bench, ref = reference
    for window in WINDOWS:
        inside = (ref["rel"] >= window[0]) & (ref["rel"] <= window[1])
        uniform = {}
        for ticker in STOCKS:
            series = pd.concat([ref["resid"][ticker].dropna(), ref["ar"][ticker][inside]])
            uniform[ticker] = pd.Series(stats.rankdata(series.to_numpy()) / (len(series) + 1), index=series.index)
        u_bar = pd.DataFrame(uniform).mean(axis=1)  # over the tickers present that day
        s_u = np.sqrt(((u_bar - 0.5) ** 2).mean())
        event_u = u_bar.loc[ref["ev"].index[inside]].to_numpy()
        t = np.sqrt(inside.sum()) * (event_u.mean() - 0.5) / s_u
        _check(results, bench, window, "corrado_rank", t, 2 * stats.norm.sf(abs(t)))


@pytest.mark.shared_data
def test_adding_a_window_leaves_the_other_windows_statistics_unchanged(closes, results):
    """[0, 20] widens the event span to day +20; every statistic of the six windows stays (Corrado included)."""
    cfg = config_from_dict({
        "estimation_window": list(EST), "windows": [*[list(w) for w in WINDOWS], [0, 20]], "ar_span": list(SPAN),
        "placebo_dates": 0,
        "events": [{"id": "jpm", "date": "2025-10-13", "timing": "before_open"}],
        "baskets": [{"name": "minerals", "tickers": STOCKS, "benchmarks": BENCHES}],
    })
    wider = compute_study(cfg, price_data(closes, location="market parquet")).tests
    keys = ["benchmark", "window_start", "window_end", "test"]
    before = results.tests[(results.tests["basket"] == "minerals") & results.tests["test"].isin(TEST_IDS)]
    after = before[keys].merge(wider, on=keys, how="left")
    assert after["statistic"].notna().sum() == before["statistic"].notna().sum() > 0
    np.testing.assert_allclose(after["statistic"], before["statistic"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(after["p_value"], before["p_value"].to_numpy(), rtol=1e-12)


@pytest.mark.shared_data
def test_grank_by_hand(results, reference):
    """Kolari & Pynnönen (2011) GRANK-T, one ticker and one day at a time with scipy's rankdata."""
    bench, ref = reference
    resid = ref["resid"]
    n = len(STOCKS)
    scale = {t: np.sqrt((resid[t].dropna() ** 2).sum() / ref["df"][i]) for i, t in enumerate(STOCKS)}
    for w, window in enumerate(WINDOWS):
        scar = ref["cars"][w] / ref["se"][w]
        gsar0 = scar / np.std(scar, ddof=1)
        uniform = {}
        for i, ticker in enumerate(STOCKS):
            series = pd.concat([resid[ticker].dropna() / scale[ticker], pd.Series([gsar0[i]], index=[DAY0])])
            uniform[ticker] = pd.Series(stats.rankdata(series.to_numpy()) / (len(series) + 1) - 0.5, index=series.index)
        u = pd.DataFrame(uniform)  # (estimation days + day 0) x tickers, NaN where a ticker has no return
        n_t = u.notna().sum(axis=1)
        u_bar = u.mean(axis=1)
        s_u = np.sqrt(((n_t / n) * u_bar**2).sum() / len(u))
        z = u_bar[DAY0] / s_u  # the window as one day 0, after the estimation days
        t = z * np.sqrt((len(u) - 2) / (len(u) - 1 - z**2))
        _check(results, bench, window, "grank_t", t, 2 * stats.t.sf(abs(t), len(u) - 2))


@pytest.mark.shared_data
def test_generalized_sign_and_wilcoxon(results, reference):
    bench, ref = reference
    n = len(STOCKS)
    p_hat = np.mean([(ref["resid"][t].dropna() > 0).mean() for t in STOCKS])
    patterns = np.array(list(itertools.product([0, 1], repeat=n)))  # every sign assignment, for the exact null
    for w, window in enumerate(WINDOWS):
        cars = ref["cars"][w]
        z = ((cars > 0).sum() - n * p_hat) / np.sqrt(n * p_hat * (1 - p_hat))
        _check(results, bench, window, "generalized_sign", z, 2 * stats.norm.sf(abs(z)))
        ranks = stats.rankdata(np.abs(cars))
        w_plus = ranks[cars > 0].sum()
        null = patterns @ ranks
        p = min(1.0, 2 * min((null <= w_plus).mean(), (null >= w_plus).mean()))
        _check(results, bench, window, "wilcoxon", w_plus, p)


@pytest.mark.shared_data
def test_exact_binomial_sign_test(results, reference):
    bench, ref = reference
    n = len(STOCKS)
    p_hat = np.mean([(ref["resid"][t].dropna() > 0).mean() for t in STOCKS])
    for w, window in enumerate(WINDOWS):
        positive = int((ref["cars"][w] > 0).sum())
        _check(results, bench, window, "sign_binomial", positive - n * p_hat,
               stats.binomtest(positive, n, p_hat).pvalue)


def test_exact_binomial_sign_test_at_small_n():
    """Every count 0..N at N = 2..7 against scipy's binomtest, computed one cell at a time."""
    rng = np.random.default_rng(8)
    est = rng.normal(-0.0004, 0.01, (240, 7))  # a share of positive days a little below 1/2
    p_hat = (est > 0).mean(axis=0)
    for n in range(2, 8):
        signs = np.array([[1.0] * k + [-1.0] * (n - k) for k in range(n + 1)])[:, None, :]  # (counts, 1 window, n)
        result = sign_binomial(signs * 0.01, est[:, :n])
        share = p_hat[:n].mean()
        for k in range(n + 1):
            assert result.p_value[k, 0] == pytest.approx(stats.binomtest(k, n, share).pvalue, rel=1e-10)
            assert result.statistic[k, 0] == pytest.approx(k - n * share, rel=1e-12)
    assert sign_binomial(np.array([[0.01, 0.02, 0.03]]), np.full((50, 3), -0.01)).note[0].startswith(
        "the estimation-window share of positive abnormal returns is 0%")


@pytest.mark.shared_data
def test_portfolio_t_is_an_ols_of_the_basket_series(results, reference):
    bench, ref = reference
    est, ev = ref["est"], ref["ev"]
    basket_est = est[STOCKS].mean(axis=1)  # equal weights over the stocks with a return that day
    ols = sm.OLS(basket_est.to_numpy(), sm.add_constant(est[bench].to_numpy())).fit()
    ar = ev[STOCKS].mean(axis=1) - (ols.params[0] + ols.params[1] * ev[bench])
    for window in WINDOWS:
        inside = (ref["rel"] >= window[0]) & (ref["rel"] <= window[1])
        v = np.array([inside.sum(), ev[bench].to_numpy()[inside].sum()])
        se = np.sqrt(ols.scale * (inside.sum() + v @ ols.normalized_cov_params @ v))
        t = ar.to_numpy()[inside].sum() / se
        _check(results, bench, window, "portfolio_t", t, 2 * stats.t.sf(abs(t), ols.df_resid))
        assert _row(results, bench, window, "portfolio_t")["note"] == f"{int(ols.df_resid)} residual degrees of freedom"


@pytest.mark.shared_data
def test_standardized_portfolio_t_by_hand(results, reference):
    """Weights 1/s_i^2 (statsmodels' scale), the portfolio residual series day by day, the excess dispersion."""
    bench, ref = reference
    resid = ref["resid"]
    s2 = pd.Series(ref["df"] * 0.0, index=STOCKS)
    for i, ticker in enumerate(STOCKS):
        s2[ticker] = (resid[ticker].dropna() ** 2).sum() / ref["df"][i]  # = the OLS scale
    weights = (1 / s2) / (1 / s2).sum()
    portfolio = []
    for day in resid.index:  # the portfolio's residual: weights renormalized over the members present that day
        row = resid.loc[day].dropna()
        portfolio.append((row * (1 / s2[row.index])).sum() / (1 / s2[row.index]).sum())
    s2_p = np.var(portfolio, ddof=1)
    spreads = []
    for day in resid.index:
        present = [t for t in STOCKS if pd.notna(resid.loc[day, t])]
        z = [resid.loc[day, t] / np.sqrt((resid[t].dropna() ** 2).mean()) for t in present]
        if len(z) >= 2:
            spreads.append(np.var(z, ddof=1))
    d_est = np.mean(spreads)
    for w, window in enumerate(WINDOWS):
        car, se = ref["cars"][w], ref["se"][w]
        car_p = float(np.dot(weights, car))
        h = np.dot(weights**2, se**2) / np.dot(weights**2, s2.to_numpy())
        v_base = h * s2_p
        v_event = max(np.var(car / se, ddof=1) - d_est, 0.0) * np.dot(weights**2, se**2)
        d_event = np.var(car / se, ddof=1)
        noise = (d_event * np.dot(weights**2, se**2)) ** 2 / (len(STOCKS) - 1) if v_event > 0 else 0.0
        dof = (v_base + v_event) ** 2 / (v_base**2 / (len(portfolio) - 1) + noise)
        t = car_p / np.sqrt(v_base + v_event)
        _check(results, bench, window, "std_portfolio_t", t, 2 * stats.t.sf(abs(t), dof))


@pytest.mark.shared_data
def test_one_ticker_basket_gives_reasons_not_nan(results):
    t = results.tests[(results.tests["basket"] == "alone") & results.tests["test"].isin(TEST_IDS)]
    assert len(t) == len(WINDOWS) * len(TEST_IDS)
    undefined = t[t["statistic"].isna()]
    assert set(undefined["test"]) == {
        "cs_t", "bmp_t", "kp_patell_z", "kp_bmp_t", "grank_t", "std_portfolio_t", "placebo_caar", "placebo_bmp",
    }
    assert (undefined["p_value"].isna()).all() and (undefined["note"].str.len() > 10).all()
    assert undefined.loc[undefined["test"] == "cs_t", "note"].iloc[0] == "needs at least 2 tickers; the basket has 1"
    assert undefined.loc[undefined["test"] == "placebo_bmp", "note"].iloc[0].startswith("placebo tests switched off")
    defined = t[t["statistic"].notna()]
    assert np.isfinite(defined[["statistic", "p_value"]].to_numpy(dtype=float)).all()
    assert b"NaN" not in results_json(results)  # allow_nan=False would raise on any NaN


# --------------------------------------------------------------------------- undefined cases, directly


def test_zero_variance_and_too_few_tickers():
    equal = cs_t(np.array([[0.02, 0.02, 0.02], [0.01, -0.01, 0.03]]))
    assert np.isnan(equal.statistic[0]) and equal.note[0] == "all CARs are equal: zero cross-sectional variance"
    assert np.isfinite(equal.statistic[1]) and equal.note[1] == ""
    single = bmp_t(np.array([1.3, np.nan, np.nan]))  # one present member: NaN marks absent ones
    assert single.results()[0].statistic is None and single.note[()] == "needs at least 2 tickers; the basket has 1"


def test_patell_needs_more_than_two_degrees_of_freedom():
    result = patell_z(np.array([1.0, 0.5, -0.2]), np.array([238.0, 2.0, 100.0])).results()[0]
    assert result.statistic is None and "1 ticker(s) have 2 or fewer" in result.note


def test_kolari_pynnonen_undefined_correlations():
    rng = np.random.default_rng(5)
    e = rng.normal(size=(MIN_COMMON_DAYS, 1))
    same = np.hstack([e, 2 * e, 3 * e + 0.1])  # perfectly correlated: r̄ = 1
    rbar, pairs = mean_residual_correlation(same)
    assert pairs == 3 and rbar == pytest.approx(1.0)
    result = kp_bmp_t(np.array([1.0, 2.0, 0.5]), rbar, pairs).results()[0]
    assert result.statistic is None and "perfectly correlated" in result.note
    apart = np.full((2 * MIN_COMMON_DAYS, 2), np.nan)
    apart[:MIN_COMMON_DAYS, 0], apart[MIN_COMMON_DAYS:, 1] = rng.normal(size=(2, MIN_COMMON_DAYS))  # no common day
    rbar, pairs = mean_residual_correlation(apart)
    assert pairs == 0 and np.isnan(rbar)
    assert f"shares {MIN_COMMON_DAYS} or more" in kp_bmp_t(np.array([1.0, 2.0]), rbar, pairs).note[()]


def test_mean_correlation_is_floored_at_0_and_skips_pairs_with_few_common_days():
    """Changed with issue 8: r̄ = -1 used to make the correction undefined; it is now floored at 0."""
    rng = np.random.default_rng(6)
    e = rng.normal(size=(200, 1))
    opposite = np.hstack([e, -e])
    rbar, pairs = mean_residual_correlation(opposite)
    assert pairs == 1 and rbar == 0.0
    result = kp_bmp_t(np.array([1.0, 2.0]), rbar, pairs)
    assert result.statistic[()] == pytest.approx(stats.ttest_1samp([1.0, 2.0], 0.0).statistic)
    # Three series: 0 and 1 share all 200 days (r = 0.5 by construction); 2 shares only MIN_COMMON_DAYS - 1 days
    # with them and is perfectly correlated with 0 there: counting it would pull r̄ up.
    a, b = rng.normal(size=(2, 200))
    x = np.column_stack([a, 0.5 * a + np.sqrt(0.75) * b, a])
    x[MIN_COMMON_DAYS - 1:, 2] = np.nan
    rbar, pairs = mean_residual_correlation(x)
    expected = np.corrcoef(x[:, 0], x[:, 1])[0, 1]
    assert pairs == 1 and rbar == pytest.approx(expected, rel=1e-12)
    rbar_all, pairs_all = mean_residual_correlation(x, min_days=MIN_COMMON_DAYS - 1)
    assert pairs_all == 3 and rbar_all > rbar + 0.15


def test_sign_test_needs_a_share_strictly_inside_0_1():
    est = np.full((50, 3), -0.01)  # no positive estimation-window AR: p̂ = 0
    result = generalized_sign(np.array([[0.1, 0.2, -0.1]]), est).results()[0]
    assert result.statistic is None and "share of positive abnormal returns is 0%" in result.note


def test_wilcoxon_all_zero_and_portfolio_flat():
    assert wilcoxon(np.zeros((1, 4))).results()[0].note == "every CAR is exactly zero"
    flat = np.full((60, 1), 0.001)  # a basket that never varies: s^2 = 0
    market = np.random.default_rng(1).normal(0, 0.01, (60, 1))
    res = portfolio_t("constant_mean", flat, market, np.full((3, 1), 0.001), market[:3], np.arange(-1, 2),
                      [Window(0, 0)], np.array([3])).results()[0]
    assert res.statistic is None and "cannot be fitted" in res.note


# --------------------------------------------------------------------------- synthetic size and power

DRAWS = 2000
N_SYNTH = 20
ALPHA = 0.05


def _synthetic_battery(
    rng: np.random.Generator, effect_sigmas: float, event_variance: float = 0.0
) -> dict[str, np.ndarray]:
    """Rejection indicators (draws,) at 5% on day 0 for every non-placebo test, on DRAWS synthetic baskets.

    Each draw: its own market path and N_SYNTH stocks with known alpha, beta and
    sigma and independent normal residuals; ``effect_sigmas`` * sigma_i added to
    each stock's day-0 return, plus a zero-mean sigma_i sqrt(``event_variance``) z_i
    (event-induced variance: day-0 variance x (1 + event_variance)). Everything is batched: draws x stocks become the
    columns of one fit, as in the size/power benchmark.
    """
    l1, span = 240, (-10, 10)
    w = span[1] - span[0] + 1
    days = l1 + w
    alpha = rng.normal(0.0003, 0.0005, (DRAWS, N_SYNTH))
    beta = rng.uniform(0.5, 1.5, (DRAWS, N_SYNTH))
    sigma = rng.uniform(0.01, 0.03, (DRAWS, N_SYNTH))
    market = rng.normal(0.0004, 0.01, (days, DRAWS, 1))
    stock = alpha + beta * market + sigma * rng.normal(size=(days, DRAWS, N_SYNTH))
    stock[l1 - span[0]] += effect_sigmas * sigma + np.sqrt(event_variance) * sigma * rng.normal(size=sigma.shape)
    market = np.broadcast_to(market, stock.shape)
    cols = DRAWS * N_SYNTH
    est_y, est_m = stock[:l1].reshape(l1, cols), market[:l1].reshape(l1, cols)
    ev_y, ev_m = stock[l1:].reshape(w, cols), market[l1:].reshape(w, cols)
    rel = np.arange(span[0], span[1] + 1)
    windows = [Window(0, 0)]
    fitted = fit("market", est_y, est_m)
    ar = abnormal_returns(fitted, ev_y, ev_m, rel)
    cs = car_stats(fitted, ar, windows)
    section = CrossSection(
        cs.car.reshape(1, DRAWS, N_SYNTH).transpose(1, 0, 2), cs.se.reshape(1, DRAWS, N_SYNTH).transpose(1, 0, 2),
        fitted.df.reshape(DRAWS, N_SYNTH), fitted.residuals.reshape(l1, DRAWS, N_SYNTH).transpose(1, 0, 2),
        ar.abnormal.reshape(w, DRAWS, N_SYNTH).transpose(1, 0, 2), window_selectors(rel, windows),
    )
    tests = cross_section_tests(section)
    tests["portfolio_t"] = portfolio_t(
        "market", equal_weighted(stock[:l1]), market[:l1, :, 0], equal_weighted(stock[l1:]), market[l1:, :, 0],
        rel, windows, np.full(DRAWS, N_SYNTH),
    )
    return {name: test.p_value[:, 0] <= ALPHA for name, test in tests.items()}


def test_every_test_holds_its_size_and_detects_a_three_sigma_effect():
    rng = np.random.default_rng(20240613)
    null = _synthetic_battery(rng, 0.0)
    assert set(null) == set(TEST_IDS) - {"placebo_caar", "placebo_bmp"}
    rates = {name: float(rejected.mean()) for name, rejected in null.items()}
    assert all(0.03 <= rate <= 0.07 for rate in rates.values()), rates
    power = {name: float(rejected.mean()) for name, rejected in _synthetic_battery(rng, 3.0).items()}
    assert all(rate >= 0.95 for rate in power.values()), power


def test_standardized_portfolio_t_holds_its_size_under_event_induced_variance():
    """Day-0 variance doubled, zero mean: the event term keeps std_portfolio_t at 5% where Patell's Z over-rejects."""
    rates = {name: float(r.mean()) for name, r in _synthetic_battery(np.random.default_rng(11), 0.0, 1.0).items()}
    assert 0.03 <= rates["std_portfolio_t"] <= 0.07, rates
    assert rates["patell_z"] > 0.12 and rates["portfolio_t"] > 0.12, rates  # the tests without the term do not hold


@pytest.mark.parametrize("coarse", ["every series", "one series of one basket"])
def test_corrado_rank_with_ties_and_gaps_by_hand(coarse):
    """Coarse (tied) ARs and missing days: per window and series, scipy's rankdata over the estimation days plus
    the window's days, with ties averaged, as the one-sort subset ranks must reproduce (also when only some
    series tie, which get the tie rule while the others keep their running counts)."""
    rng = np.random.default_rng(13)
    est, ev = rng.normal(size=(3, 60, 4)), rng.normal(size=(3, 9, 4))
    tied = (slice(None), slice(None), slice(None)) if coarse == "every series" else (1, slice(None), 2)
    est[tied], ev[tied] = np.round(est[tied], 0), np.round(ev[tied], 0)
    est[rng.random(est.shape) < 0.1] = np.nan
    ev[rng.random(ev.shape) < 0.1] = np.nan
    rel = np.arange(-4, 5)
    windows = [Window(0, 0), Window(-1, 2), Window(-4, 4)]
    result = corrado_rank(est, ev, window_selectors(rel, windows))
    for b in range(3):
        for w, window in enumerate(windows):
            inside = (rel >= window.start) & (rel <= window.end)
            pool = np.concatenate([est[b], ev[b][inside]])
            u = np.full(pool.shape, np.nan)
            for i in range(pool.shape[1]):
                ok = np.isfinite(pool[:, i])
                u[ok, i] = stats.rankdata(pool[ok, i]) / (ok.sum() + 1)
            u_bar = np.array([np.nan if np.isnan(row).all() else np.nanmean(row) for row in u])
            s_u = np.sqrt(np.nanmean((u_bar - 0.5) ** 2))
            window_u = u_bar[len(est[b]):]
            t = np.sqrt(np.isfinite(window_u).sum()) * (np.nanmean(window_u) - 0.5) / s_u
            assert result.statistic[b, w] == pytest.approx(t, rel=1e-12)


def test_grank_with_day_zero_ties_and_members_missing_in_one_window_by_hand():
    """GRANK-T per window and basket from scipy's rankdata: standardized ARs rounded so that a window's GSAR ties
    estimation-day ones (the half-rank shift), and a member whose CAR is missing in one window only."""
    rng = np.random.default_rng(17)
    est = rng.normal(size=(2, 50, 5))
    est[rng.random(est.shape) < 0.08] = np.nan
    df = np.isfinite(est).sum(axis=-2) - 2.0
    scale = np.sqrt(np.nansum(est**2, axis=-2) / df)
    sar = np.round(est / scale[..., None, :], 0)  # coarse: ties among the estimation days and with day 0
    est = sar * scale[..., None, :]
    se = rng.uniform(0.5, 2.0, size=(2, 3, 5))
    car = rng.normal(size=(2, 3, 5))
    car[1, 1, 3] = np.nan  # member 3 of basket 1 missing in window 1 only
    scar = car / se
    sd = np.nanstd(scar, axis=-1, ddof=1)[..., None]
    car = np.where(np.isfinite(car), np.round(scar / sd, 0) * sd * se, np.nan)  # each GSAR a whole number: ties
    result = grank_t(car, se, est, df)
    for b in range(2):
        for w in range(3):
            s = car[b, w] / se[b, w]
            gsar0 = s / np.nanstd(s, ddof=1)
            members = np.flatnonzero(np.isfinite(gsar0))
            u = np.full((est.shape[1] + 1, 5), np.nan)
            for i in members:
                pool = np.append(est[b, :, i] / scale[b, i], gsar0[i])
                ok = np.isfinite(pool)
                u[ok, i] = stats.rankdata(pool[ok]) / (ok.sum() + 1) - 0.5
            n_t = np.isfinite(u).sum(axis=1)
            u_bar = np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in u])
            days = (n_t > 0).sum()
            s_u = np.sqrt(np.nansum(n_t / len(members) * u_bar**2) / days)
            z = u_bar[-1] / s_u
            assert result.statistic[b, w] == pytest.approx(z * np.sqrt((days - 2) / (days - 1 - z**2)), rel=1e-12)


def _naive_mean_correlation(x: np.ndarray, min_days: int) -> tuple[float, int]:
    """r̄ pair by pair over common days (np.corrcoef), floored at 0: the reference for the O(L·N) form."""
    values = []
    for i in range(x.shape[1]):
        for j in range(i + 1, x.shape[1]):
            both = np.isfinite(x[:, i]) & np.isfinite(x[:, j])
            a, b = x[both, i], x[both, j]
            if both.sum() >= max(min_days, 3) and a.std() > 1e-9 and b.std() > 1e-9:
                values.append(np.corrcoef(a, b)[0, 1])
    return (max(float(np.mean(values)), 0.0) if values else np.nan), len(values)


def test_mean_correlation_matches_pair_by_pair_with_gaps_constants_and_absent_members():
    """The full-series shortcut and the pairwise form for gappy series add up to the pair-by-pair mean."""
    rng = np.random.default_rng(11)
    common = rng.normal(size=(120, 1))
    x = 0.4 * common + rng.normal(size=(120, 30))
    x[:50, 3] = np.nan  # 70 common days: counts
    x[70:, 7] = np.nan  # 70 days, overlapping column 3 on 20 only
    x[::2, 11] = np.nan  # every other day: 60 days, exactly the minimum
    x[:, 15] = 0.02  # no variation: never counts
    x[:, 20] = np.nan  # an absent member
    x[5:, 25] = np.nan  # 5 days: too few
    rbar, pairs = mean_residual_correlation(x)
    expected, expected_pairs = _naive_mean_correlation(x, MIN_COMMON_DAYS)
    assert pairs == expected_pairs and rbar == pytest.approx(expected, rel=1e-12)
    stacked = np.stack([x, x[:, ::-1]])
    rbar2, pairs2 = mean_residual_correlation(stacked)
    assert rbar2.shape == (2,) and list(pairs2) == [expected_pairs] * 2
    assert rbar2 == pytest.approx([expected, expected], rel=1e-12)
    short = x[:40]  # shorter than MIN_COMMON_DAYS: no pair counts
    assert mean_residual_correlation(short)[1] == 0 and np.isnan(mean_residual_correlation(short)[0])
    assert mean_residual_correlation(short, min_days=30)[0] == pytest.approx(
        _naive_mean_correlation(short, 30)[0], rel=1e-12
    )


def test_a_large_basket_gets_the_same_battery_with_corrado_in_a_thread(monkeypatch):
    """Over THREADED_RESIDUALS, Corrado's test runs in a second thread: every array as computed in one thread,
    batch axes, ties and gaps included, and warnings as the caller's np.errstate sets them."""
    import warnings

    import evstudy.inference as inference

    rng = np.random.default_rng(7)
    est, ev = np.round(rng.normal(size=(2, 120, 30)), 1), np.round(rng.normal(size=(2, 11, 30)), 1)
    est[rng.random(est.shape) < 0.1] = np.nan
    ev[rng.random(ev.shape) < 0.1] = np.nan
    car, se = rng.normal(size=(2, 3, 30)), rng.random((2, 3, 30)) + 0.1
    section = CrossSection(car, se, np.full((2, 30), 118.0), est, ev,
                           window_selectors(np.arange(-5, 6), [Window(0, 0), Window(-1, 1), Window(-5, 5)]))
    monkeypatch.setattr(inference, "THREADED_RESIDUALS", 10**12)
    alone = cross_section_tests(section)
    monkeypatch.setattr(inference, "THREADED_RESIDUALS", 0)
    monkeypatch.setattr(inference, "_cpus", lambda: 2)
    threads = []
    real_pool = inference.ThreadPoolExecutor
    monkeypatch.setattr(inference, "ThreadPoolExecutor", lambda **kw: threads.append(kw) or real_pool(**kw))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="ignore"):
            threaded = cross_section_tests(section)
    assert threads == [{"max_workers": 1}]
    assert list(threaded) == list(alone)
    for name, test in alone.items():
        for field in ("statistic", "p_value", "n", "note"):
            assert np.array_equal(getattr(threaded[name], field), getattr(test, field),
                                  equal_nan=field != "note"), (name, field)


def test_bmp_t_statistic_is_bmp_t_statistic_bit_for_bit():
    """The placebo's statistic-only BMP t: the same doubles as bmp_t's, NaN in the same cells (a lone member,
    equal values, a NaN or inf member, overflow), so the placebo's distribution is unchanged."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        shape = (int(rng.integers(3, 30)), int(rng.integers(1, 7)), int(rng.integers(1, 25)))
        x = rng.standard_normal(shape) * 10 ** rng.uniform(-20, 300)
        cut = rng.random(shape)
        x[cut < 0.1] = np.nan
        x[(cut > 0.1) & (cut < 0.12)] = np.inf
        x[0] = 1.5  # zero spread
        x[1] = np.nan  # no members
        x[2, :, 1:] = np.nan  # one member
        with np.errstate(all="ignore"):
            expected, got = bmp_t(x).statistic, bmp_t_statistic(x)
        assert np.array_equal(np.isnan(expected), np.isnan(got))
        assert expected.tobytes() == np.where(np.isnan(got), expected, got).tobytes()


def test_car_paths_are_car_stats_of_the_growing_windows():
    """car_paths (no t or p) gives car_stats' CAR and SE for windows [first day, day], bit for bit."""
    rng = np.random.default_rng(5)
    market = rng.normal(0.0004, 0.01, (261, 8))
    stock = 0.0002 + 1.1 * market + 0.02 * rng.normal(size=market.shape)
    rel = np.arange(-10, 11)
    fitted = fit("market", stock[:240], market[:240])
    ar = abnormal_returns(fitted, stock[240:], market[240:], rel)
    paths = car_paths(fitted, ar)
    full = car_stats(fitted, ar, [Window(-10, int(day)) for day in rel])
    assert paths.car.tobytes() == full.car.tobytes() and paths.se.tobytes() == full.se.tobytes()
