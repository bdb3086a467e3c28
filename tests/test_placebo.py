"""Placebo-date inference: the same procedure on pseudo-event days, reproducible, and correctly sized.

Real data: the JPMorgan event (day 0 = 2025-10-13) for a few critical-minerals
stocks vs SPY. The independent reference refits one pseudo-event day with
``statsmodels.api.OLS`` on pandas returns; the empirical p-value is recounted
from the stored placebo distribution.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from evstudy.config import Window, config_from_dict
from evstudy.errors import ConfigError
from evstudy.inference import bmp_t, placebo_test
from evstudy.placebo import (
    PLACEBO_LOOKBACK, _prefix, basket_placebo, basket_placebos, candidate_days, draw_days, series_placebo,
)
from evstudy.study import compute_study, required_dates

from helpers import price_data, read_parquet_closes, simple_returns_reference

STOCKS = ["MP", "LAC", "TMQ", "UAMY", "ALB", "FCX"]
EST = (-250, -11)
WINDOWS = [(0, 0), (-1, 1), (-10, 10)]
BASE = {
    "estimation_window": list(EST), "windows": [list(w) for w in WINDOWS],
    "events": [{"id": "jpm", "date": "2025-10-13", "timing": "before_open"}],
    "baskets": [{"name": "minerals", "tickers": STOCKS}, {"name": "pair", "tickers": ["ALB", "FCX"]}],
    "confounders": [{"date": "2025-10-09", "label": "export controls"},
                    {"date": "2023-06-05", "label": "an old confounder inside the placebo lookback"}],
}


@pytest.fixture(scope="module")
def closes(market_parquet) -> pd.DataFrame:
    return read_parquet_closes(market_parquet, [*STOCKS, "SPY"])


def _run(closes, **overrides):
    return compute_study(config_from_dict({**BASE, **overrides}), price_data(closes))


@pytest.fixture(scope="module")
def results(closes):
    return _run(closes, placebo_dates=300, seed=7)


def _tests(res, test: str, basket: str = "minerals") -> pd.DataFrame:
    t = res.tests
    return t[(t["test"] == test) & (t["basket"] == basket)].reset_index(drop=True)


@pytest.mark.shared_data
def test_seed_reproduces_and_another_seed_changes(closes, results):
    again = _run(closes, placebo_dates=300, seed=7)
    pd.testing.assert_frame_equal(results.tests, again.tests)
    pd.testing.assert_frame_equal(results.placebo, again.placebo)
    other = _run(closes, placebo_dates=300, seed=8)
    assert not results.placebo["day0"].equals(other.placebo["day0"])
    mine = pd.concat([_tests(results, "placebo_caar"), _tests(results, "placebo_bmp")])
    theirs = pd.concat([_tests(other, "placebo_caar"), _tests(other, "placebo_bmp")])
    assert (mine["p_value"].to_numpy() != theirs["p_value"].to_numpy()).any()
    assert (mine["statistic"].to_numpy() == theirs["statistic"].to_numpy()).all()  # the actual statistic is fixed


@pytest.mark.shared_data
def test_empirical_p_value_recounted_from_the_distribution(results):
    draws = results.placebo[results.placebo["basket"] == "minerals"]
    assert len(draws) == 300 * len(WINDOWS)
    for test, column in (("placebo_caar", "caar"), ("placebo_bmp", "bmp")):
        for row in _tests(results, test).itertuples():
            values = draws.loc[(draws["window_start"] == row.window_start)
                               & (draws["window_end"] == row.window_end), column].dropna().to_numpy()
            expected = (1 + (np.abs(values) >= abs(row.statistic)).sum()) / (len(values) + 1)
            assert row.p_value == pytest.approx(expected, rel=1e-12)
            assert f"{len(values):,} draws usable" in row.note and "seed 7" in row.note
    caar = _tests(results, "cs_t")  # the actual CAAR of the placebo row is the basket's CAAR
    baskets = results.baskets[results.baskets["basket"] == "minerals"].reset_index(drop=True)
    np.testing.assert_allclose(_tests(results, "placebo_caar")["statistic"], baskets["caar"], rtol=1e-12)
    np.testing.assert_allclose(_tests(results, "placebo_bmp")["statistic"], _tests(results, "bmp_t")["statistic"],
                               rtol=1e-12)
    assert len(caar) == len(WINDOWS)


@pytest.mark.shared_data
def test_a_pseudo_day_matches_an_independent_refit(closes, results):
    spy = closes["SPY"]
    days = closes.index[spy.notna() & (spy > 0)]
    rets = simple_returns_reference(closes.reindex(days))
    draws = results.placebo[(results.placebo["basket"] == "minerals") & (results.placebo["n"] == len(STOCKS))]
    day0 = pd.Timestamp(draws["day0"].iloc[0])
    d = days.get_loc(day0)
    est = rets.iloc[d + EST[0]: d + EST[1] + 1]
    ev = rets.iloc[d - 10: d + 11]
    rel = np.arange(-10, 11)
    cars = []
    for ticker in STOCKS:
        pair = est[[ticker, "SPY"]].dropna()
        ols = sm.OLS(pair[ticker].to_numpy(), sm.add_constant(pair["SPY"].to_numpy())).fit()
        ar = ev[ticker].to_numpy() - (ols.params[0] + ols.params[1] * ev["SPY"].to_numpy())
        cars.append([ar[(rel >= a) & (rel <= b)].sum() for a, b in WINDOWS])
    expected = np.array(cars).mean(axis=0)
    stored = draws[draws["day0"] == day0].drop_duplicates(["window_start", "window_end"])
    np.testing.assert_allclose(stored["caar"].to_numpy(), expected, rtol=1e-8)


@pytest.mark.shared_data
def test_the_engine_at_day_0_is_the_study(closes, results):
    """Run on the actual day 0, the placebo engine reproduces the study's CARs, SCARs, CAAR and BMP t."""
    spy = closes["SPY"]
    days = closes.index[spy.notna() & (spy > 0)]
    stock = simple_returns_reference(closes.reindex(days))[STOCKS].to_numpy()
    market = np.repeat(simple_returns_reference(closes.reindex(days))[["SPY"]].to_numpy(), len(STOCKS), axis=1)
    i0 = days.get_loc(pd.Timestamp("2025-10-13"))
    cols = np.arange(len(STOCKS))
    windows = [Window(*w) for w in WINDOWS]
    series = series_placebo("market", stock, market, cols, cols, np.array([i0]), estimation=Window(*EST),
                            span=Window(-10, 10), windows=windows, min_returns=120, max_zero_share=0.5)
    cars = results.cars[results.cars["ticker"].isin(STOCKS)]
    for w, (start, end) in enumerate(WINDOWS):
        at = cars[(cars["window_start"] == start) & (cars["window_end"] == end)].set_index("ticker").loc[STOCKS]
        np.testing.assert_allclose(series.car[0, w], at["car"], rtol=1e-10)
        np.testing.assert_allclose(series.scar[0, w], at["car"] / at["se"], rtol=1e-10)
    dist = basket_placebo(series, cols)
    np.testing.assert_allclose(dist.caar[0], results.baskets.query("basket == 'minerals'")["caar"], rtol=1e-10)
    np.testing.assert_allclose(dist.bmp[0], _tests(results, "bmp_t")["statistic"], rtol=1e-10)


