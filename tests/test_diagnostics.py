"""Estimation-window hygiene: break tests, flags, active_from trimming and the robustness columns.

The statistics are checked three ways: against their formulas written out
independently here (loops over k, no evstudy code), on synthetic residuals
with a known break (found) or none (flagged at most ~5% of the time), and on
USAR, a SPAC until its 2025-03-14 merger, from the real data.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from click.testing import CliRunner
from numpy.testing import assert_allclose

from evstudy.cli import cli
from evstudy.config import ad_hoc_config, config_from_dict
from evstudy.diagnostics import (
    BREAK_CRITICAL_5PCT, longest_zero_run, mean_break, robust_scale, variance_break,
)
from evstudy.errors import ConfigError
from evstudy.report.terminal import summary_text
from evstudy.study import compute_study

from helpers import closes_from_returns, nyse_dates, price_data, read_parquet_closes, simple_returns_reference

DAY0 = pd.Timestamp("2025-10-13")
MERGER = pd.Timestamp("2025-03-14")
EST = (-250, -11)


# --------------------------------------------------------------------------- statistics, known answers


def kappa1_reference(e: np.ndarray) -> tuple[float, int]:
    """Sansó, Aragó & Carrion (2004) kappa_1 by a loop over k, and the last row of the old regime."""
    T = len(e)
    a2 = e**2
    CT = a2.sum()
    eta4 = (a2**2).sum() / T
    sigma4 = (CT / T) ** 2
    values = [abs(a2[: k + 1].sum() - (k + 1) / T * CT) / np.sqrt(T) / np.sqrt(eta4 - sigma4) for k in range(T)]
    return max(values), int(np.argmax(values))


def test_variance_break_statistic_matches_its_formula_and_inclan_tiao():
    rng = np.random.default_rng(7)
    e = rng.standard_normal((240, 3)) * 0.02  # Gaussian: winsorizing at 8 robust sigmas changes nothing
    e[120:, 1] *= 1.8
    test = variance_break(e)
    for j in range(3):
        ref, last_old = kappa1_reference(e[:, j])
        assert_allclose(test.statistic[j], ref, rtol=1e-12)
        assert test.start[j] == last_old + 1
        # Inclán & Tiao's sqrt(T/2) max|D_k| rescaled by sqrt(2 sigma^4 / (eta4 - sigma^4)) is kappa_1.
        a2 = e[:, j] ** 2
        T = len(a2)
        D = np.cumsum(a2) / a2.sum() - np.arange(1, T + 1) / T
        it = np.sqrt(T / 2) * np.abs(D).max()
        sigma2 = a2.mean()
        assert_allclose(test.statistic[j], it * np.sqrt(2 * sigma2**2 / ((a2**2).mean() - sigma2**2)), rtol=1e-12)


def test_mean_break_statistic_matches_ols_cusum():
    rng = np.random.default_rng(3)
    e = rng.standard_normal((200, 2))
    e[100:, 0] += 0.6
    test = mean_break(e)
    for j in range(2):
        x = e[:, j] - e[:, j].mean()
        path = np.abs(np.cumsum(x)) / (x.std(ddof=1) * np.sqrt(len(x)))
        assert_allclose(test.statistic[j], path.max(), rtol=1e-12)
        assert test.start[j] == int(np.argmax(path)) + 1
    assert test.significant[0] and abs(test.start[0] - 100) <= 15


def test_planted_variance_break_is_found_at_its_day():
    rng = np.random.default_rng(11)
    e = rng.standard_normal((240, 400)) * 0.02
    e[150:] *= 2.5  # the new regime starts on row 150
    test = variance_break(e)
    assert test.significant.all()
    error = np.abs(test.start - 150)
    assert np.median(error) <= 2 and np.mean(error <= 5) > 0.8
    assert_allclose(np.median(test.after / test.before), 2.5, rtol=0.1)


@pytest.mark.parametrize("tails", ["normal", "student_t4"])
def test_no_break_is_flagged_at_most_about_5_percent(tails):
    rng = np.random.default_rng(2024)
    shape = (240, 4000)
    e = rng.standard_normal(shape) if tails == "normal" else rng.standard_t(4, shape)
    rate = variance_break(e * 0.02).significant.mean()
    # 4,000 draws: the binomial s.e. at 5% is 0.35 points. The Brownian-bridge
    # limit is slightly conservative at T = 240; fat tails must not inflate it.
    assert 0.01 < rate < 0.06, rate
    assert mean_break(e).significant.mean() < 0.06


def test_break_tests_skip_short_or_constant_series():
    e = np.full((240, 3), np.nan)
    e[:20, 0] = np.random.default_rng(0).standard_normal(20)  # 20 observations: too few
    e[:, 1] = 0.0  # no variation
    e[:, 2] = np.random.default_rng(1).standard_normal(240)
    test = variance_break(e)
    assert np.isnan(test.statistic[:2]).all() and not test.significant[:2].any()
    assert np.isfinite(test.statistic[2])


def test_longest_zero_run_and_robust_scale():
    r = np.array([[0.1, 0, 0, 0, 0.2, 0, 0, np.nan, 0, 0, 0, 0, 0.3]]).T
    length, start = longest_zero_run(r)
    assert (length[0], start[0]) == (4, 8)  # rows 8-11; the NaN at row 7 ends the run before it
    center, scale = robust_scale(np.array([[1.0], [2.0], [3.0], [4.0], [100.0]]))
    assert center[0] == 3.0 and scale[0] == pytest.approx(1.4826 * 1.0)


# --------------------------------------------------------------------------- the engine, synthetic


def _synthetic(n: int = 400, seed: int = 5) -> tuple[pd.DatetimeIndex, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    dates = nyse_dates(n, start="2022-01-03")
    return dates, rng.normal(0.0003, 0.01, n), rng


def _study(closes: pd.DataFrame, day0: pd.Timestamp, tickers, **extra) -> object:
    cfg = config_from_dict({
        "events": [{"id": "ev", "date": day0.date().isoformat(), "timing": "before_open"}],
        "baskets": [{"name": "b", "tickers": list(tickers), "benchmarks": ["MKT"]}],
        "benchmark": "MKT",
        **extra,
    })
    return compute_study(cfg, price_data(closes))


def test_flags_on_a_synthetic_market_and_accepting_a_break():
    dates, market, rng = _synthetic()
    day0 = dates[330]
    est_start = 330 - 250
    quiet = 0.8 * market + rng.normal(0, 0.004, len(dates))
    loud = 0.8 * market + rng.normal(0, 0.03, len(dates))
    regime = np.where(np.arange(len(dates)) < est_start + 120, quiet, loud)  # break at estimation row 120
    flat = 1.1 * market + rng.normal(0, 0.012, len(dates))
    flat[est_start + 40: est_start + 55] = 0.0  # 15 zero returns
    spike = 0.9 * market + rng.normal(0, 0.01, len(dates))
    spike[est_start + 60] = 0.35  # a 35-sigma day
    closes = closes_from_returns({"MKT": market, "REG": regime, "FLAT": flat, "SPIKE": spike}, dates)

    plain = _study(closes, day0, ["REG", "FLAT", "SPIKE"])
    diag = plain.diagnostics
    est_dates = dates[est_start: 330 - 10]
    reg = diag[(diag.ticker == "REG") & (diag.flag == "variance_break")]
    assert len(reg) == 1 and abs(est_dates.get_loc(reg["date"].iloc[0]) - 120) <= 3
    assert "not acted on" in reg["detail"].iloc[0]
    flat_row = diag[(diag.ticker == "FLAT") & (diag.flag == "flat_run")]
    assert len(flat_row) == 1 and flat_row["date"].iloc[0] == dates[est_start + 40]
    assert "15 consecutive zero returns" in flat_row["detail"].iloc[0]
    spike_row = diag[(diag.ticker == "SPIKE") & (diag.flag == "outlier")]
    assert list(spike_row["date"]) == [dates[est_start + 60]]
    assert (plain.fits["n_obs"] == 240).all() and "trimmed" not in set(diag.flag)  # flags never trim

    accepted = _study(closes, day0, ["REG", "FLAT", "SPIKE"], accept_breaks=True)
    fit = accepted.fits.set_index("ticker").loc["REG"]
    trimmed = accepted.diagnostics[accepted.diagnostics.flag == "trimmed"]
    assert list(trimmed.ticker) == ["REG"] and "--accept-breaks" in trimmed["detail"].iloc[0]
    assert fit["estimation_start"] == reg["date"].iloc[0] and fit["n_obs"] == 240 - est_dates.get_loc(fit["estimation_start"])
    comparison = accepted.fit_comparison
    reg_cmp = comparison[(comparison.ticker == "REG") & (comparison.window_start == 0) & (comparison.window_end == 0)]
    assert list(reg_cmp["fit"]) == ["full window", "active part"] and list(reg_cmp["used"]) == [False, True]
    assert_allclose(reg_cmp["sigma"].iloc[1], fit["sigma"], rtol=1e-12)


def test_few_returns_flag_and_results_json_carry_the_table(tmp_path):
    dates, market, rng = _synthetic()
    thin = 1.0 * market + rng.normal(0, 0.01, len(dates))
    thin[: 330 - 150] = np.nan  # only ~140 returns in the window
    closes = closes_from_returns({"MKT": market, "THIN": thin, "OK": market + rng.normal(0, 0.01, len(dates))}, dates)
    closes.loc[dates[: 330 - 150], "THIN"] = np.nan
    results = _study(closes, dates[330], ["THIN", "OK"], min_estimation_returns=200)
    row = results.diagnostics[results.diagnostics.flag == "few_returns"]
    assert list(row.ticker) == ["THIN"] and "200 needed" in row["detail"].iloc[0]
    doc = json.loads(json.dumps(results.to_dict(), allow_nan=False))
    assert {"event", "ticker", "benchmark", "flag", "detail", "date"} <= set(doc["diagnostics"][0])


# --------------------------------------------------------------------------- USAR on the real data


@pytest.fixture(scope="module")
def usar_closes(market_parquet) -> pd.DataFrame:
    return read_parquet_closes(market_parquet, ["USAR", "MP", "SPY"])


def _usar_config(**extra):
    return config_from_dict({
        "events": [{"id": "jpm", "date": "2025-10-13", "timing": "before_open"}],
        "baskets": [{"name": "m", "tickers": ["USAR", "MP"], "benchmarks": ["SPY"]}],
        "estimation_window": list(EST),
        **extra,
    })


@pytest.mark.shared_data
def test_usar_variance_break_is_found_near_its_merger(usar_closes):
    results = compute_study(ad_hoc_config(event="2025-10-13:before_open", tickers=["USAR", "MP"]), price_data(usar_closes))
    fit = results.fits.set_index("ticker").loc["USAR"]
    assert fit["beta"] == pytest.approx(-0.2, abs=0.05) and fit["r2"] < 0.01  # the mixed-regime fit
    assert fit["n_obs"] == 240  # an ad hoc run never trims
    flags = results.diagnostics[results.diagnostics.ticker == "USAR"]
    brk = flags[flags.flag == "variance_break"]
    assert len(brk) == 1
    sessions = usar_closes.index[usar_closes["SPY"].notna()]
    gap = sessions.get_loc(MERGER) - sessions.get_loc(brk["date"].iloc[0])
    assert 0 <= gap <= 10, brk["date"].iloc[0]  # the run-up to the merger vote starts the new regime
    assert "not acted on" in brk["detail"].iloc[0]
    assert MERGER in set(flags.loc[flags.flag == "outlier", "date"])  # the +72% day
    assert "trimmed" not in set(results.diagnostics.flag)
    text = summary_text(results)
    assert "Volatility changed inside the estimation window" in text and "USAR (2025-03-" in text


@pytest.mark.shared_data
def test_active_from_fits_usar_on_its_post_merger_returns_only(usar_closes):
    results = compute_study(_usar_config(active_from={"USAR": dt.date(2025, 3, 14)}), price_data(usar_closes))

    # Independent reference: pandas returns, rows by position, statsmodels OLS.
    spy = usar_closes["SPY"]
    days = usar_closes.index[spy.notna() & (spy > 0)]
    rets = simple_returns_reference(usar_closes.reindex(days))
    i0 = days.get_loc(DAY0)
    est = rets.iloc[i0 + EST[0]: i0 + EST[1] + 1]
    active = est[est.index > MERGER][["USAR", "SPY"]].dropna()
    ols = sm.OLS(active["USAR"].to_numpy(), sm.add_constant(active["SPY"].to_numpy())).fit()
    L1 = len(active)
    s2 = ols.ssr / (L1 - 2)

    fit = results.fits.set_index("ticker").loc["USAR"]
    assert fit["status"] == "included" and fit["n_obs"] == L1
    assert fit["estimation_start"] == active.index[0] == pd.Timestamp("2025-03-17")
    assert_allclose([fit["alpha"], fit["beta"], fit["sigma"], fit["r2"]],
                    [ols.params[0], ols.params[1], np.sqrt(s2), ols.rsquared], rtol=1e-8)
    car = results.cars[(results.cars.ticker == "USAR") & (results.cars.window_start == -1) & (results.cars.window_end == 1)]
    rows = rets.iloc[i0 - 1: i0 + 2]
    x_star = np.column_stack([np.ones(3), rows["SPY"].to_numpy()])
    ones = np.ones(3)
    ref_car = (rows["USAR"] - (ols.params[0] + ols.params[1] * rows["SPY"])).sum()
    ref_se = np.sqrt(s2 * (3 + ones @ x_star @ ols.normalized_cov_params @ x_star.T @ ones))
    assert_allclose([car["car"].iloc[0], car["se"].iloc[0]], [ref_car, ref_se], rtol=1e-8)

    # MP is untouched; USAR's full-window fit is still shown beside the one used.
    assert results.fits.set_index("ticker").loc["MP", "n_obs"] == 240
    cmp = results.fit_comparison[(results.fit_comparison.ticker == "USAR") & (results.fit_comparison.window_start == 0)
                                 & (results.fit_comparison.window_end == 0)]
    full = est[["USAR", "SPY"]].dropna()
    ols_full = sm.OLS(full["USAR"].to_numpy(), sm.add_constant(full["SPY"].to_numpy())).fit()
    assert list(cmp["fit"]) == ["full window", "active part"] and list(cmp["used"]) == [False, True]
    assert_allclose(cmp["beta"].to_numpy(), [ols_full.params[1], ols.params[1]], rtol=1e-8)
    trimmed = results.diagnostics[results.diagnostics.flag == "trimmed"]
    assert list(trimmed.ticker) == ["USAR"] and "active_from 2025-03-14" in trimmed["detail"].iloc[0]
    assert "Estimated on the active part only:\n  USAR vs SPY [jpm]: estimated on returns from 2025-03-17" in \
        summary_text(results)


@pytest.mark.shared_data
def test_active_from_with_too_few_returns_left_excludes_with_the_reason(usar_closes):
    results = compute_study(_usar_config(active_from={"USAR": dt.date(2025, 7, 1)}), price_data(usar_closes))
    row = results.fits.set_index("ticker").loc["USAR"]
    assert row["status"] == "excluded"
    assert "active_from 2025-07-01" in row["reason"] and "needs 120" in row["reason"]


@pytest.mark.shared_data
def test_market_adjusted_robustness_is_stock_minus_benchmark(usar_closes):
    results = compute_study(_usar_config(), price_data(usar_closes))
    spy = usar_closes["SPY"]
    days = usar_closes.index[spy.notna() & (spy > 0)]
    rets = simple_returns_reference(usar_closes.reindex(days))
    i0 = days.get_loc(DAY0)
    rob = results.robustness
    for ticker in ("USAR", "MP"):
        for start, end in ((0, 0), (-1, 1), (-10, 10)):
            row = rob[(rob.ticker == ticker) & (rob.window_start == start) & (rob.window_end == end)]
            window = rets.iloc[i0 + start: i0 + end + 1]
            assert row["model"].iloc[0] == "market_adjusted"
            assert_allclose(row["car"].iloc[0], (window[ticker] - window["SPY"]).sum(), rtol=1e-10)


@pytest.mark.shared_data
def test_cli_accept_breaks_trims_an_ad_hoc_run_and_says_so(market_parquet, tmp_path):
    base = ["run", "--event", "2025-10-13:before_open", "--tickers", "USAR", "--prices", str(market_parquet), "--quiet"]
    plain = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "plain")])
    accepted = CliRunner().invoke(cli, [*base, "--accept-breaks", "--out", str(tmp_path / "acc")])
    assert plain.exit_code == 0 and accepted.exit_code == 0, (plain.stderr, accepted.stderr)
    before = json.loads((tmp_path / "plain" / "results.json").read_text())
    after = json.loads((tmp_path / "acc" / "results.json").read_text())
    assert "trimmed" not in {d["flag"] for d in before["diagnostics"]}
    trimmed = [d for d in after["diagnostics"] if d["flag"] == "trimmed"]
    assert len(trimmed) == 1 and "--accept-breaks" in trimmed[0]["detail"]
    assert after["fits"][0]["estimation_start"] == trimmed[0]["date"] > before["fits"][0]["estimation_start"]


# --------------------------------------------------------------------------- config


def test_active_from_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"key 'active_from.ZZZZ'.*in no basket"):
        _usar_config(active_from={"ZZZZ": "2025-03-14"})
    with pytest.raises(ConfigError, match=r"active_from.USAR.*YYYY-MM-DD"):
        _usar_config(active_from={"USAR": "March"})
    with pytest.raises(ConfigError, match=r"key 'accept_breaks'.*true or false"):
        _usar_config(accept_breaks="yes")
    cfg = _usar_config(active_from={"usar": "2025-03-14"})
    assert cfg.active_from == {"USAR": dt.date(2025, 3, 14)}
    assert cfg.to_dict()["active_from"] == {"USAR": "2025-03-14"}


def test_jpm_config_estimates_usar_from_its_merger():
    from evstudy.config import load_config

    from conftest import REPO

    cfg = load_config(REPO / "configs" / "jpm-sri-2025.toml")
    assert cfg.active_from == {"USAR": dt.date(2025, 3, 14)} and not cfg.accept_breaks
    assert BREAK_CRITICAL_5PCT == 1.358


def test_nan_median_is_numpys_to_the_bit():
    """The one-sort median equals np.nanmedian: odd and even counts, gaps, infinities, an empty column."""
    import warnings

    from evstudy.diagnostics import nan_median

    rng = np.random.default_rng(3)
    values = rng.standard_t(3, size=(240, 60)) * 0.02
    values[rng.random(values.shape) < 0.1] = np.nan
    values[:7, 1] = np.nan  # an odd count in one column, even in another
    values[:8, 2] = np.nan
    values[5, 3], values[9, 4] = np.inf, -np.inf
    values[:, 5] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN column
        expected = np.nanmedian(values, axis=0)
    np.testing.assert_array_equal(nan_median(values), expected)


def test_robust_scale_medians_are_numpys_nanmedian():
    """The one-sort column median gives np.nanmedian's values: odd and even counts, gaps, empty columns, inf."""
    import warnings

    from evstudy.diagnostics import nan_median

    rng = np.random.default_rng(12)
    for shape in [(240, 60), (1, 4), (2, 3), (7, 1)]:
        values = rng.standard_normal(shape)
        values[rng.random(shape) < 0.3] = np.nan
        values[:, 0] = np.nan
        if shape[0] > 2:
            values[0, -1] = np.inf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN column
            expected = np.nanmedian(values, axis=0)
        np.testing.assert_array_equal(nan_median(values), expected)
    assert np.isnan(nan_median(np.empty((0, 3)))).all()
