"""Pairwise basket comparisons corrected for multiplicity: Holm and Benjamini-Hochberg per family.

Known answers: ``statsmodels.stats.multitest.multipletests`` (methods "holm"
and "fdr_bh") on the same p-values; a family is every pair of one event,
benchmark and window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from evstudy.compare import FAMILY, adjust_pairs, compare_baskets, holm_adjusted, pair_verdict
from evstudy.config import config_from_dict
from evstudy.study import compute_study

from helpers import closes_from_returns, nyse_dates, price_data

N_DAYS, I0 = 320, 290


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, 28) ** 2
    p[[3, 9]] = p[4]  # ties
    np.testing.assert_allclose(holm_adjusted(p), multipletests(p, method="holm")[1], rtol=0, atol=1e-15)


def test_holm_leaves_missing_p_values_out_of_the_family():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    adjusted = holm_adjusted(p)
    assert np.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2, 3]], multipletests(p[[0, 2, 3]], method="holm")[1])


@pytest.fixture(scope="module")
def five_baskets():
    """Five baskets of six stocks each; basket G1 jumps +6% on day 0, the others not."""
    rng = np.random.default_rng(11)
    dates = nyse_dates(N_DAYS, start="2024-06-03")
    market = rng.normal(0.0004, 0.01, N_DAYS)
    returns = {"MKT": market}
    baskets = []
    for g in range(5):
        names = [f"G{g}S{i}" for i in range(6)]
        for name in names:
            r = 0.0002 + market + rng.normal(0, 0.01, N_DAYS)
            r[I0] += 0.06 if g == 1 else 0.0
            returns[name] = r
        baskets.append({"name": f"G{g}", "tickers": names})
    closes = closes_from_returns(returns, dates)
    cfg = config_from_dict({
        "name": "family", "benchmark": "MKT", "estimation_window": [-250, -21], "placebo_dates": 0,
        "windows": [[0, 0], [-1, 1]],
        "events": [{"id": "ev", "date": dates[I0].date().isoformat(), "timing": "before_open"}],
        "baskets": baskets,
    })
    return compute_study(cfg, price_data(closes))


def test_each_window_is_one_family_adjusted_like_statsmodels(five_baskets):
    pairs = compare_baskets(five_baskets, n_permutations=2000, seed=1).pairs
    assert len(pairs) == 10 * 2
    for _, family in pairs.groupby(FAMILY):
        p = family["p_permutation"].to_numpy(dtype=float)
        assert (family["family_size"] == 10).all()
        np.testing.assert_allclose(family["p_holm"].to_numpy(dtype=float), multipletests(p, method="holm")[1])
        np.testing.assert_allclose(family["q_bh"].to_numpy(dtype=float), multipletests(p, method="fdr_bh")[1])


def test_verdicts_read_the_adjusted_p(five_baskets):
    pairs = compare_baskets(five_baskets, n_permutations=2000, seed=1).pairs
    day0 = pairs[(pairs.window_start == 0) & (pairs.window_end == 0)]
    with_g1 = day0[(day0.basket_a == "G1") | (day0.basket_b == "G1")]
    assert with_g1["verdict"].str.startswith("significant at").all()
    for row in pairs.itertuples():
        if row.p_holm < 0.05:
            assert row.verdict.startswith("significant at")
        elif row.p_holm >= 0.10:
            assert row.verdict in ("no significant difference",) or row.verdict.startswith("inconclusive")


def test_a_raw_p_under_5_percent_that_does_not_survive_holm_is_not_significant():
    p = [0.03, 0.2, 0.5, 0.6, 0.9]
    pairs = pd.DataFrame({
        "event": "ev", "benchmark": "SPY", "window_start": 0, "window_end": 0,
        "basket_a": list("abcde"), "basket_b": list("vwxyz"), "diff": 0.01, "p_permutation": p,
    })
    out = adjust_pairs(pairs, pd.Series([1 / 10_001] * 5))
    assert out["family_size"].tolist() == [5] * 5
    assert out.loc[0, "p_holm"] == pytest.approx(0.15) and out.loc[0, "verdict"] == "no significant difference"
    assert out.loc[0, "q_bh"] == pytest.approx(0.15)


def test_a_family_the_stocks_cannot_resolve_is_inconclusive():
    # 2 vs 2 stocks: 6 label splits, no permutation p below ~1/6; 10 pairs need one below 0.005
    assert pair_verdict(0.9, 0.01, 1 / 6, 10).startswith("inconclusive: too few stocks")
    assert pair_verdict(0.9, 0.01, 1 / 10_001, 10) == "no significant difference"
    assert pair_verdict(0.004, -0.02, 1 / 10_001, 10) == "significant at 1%, A below B"
    assert pair_verdict(None, None, None, 3) == "not computed"


def test_the_compare_page_answers_first_with_the_records_numbers(five_baskets):
    import dataclasses
    import re

    from evstudy.report.compare_page import render_compare_page
    from evstudy.report.html import fmt_p

    comparison = compare_baskets(five_baskets, n_permutations=2000, seed=1)
    results = dataclasses.replace(five_baskets, extras={**five_baskets.extras, "comparisons": comparison})
    page = render_compare_page(results)
    answer = re.search(r'<p class="lead answer">(.*?)</p>', page, re.S).group(1)
    assert answer.startswith("On day 0, G1 moved most") and "Corrected for the 10 pairwise tests (Holm)" in answer
    assert page.index("answer") < page.index("Pairwise differences on day 0 (10 tests")
    day0 = comparison.pairs[(comparison.pairs.window_start == 0) & (comparison.pairs.window_end == 0)]
    table = page[page.index("Pairwise differences on day 0"):page.index("Every window")]
    rows = re.findall(r"<tr><td>(G\d)</td><td>(G\d)</td>(.*?)</tr>", table, re.S)
    assert len(rows) == 10
    for a, b, cells in rows:
        record = day0[(day0.basket_a == a) & (day0.basket_b == b)].iloc[0]
        numbers = re.findall(r'<td class="num" data-sort="[^"]*"[^>]*>([^<]*)</td>', cells)
        assert numbers[-2:] == [fmt_p(record.p_holm), fmt_p(record.q_bh)]
        assert record.verdict in cells
    with pytest.raises(ValueError, match="no basket comparison"):
        render_compare_page(five_baskets)