@pytest.mark.shared_data
def test_pseudo_days_avoid_events_and_confounders(closes, results):
    """Changed with issue 8: the pool reaches through the estimation window (the regime nearest the event)."""
    timeline = results.timelines[0]
    days = closes.index[closes["SPY"].notna()]
    i0 = days.get_loc(timeline.day0)
    drawn = pd.DatetimeIndex(results.placebo["day0"].unique())
    rows = days.get_indexer(drawn)
    assert (rows >= i0 + EST[0] - PLACEBO_LOOKBACK).all() and (rows <= i0 - 10 - 10 - 1).all()
    assert (rows > i0 + EST[0]).any()  # pseudo-days inside the estimation window
    for confounder in ("2023-06-05", "2025-10-09"):
        row = days.searchsorted(pd.Timestamp(confounder))
        assert not (np.abs(rows - row) <= 10).any()  # no pseudo event span holds it
    old = days.searchsorted(pd.Timestamp("2023-06-05"))
    assert i0 + EST[0] - PLACEBO_LOOKBACK + 10 < old < i0 + EST[0] - 10  # inside the lookback
    assert len(drawn) == 300  # distinct days: drawn without replacement


def test_candidate_days_and_draws():
    """Changed with issue 8: the pool runs to the last day whose event span ends before the event's; no repeats."""
    est, span = Window(-250, -11), Window(-10, 10)
    rows = candidate_days(2000, est, span, blocked=[1500, 1600])
    assert rows.min() == 2000 - 250 - PLACEBO_LOOKBACK and rows.max() == 2000 - 21
    assert not np.isin(np.arange(1490, 1511), rows).any() and not np.isin(np.arange(1590, 1611), rows).any()
    assert len(rows) == (2000 - 21) - (2000 - 250 - PLACEBO_LOOKBACK) + 1 - 2 * 21
    assert np.isin(1489, rows) and np.isin(1511, rows)
    for unsorted in ([1600, 1500], [1600, 1500, 1600]):  # in any order, repeated: the same pool
        assert np.array_equal(candidate_days(2000, est, span, blocked=unsorted), rows)
    early = candidate_days(300, est, span, blocked=[])  # the data start cuts the lookback: event spans must fit
    assert early.min() == 1 - span.start and early.max() == 300 - 21
    first = draw_days(rows, 500, np.random.default_rng(np.random.SeedSequence(1, spawn_key=(0,))))
    again = draw_days(rows, 500, np.random.default_rng(np.random.SeedSequence(1, spawn_key=(0,))))
    other = draw_days(rows, 500, np.random.default_rng(np.random.SeedSequence(1, spawn_key=(1,))))
    assert (first == again).all() and not (first == other).all() and np.isin(first, rows).all()
    assert len(np.unique(first)) == 500  # without replacement
    every = draw_days(rows, 10 * len(rows), np.random.default_rng(2))  # more than the pool: each candidate once
    assert len(every) == len(rows) and set(every) == set(rows)


def test_a_draw_with_a_member_missing_is_dropped_and_counted():
    """Per draw, the basket's statistics use all of its members or the draw is dropped (not a smaller basket)."""
    rng = np.random.default_rng(4)
    rows, n = 900, 3
    market = rng.normal(0.0004, 0.01, (rows, 1))
    stock = 0.0002 + market + rng.normal(0, 0.02, (rows, n))
    stock[600:640, 1] = np.nan  # member 1 has no data for 40 days: pseudo-days whose windows need them lose it
    days = np.array([300, 500, 620, 700, 880])  # 620: gap in the event span; 700: 200 < 210 estimation returns
    series = series_placebo("market", stock, np.repeat(market, n, axis=1), np.arange(n), np.arange(n), days,
                            estimation=Window(-250, -11), span=Window(-10, 10), windows=[Window(0, 0)],
                            min_returns=210, max_zero_share=0.5)
    complete = series.usable.all(axis=1)
    assert complete.tolist() == [True, True, False, False, True]
    dist = basket_placebo(series, np.arange(n))
    assert dist.dropped == 2 and dist.n.tolist() == [3, 3, 2, 2, 3]
    assert np.isnan(dist.caar[~complete]).all() and np.isnan(dist.bmp[~complete]).all()
    np.testing.assert_allclose(dist.caar[complete, 0], series.car[complete, 0].mean(axis=1), rtol=1e-14)


@pytest.mark.shared_data
def test_placebo_settings_reach_the_notes(closes):
    off = _run(closes, placebo_dates=0)
    rows = off.tests[off.tests["test"].isin(["placebo_caar", "placebo_bmp"])]
    assert rows["statistic"].isna().all()
    assert (rows["note"] == "placebo tests switched off (placebo_dates = 0)").all()
    assert off.placebo.empty
    cfg = config_from_dict({**BASE, "placebo_dates": 50})
    days = closes.index[closes["SPY"].notna()]
    i0 = days.get_loc(pd.Timestamp("2025-10-13"))
    # 140 sessions: enough for the event's 120 estimation returns, too few for any pseudo-day's (the last is day -21).
    rows = compute_study(cfg, price_data(closes.loc[days[i0 - 140]:])).tests
    assert rows.loc[rows["test"] == "placebo_bmp", "note"].str.startswith("no usable pseudo-event day").all()
    short = compute_study(cfg, price_data(closes.loc["2024-10-10":])).tests  # early pseudo-days lack estimation data
    notes = short.loc[(short["test"] == "placebo_caar") & (short["basket"] == "minerals"), "note"]
    dropped = notes.str.extract(r"; ([\d,]+) dropped because a member")[0].astype(int)
    usable = notes.str.extract(r"; ([\d,]+) draws usable")[0].astype(int)
    assert (dropped > 0).all() and (dropped + usable == 50).all()
    # Confounders every 15 sessions block every pseudo-day of the pool that the data reach.
    dense = [{"date": str(d.date()), "label": "noise"} for d in pd.bdate_range("2024-10-01", "2025-09-30", freq="15B")]
    rows = compute_study(config_from_dict({**BASE, "placebo_dates": 50, "confounders": dense}),
                         price_data(closes.loc["2024-10-10":])).tests
    assert rows.loc[rows["test"] == "placebo_caar", "note"].str.startswith("no pseudo-event day available").all()


def test_required_dates_reach_back_for_the_placebo():
    cfg = config_from_dict({**BASE, "placebo_dates": 1000})
    start, _ = required_dates(cfg)
    start_off, _ = required_dates(dataclasses.replace(cfg, placebo_dates=0))
    sessions = pd.bdate_range(start, "2025-10-13")
    assert len(pd.bdate_range(start_off, "2025-10-13")) < 300 < 2 * 250 + PLACEBO_LOOKBACK < len(sessions)


@pytest.mark.parametrize("key, value, words", [
    ("placebo_dates", -1, "placebo_dates = -1"),
    ("placebo_dates", 10**6, "to 100,000"),
    ("placebo_dates", 2.5, "expected a whole number"),
    ("seed", -3, "seed = -3"),
    ("seed", "abc", "expected a whole number"),
])
def test_bad_placebo_settings_are_config_errors(key, value, words):
    with pytest.raises(ConfigError, match=words):
        config_from_dict({**BASE, key: value})


def test_placebo_holds_its_size_on_a_synthetic_market():
    """1,000 synthetic baskets of 6 stocks, 19 pseudo-days each: P(p <= 5%) is 1/20 under H0, ~1 at +3 sigma."""
    rng = np.random.default_rng(99)
    reps, n, k = 1000, 6, 19
    est, span = Window(-250, -11), Window(-10, 10)
    windows = [Window(0, 0), Window(-1, 1)]
    i0 = -2 * est.start + PLACEBO_LOOKBACK + 5
    rows = i0 + span.end + 1
    market = rng.normal(0.0004, 0.01, (rows, reps))
    sigma = rng.uniform(0.01, 0.03, reps * n)
    stock = (0.0002 + rng.uniform(0.5, 1.5, reps * n) * np.repeat(market, n, axis=1)
             + sigma * rng.normal(size=(rows, reps * n)))
    regressors = np.repeat(market, n, axis=1)
    cols = np.arange(reps * n)
    settings = dict(estimation=est, span=span, windows=windows, min_returns=120, max_zero_share=0.5)
    candidates = candidate_days(i0, est, span, blocked=[])
    distinct = np.argsort(rng.random((len(candidates), reps)), axis=0)[:k]  # k distinct days per basket
    pseudo = np.repeat(candidates[distinct], n, axis=1)  # a basket shares its days
    placebo = series_placebo("market", stock, regressors, cols, cols, pseudo, **settings)
    dist_caar = placebo.car.reshape(k, len(windows), reps, n).mean(axis=-1)
    dist_bmp = bmp_t(placebo.scar.reshape(k, len(windows), reps, n)).statistic
    for effect, check in ((0.0, lambda r: 0.03 <= r <= 0.07), (3.0, lambda r: r >= 0.95)):
        shocked = stock.copy()
        shocked[i0] += effect * sigma
        actual = series_placebo("market", shocked, regressors, cols, cols, np.array([i0]), **settings)
        caar = actual.car[0].reshape(len(windows), reps, n).mean(axis=-1)
        bmp = bmp_t(actual.scar[0].reshape(len(windows), reps, n)).statistic
        for name, stat, dist in (("placebo_caar", caar, dist_caar), ("placebo_bmp", bmp, dist_bmp)):
            rate = float((placebo_test(name, stat[0], dist[:, 0], np.full(reps, n)).p_value <= 0.05).mean())
            assert check(rate), (effect, name, rate)


@pytest.mark.shared_data
def test_cli_placebo_and_seed_flags(market_parquet, tmp_path):
    from click.testing import CliRunner

    from evstudy.cli import cli

    args = ["run", "--event", "2025-10-13:before_open", "--tickers", "MP,LAC,ALB", "--prices", str(market_parquet),
            "--quiet", "--placebo", "40", "--seed", "3", "--out", str(tmp_path / "a")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    tests = pd.read_csv(tmp_path / "a" / "tests.csv")
    notes = tests.loc[tests["test"] == "placebo_caar", "note"]
    assert notes.str.startswith("40 pseudo-event days drawn without replacement (seed 3)").all()
    bad = CliRunner().invoke(cli, [*args[:-2], "--placebo", "-5"])
    assert bad.exit_code == 2 and "--placebo" in bad.stderr


@pytest.mark.parametrize("model", ["market", "constant_mean", "market_adjusted", "two_index", "dimson"])
def test_prefix_sum_engine_matches_statsmodels_with_missing_days(model):
    """Each (pseudo-day, series) refitted on its own rows with statsmodels: CAR and MacKinlay S_CAR per window."""
    rng = np.random.default_rng(21)
    rows, n = 800, 3
    market = rng.normal(0.0004, 0.01, rows)
    sector = rng.normal(0.0, 0.01, rows)
    stock = 0.0002 + 0.9 * market[:, None] + 0.5 * sector[:, None] + rng.normal(0, 0.02, (rows, n))
    stock[rng.random((rows, n)) < 0.05] = np.nan  # scattered missing days, different per series
    market[rng.random(rows) < 0.01] = np.nan
    lag, lead = np.r_[np.nan, market[:-1]], np.r_[market[1:], np.nan]
    regressors = {"two_index": np.stack([market, sector], axis=-1), "dimson": np.stack([lag, market, lead], axis=-1)}
    panel = np.repeat(regressors.get(model, market)[:, None], n, axis=1)
    est, span, windows = Window(-250, -11), Window(-10, 10), [Window(0, 0), Window(-3, 2), Window(-10, 10)]
    days = np.array([280, 420, 555, 700, 789])
    result = series_placebo(model, stock, panel, np.arange(n), np.arange(n), days, estimation=est, span=span,
                            windows=windows, min_returns=150, max_zero_share=0.5)
    checked = 0
    for i, d in enumerate(days):
        for s in range(n):
            x_all = panel[:, s].reshape(rows, -1)
            y_all = stock[:, s] - (x_all[:, 0] if model == "market_adjusted" else 0.0)
            est_rows = np.arange(d + est.start, d + est.end + 1)
            ok = np.isfinite(y_all[est_rows]) & np.isfinite(x_all[est_rows]).all(axis=1)
            ev_rows = np.arange(d + span.start, d + span.end + 1)
            usable = ok.sum() >= 150 and np.isfinite(stock[ev_rows, s]).all() and np.isfinite(x_all[ev_rows]).all()
            if not usable:
                assert np.isnan(result.car[i, :, s]).all()
                continue
            design = np.ones((len(est_rows), 1)) if model in ("constant_mean", "market_adjusted") else \
                sm.add_constant(x_all[est_rows], has_constant="add")
            ols = sm.OLS(y_all[est_rows][ok], design[ok]).fit()
            for w, window in enumerate(windows):
                inside = np.arange(d + window.start, d + window.end + 1)
                if model == "market_adjusted":
                    car, var = (stock[inside, s] - x_all[inside, 0]).sum(), ols.scale * len(inside)
                else:
                    z = np.ones((len(inside), 1)) if model == "constant_mean" else \
                        sm.add_constant(x_all[inside], has_constant="add")
                    car = (stock[inside, s] - z @ ols.params).sum()
                    v = z.sum(axis=0)
                    var = ols.scale * (len(inside) + v @ ols.normalized_cov_params @ v)
                assert result.car[i, w, s] == pytest.approx(car, rel=1e-9, abs=1e-13)
                assert result.scar[i, w, s] == pytest.approx(car / np.sqrt(var), rel=1e-9, abs=1e-11)
            checked += 1
    assert checked >= 5  # and the rest were checked to be excluded


def test_basket_placebos_equal_the_full_computation_and_skip_only_dropped_draws(monkeypatch):
    """Per basket, the same CAAR, BMP t and usable-member counts as basket_placebo of series_placebo, bit for bit,
    while the window CARs are computed only on draws where some basket may be complete."""
    import evstudy.placebo as placebo

    rng = np.random.default_rng(8)
    rows, n = 900, 6
    market = rng.normal(0.0004, 0.01, (rows, 1))
    stock = 0.0002 + market + rng.normal(0, 0.02, (rows, n))
    stock[550:640, 1] = np.nan  # member 1 lacks data for pseudo-days around there
    stock[:, 5] = np.where(np.arange(rows) < 700, np.nan, stock[:, 5])  # listed late: never usable before day 700
    regressors = np.repeat(market, n, axis=1)
    days = np.array([300, 500, 560, 600, 650, 880])
    settings = dict(estimation=Window(-250, -11), span=Window(-10, 10), windows=[Window(0, 0), Window(-1, 1)],
                    min_returns=200, max_zero_share=0.5)
    baskets = [np.array([0, 1, 2]), np.array([2, 3, 4]), np.array([0, 5])]
    computed = []
    original = placebo._window_cars
    monkeypatch.setattr(placebo, "_window_cars", lambda prefix, layout, d, *rest: computed.append(d.copy())
                        or original(prefix, layout, d, *rest))
    fast = basket_placebos("market", stock, regressors, days, baskets, **settings)
    assert sorted(np.concatenate(computed).tolist()) == days.tolist()  # here every draw serves basket 2-4
    series = series_placebo("market", stock, regressors, np.arange(n), np.arange(n), days, **settings)
    for cols, dist in zip(baskets, fast):
        full = basket_placebo(series, cols)
        np.testing.assert_array_equal(dist.caar, full.caar)
        np.testing.assert_array_equal(dist.bmp, full.bmp)
        np.testing.assert_array_equal(dist.n, full.n)
        assert dist.dropped == full.dropped and dist.members == full.members
    assert fast[0].dropped >= 1 and fast[2].dropped == len(days) and fast[2].n.tolist() == [1] * len(days)
    assert np.isfinite(fast[1].caar).all()  # basket 2-4 is complete on every draw

    computed.clear()
    only_late = basket_placebos("market", stock, regressors, days, [np.array([0, 5])], **settings)[0]
    assert computed == [] and np.isnan(only_late.caar).all() and only_late.n.tolist() == [1] * len(days)


def test_prefix_sums_are_numpys_cumsum_bit_for_bit():
    """Row-by-row prefix sums: the values np.cumsum gives (with -0.0 kept), behind a zero row."""
    values = np.random.default_rng(3).normal(size=(50, 3, 4))
    values[0, 0, 0] = -0.0
    expected = np.concatenate([np.zeros((1, 3, 4)), np.cumsum(values, axis=0)])
    got = _prefix(values)
    assert np.array_equal(got, expected) and np.signbit(got[1, 0, 0])
    assert _prefix(np.empty((0, 2))).tolist() == [[0.0, 0.0]]
    wide = np.random.default_rng(4).normal(size=(40, 7, 30))  # 210 columns: the row loop, not np.cumsum
    assert np.array_equal(_prefix(wide), np.concatenate([np.zeros((1, 7, 30)), np.cumsum(wide, axis=0)]))


def test_placebo_cells_are_the_same_in_one_chunk_or_many():
    """One chunk reads the count rules from its moment prefix; many chunks count per chunk: the same cells."""
    import evstudy.placebo as placebo

    rng = np.random.default_rng(9)
    rows, n = 700, 5
    market = rng.normal(0.0004, 0.01, (rows, 1))
    stock = 0.0002 + market + rng.normal(0, 0.02, (rows, n))
    stock[rng.random((rows, n)) < 0.002] = np.nan
    stock[300:420, 2] = 0.0  # a stale stretch: the zero-return rule drops series 2 on some draws
    stock[:, 4] = np.where(np.arange(rows) < 500, np.nan, stock[:, 4])
    days = np.array([280, 350, 400, 450, 520, 600, 660])
    settings = dict(estimation=Window(-250, -11), span=Window(-10, 10), windows=[Window(0, 0), Window(-2, 2)],
                    min_returns=150, max_zero_share=0.3)
    wanted = lambda counted: np.flatnonzero(counted[:, :3].all(axis=1))  # noqa: E731
    args = ("market", stock, np.repeat(market, n, axis=1), np.arange(n), np.arange(n), days)
    one = placebo._placebo_cells(*args, **settings, car_draws=wanted)
    many = placebo._placebo_cells(*args, **settings, car_draws=wanted, chunk=2)
    assert 0 < len(one[1]) < len(days) and not one[0].all() and one[0].any()
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)


def test_prefix_sums_stop_at_the_last_row_a_draw_reads(monkeypatch):
    """The moment prefix covers rows up to the latest draw's last window day only, and the placebo CARs
    are bit for bit those of the whole panel (the rows after it are never read)."""
    import evstudy.placebo as placebo

    rng = np.random.default_rng(12)
    rows, n = 1_200, 4
    market = rng.normal(0.0004, 0.01, (rows, 1))
    stock = 0.0002 + market + rng.normal(0, 0.02, (rows, n))
    regressors = np.repeat(market, n, axis=1)
    days = np.array([300, 420, 610])
    settings = dict(estimation=Window(-250, -11), span=Window(-10, 10), windows=[Window(0, 0), Window(-2, 5)],
                    min_returns=200, max_zero_share=0.5)
    lengths = []
    original = placebo._prefix
    monkeypatch.setattr(placebo, "_prefix", lambda terms: lengths.append(len(terms)) or original(terms))
    short = series_placebo("market", stock, regressors, np.arange(n), np.arange(n), days, **settings)
    assert lengths == [610 + 10 + 1]  # the last draw's event span ends on row 620: rows 621.. are not summed

    changed = stock.copy()
    changed[621:] = rng.normal(0, 0.5, (rows - 621, n))  # what lies after it cannot matter
    other = series_placebo("market", changed, regressors, np.arange(n), np.arange(n), days, **settings)
    np.testing.assert_array_equal(short.car, other.car)
    np.testing.assert_array_equal(short.scar, other.scar)
    assert np.isfinite(short.car).all()
