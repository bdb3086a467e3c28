"""Basket comparison: differences, Welch and permutation tests checked against independent computations.

The independent side never calls evstudy's statistics: differences come from
pandas on cars.csv and the config's memberships, Welch from
``scipy.stats.ttest_ind(equal_var=False)``, the permutation p from a slow
Python loop (sharing the RNG stream for an exact check, or on its own stream
within Monte-Carlo error), and exact permutation p-values by enumerating every
split with itertools.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from evstudy.cli import cli
from evstudy.compare import (
    COMPARISON_COLUMNS, compare_baskets, pair_rng, permutation_pvalues, restrict_baskets, welch_test,
)
from evstudy.config import config_from_dict, load_config
from evstudy.errors import ConfigError
from evstudy.study import compute_study

from helpers import closes_from_returns, nyse_dates, price_data

REPO = Path(__file__).resolve().parents[1]
JPM_CONFIG = REPO / "configs" / "jpm-sri-2025.toml"
CONTRACT = ["event", "basket_a", "basket_b", "window_start", "window_end", "diff", "t", "p_welch", "p_permutation"]


def invoke(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def slow_permutation_p(a: np.ndarray, b: np.ndarray, n_perm: int, rng: np.random.Generator) -> float:
    """One permutation at a time: shuffle the pooled labels, recompute the difference of means."""
    pooled = np.concatenate([a, b])
    labels = np.concatenate([np.ones(len(a)), np.zeros(len(b))])
    observed = abs(a.mean() - b.mean())
    hits = 0
    for _ in range(n_perm):
        shuffled = rng.permutation(labels).astype(bool)
        if abs(pooled[shuffled].mean() - pooled[~shuffled].mean()) >= observed - 1e-12:
            hits += 1
    return (1 + hits) / (n_perm + 1)


def exact_permutation_p(a: np.ndarray, b: np.ndarray) -> float:
    """The exact two-sided permutation p: every split of the pooled values into groups of len(a) and len(b)."""
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    total = pooled.sum()
    splits = list(itertools.combinations(range(len(pooled)), len(a)))
    hits = sum(
        abs(pooled[list(idx)].sum() / len(a) - (total - pooled[list(idx)].sum()) / len(b)) >= observed - 1e-12
        for idx in splits
    )
    return hits / len(splits)


# --------------------------------------------------------------------------- the statistics


def test_welch_matches_scipy_per_window():
    rng = np.random.default_rng(7)
    a = rng.normal(0.03, 0.05, size=(9, 4))
    b = rng.normal(0.00, 0.02, size=(14, 4))
    t, p, df = welch_test(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False, axis=0)
    np.testing.assert_allclose(t, ref.statistic, rtol=1e-12)
    np.testing.assert_allclose(p, ref.pvalue, rtol=1e-10)
    va, vb = a.var(axis=0, ddof=1) / 9, b.var(axis=0, ddof=1) / 14
    np.testing.assert_allclose(df, (va + vb) ** 2 / (va**2 / 8 + vb**2 / 13), rtol=1e-12)


def test_welch_is_undefined_with_one_stock_on_a_side():
    t, p, df = welch_test(np.array([[0.1, 0.2]]), np.array([[0.0, 0.1], [0.02, 0.3]]))
    assert np.isnan(t).all() and np.isnan(p).all() and np.isnan(df).all()


def test_permutation_p_equals_a_slow_loop_on_the_same_stream():
    rng = np.random.default_rng(3)
    a = rng.normal(0.02, 0.03, size=(7, 3))
    b = rng.normal(0.00, 0.03, size=(9, 3))
    fast = permutation_pvalues(a, b, 500, np.random.default_rng(11))
    for w in range(3):
        slow = slow_permutation_p(a[:, w], b[:, w], 500, np.random.default_rng(11))
        assert fast[w] == slow


def test_permutation_p_is_reproducible_and_blocked_draws_match_one_draw(monkeypatch):
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.01, 0.02, size=(6, 2)), rng.normal(0.0, 0.02, size=(8, 2))
    first = permutation_pvalues(a, b, 3000, np.random.default_rng(1))
    assert np.array_equal(first, permutation_pvalues(a, b, 3000, np.random.default_rng(1)))
    monkeypatch.setattr("evstudy.compare._BLOCK_CELLS", 14 * 7)  # 7 permutations per block
    assert np.array_equal(first, permutation_pvalues(a, b, 3000, np.random.default_rng(1)))
    assert not np.array_equal(first, permutation_pvalues(a, b, 3000, np.random.default_rng(2)))


def test_permutation_p_agrees_with_exact_enumeration_within_monte_carlo_error():
    rng = np.random.default_rng(9)
    a = rng.normal(0.03, 0.02, size=(5, 1))
    b = rng.normal(0.0, 0.02, size=(7, 1))  # C(12, 5) = 792 splits
    exact = exact_permutation_p(a[:, 0], b[:, 0])
    n = 20_000
    p = permutation_pvalues(a, b, n, np.random.default_rng(4))[0]
    assert abs(p - exact) < 4 * math.sqrt(exact * (1 - exact) / n) + 2 / n


def test_identical_groups_give_p_one_and_ties_count():
    a = np.array([[0.01], [0.01]])
    b = np.array([[0.01], [0.01], [0.01]])
    assert permutation_pvalues(a, b, 200, np.random.default_rng(0))[0] == 1.0


# --------------------------------------------------------------------------- on a synthetic study

N_DAYS, I0 = 320, 300


@pytest.fixture(scope="module")
def synthetic():
    """Three overlapping baskets on a synthetic market; B1 and B2 share S3."""
    rng = np.random.default_rng(2025)
    dates = nyse_dates(N_DAYS, start="2024-06-03")
    market = rng.normal(0.0004, 0.01, N_DAYS)
    returns = {"MKT": market}
    jumps = {"S1": 0.08, "S2": 0.05, "S3": 0.02, "S4": 0.0, "S5": -0.01, "S6": 0.01, "S7": 0.03}
    for i, (name, jump) in enumerate(jumps.items()):
        r = 0.0002 + (0.8 + 0.1 * i) * market + rng.normal(0, 0.01, N_DAYS)
        r[I0] += jump
        returns[name] = r
    closes = closes_from_returns(returns, dates)
    cfg = config_from_dict({
        "name": "synthetic-compare",
        "benchmark": "MKT",
        "estimation_window": [-250, -21],
        "windows": [[0, 0], [-1, 1], [0, 5]],
        "events": [{"id": "ev", "date": dates[I0].date().isoformat(), "timing": "before_open"}],
        "baskets": [
            {"name": "B1", "tickers": ["S1", "S2", "S3"]},
            {"name": "B2", "tickers": ["S3", "S4", "S5", "S6"]},
            {"name": "B3", "tickers": ["S7", "S6"]},
        ],
    })
    return compute_study(cfg, price_data(closes))


def test_pairs_drop_shared_tickers_and_match_independent_numbers(synthetic):
    comparison = compare_baskets(synthetic, n_permutations=400, seed=8)
    pairs = comparison.pairs
    assert list(pairs.columns[:9]) == CONTRACT and list(pairs.columns) == COMPARISON_COLUMNS
    assert len(pairs) == 3 * 3  # three pairs x three windows
    cars = synthetic.cars.set_index(["ticker", "window_start", "window_end"])["car"]
    sides = {("B1", "B2"): (["S1", "S2"], ["S4", "S5", "S6"], "S3"),
             ("B1", "B3"): (["S1", "S2", "S3"], ["S7", "S6"], ""),
             ("B2", "B3"): (["S3", "S4", "S5"], ["S7"], "S6")}
    for row in pairs.itertuples(index=False):
        only_a, only_b, shared = sides[(row.basket_a, row.basket_b)]
        a = np.array([cars[(t, row.window_start, row.window_end)] for t in only_a])
        b = np.array([cars[(t, row.window_start, row.window_end)] for t in only_b])
        assert row.shared == shared and (row.n_a, row.n_b) == (len(only_a), len(only_b))
        assert row.diff == pytest.approx(a.mean() - b.mean(), abs=1e-14)
        if len(b) >= 2:
            ref = stats.ttest_ind(a, b, equal_var=False)
            assert row.t == pytest.approx(ref.statistic, rel=1e-10)
            assert row.p_welch == pytest.approx(ref.pvalue, rel=1e-8)
        else:
            assert pd.isna(row.t) and pd.isna(row.p_welch) and "at least 2 stocks on each side" in row.note
        rng = pair_rng(8, "ev", "MKT", row.basket_a, row.basket_b)
        windows = [(w.start, w.end) for w in synthetic.config.windows]
        # the pair's stream is consumed once for all windows: replay it and read this window's count
        full_a = np.array([[cars[(t, s, e)] for s, e in windows] for t in only_a])
        full_b = np.array([[cars[(t, s, e)] for s, e in windows] for t in only_b])
        k = windows.index((row.window_start, row.window_end))
        slow = slow_permutation_p(full_a[:, k], full_b[:, k], 400, rng)
        assert row.p_permutation == slow
        if shared:
            assert f"{shared} in both baskets" in row.note
    # (B2, B3) leaves 3 vs 1 stocks: C(4, 1) = 4 splits, so the p-value is coarse and says so
    assert pairs[(pairs.basket_a == "B2") & (pairs.basket_b == "B3")]["note"].str.contains("only 4 ways").all()


def test_basket_ci_and_ranking(synthetic):
    comparison = compare_baskets(synthetic, n_permutations=50)
    ci = comparison.baskets
    day0 = ci[(ci.window_start == 0) & (ci.window_end == 0)].set_index("basket")
    cars = synthetic.cars[(synthetic.cars.window_start == 0) & (synthetic.cars.window_end == 0)].set_index("ticker")["car"]
    for basket, members in {"B1": ["S1", "S2", "S3"], "B2": ["S3", "S4", "S5", "S6"], "B3": ["S7", "S6"]}.items():
        x = cars[members].to_numpy()
        half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
        assert day0.loc[basket, "ci_low"] == pytest.approx(x.mean() - half, rel=1e-10)
        assert day0.loc[basket, "ci_high"] == pytest.approx(x.mean() + half, rel=1e-10)
    expected = day0["caar"].sort_values(ascending=False).index.tolist()
    assert day0.sort_values("rank").index.tolist() == expected
    ranking = [r for r in comparison.ranking() if (r["window_start"], r["window_end"]) == (0, 0)]
    assert ranking[0]["order"] == expected


def test_a_pair_keeps_its_p_value_when_other_baskets_are_left_out(synthetic):
    full = compare_baskets(synthetic, n_permutations=300, seed=5).pairs
    only = compare_baskets(synthetic, baskets=["B1", "B3"], n_permutations=300, seed=5).pairs
    assert set(zip(only.basket_a, only.basket_b)) == {("B1", "B3")}
    unadjusted = [c for c in COMPARISON_COLUMNS if c not in ("family_size", "p_holm", "q_bh", "verdict")]
    pd.testing.assert_frame_equal(
        full.loc[(full.basket_a == "B1") & (full.basket_b == "B3"), unadjusted].reset_index(drop=True),
        only[unadjusted].reset_index(drop=True),
    )
    # the multiplicity correction belongs to the family asked for: one pair is a family of one
    assert (only["family_size"] == 1).all() and (only["p_holm"] == only["p_permutation"]).all()
    assert (full["family_size"] == 3).all()


def test_bad_arguments_are_typed_errors(synthetic):
    with pytest.raises(ConfigError, match="--permutations 0"):
        compare_baskets(synthetic, n_permutations=0)
    with pytest.raises(ConfigError, match="--seed -1"):
        compare_baskets(synthetic, seed=-1)
    with pytest.raises(ConfigError, match="'B9' is not a basket.*B1, B2, B3"):
        compare_baskets(synthetic, baskets=["B1", "B9"])
    with pytest.raises(ConfigError, match="at least two baskets"):
        restrict_baskets(synthetic.config, ["B1"])


# --------------------------------------------------------------------------- the command on real data


@pytest.fixture(scope="module")
def compared(market_parquet, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    code, stdout, stderr = invoke("compare", JPM_CONFIG, "--prices", market_parquet, "--out", out, "--seed", 3)
    assert code == 0, stderr
    return out, stdout


@pytest.mark.shared_data
def test_compare_command_writes_the_contract_and_the_section(compared):
    out, stdout = compared
    table = pd.read_csv(out / "comparisons.csv", keep_default_na=False, na_values=[""])
    assert list(table.columns[:9]) == CONTRACT
    html = (out / "report.html").read_text()
    assert 'id="compare"' in html and "Pairwise differences" in html and "Ranking by CAAR" in html
    # compare's own page puts the comparison first and links to the full study report
    page = (out / "compare.html").read_text()
    assert page.index("which basket moved most?") < page.index('id="compare"') < page.index("Pairwise differences")
    assert 'href="report.html"' in page and "Corrected for the 28 pairwise tests (Holm)" in page
    assert f"Open the report: {(out / 'compare.html').resolve().as_uri()}" in stdout
    assert (table["family_size"] == 28).all() and "28 pairwise tests on this window" in stdout
    assert "critical_minerals - " in stdout and "ranking" in stdout
    # Baskets are compared only under a common benchmark: REMX and ITA have one basket each.
    assert set(table.benchmark) == {"SPY"}
    cfg = load_config(JPM_CONFIG)
    n_baskets = len(cfg.baskets)
    assert len(table) == n_baskets * (n_baskets - 1) // 2 * len(cfg.windows)
    doc = json.loads((out / "results.json").read_text())
    assert doc["comparisons"]["seed"] == 3 and doc["comparisons"]["n_permutations"] == 10_000
    assert len(doc["comparisons"]["pairs"]) == len(table) and "left out of both sides" in doc["comparisons"]["shared_tickers"]
    assert "catalogue" not in doc  # one event: no catalogue, but a drift (with the overlap caveat of [-250,-11])
    assert "in-sample" in doc["drift"]["caveat"]


@pytest.mark.shared_data
def test_compare_numbers_match_an_independent_computation(compared):
    out, _ = compared
    table = pd.read_csv(out / "comparisons.csv", keep_default_na=False, na_values=[""])
    cars = pd.read_csv(out / "cars.csv")
    cars = cars[cars.benchmark == "SPY"].set_index(["ticker", "window_start", "window_end"])["car"]
    members = {b.name: [t for t in b.tickers if (t, 0, 0) in cars.index] for b in load_config(JPM_CONFIG).baskets}
    checked = 0
    for row in table.itertuples(index=False):
        a_set, b_set = set(members[row.basket_a]), set(members[row.basket_b])
        only_a = [t for t in members[row.basket_a] if t not in b_set]
        only_b = [t for t in members[row.basket_b] if t not in a_set]
        a = np.array([cars[(t, row.window_start, row.window_end)] for t in only_a])
        b = np.array([cars[(t, row.window_start, row.window_end)] for t in only_b])
        assert row.diff == pytest.approx(a.mean() - b.mean(), abs=1e-12)
        ref = stats.ttest_ind(a, b, equal_var=False)
        assert row.t == pytest.approx(ref.statistic, rel=1e-9)
        assert row.p_welch == pytest.approx(ref.pvalue, rel=1e-7, abs=1e-15)
        checked += 1
    assert checked == len(table)
    # named_in_coverage shares MP, USAR, LAC, TMQ with critical_minerals: both sides drop them, and the row says so
    shared = table[(table.basket_a == "critical_minerals") & (table.basket_b == "named_in_coverage")]
    assert (shared["shared"] == "MP, USAR, LAC, TMQ").all() and (shared[["n_a", "n_b"]].to_numpy() == [14, 4]).all()

    # Permutation p against an independent slow loop on its own random stream: within Monte-Carlo error.
    row = table[(table.basket_a == "critical_minerals") & (table.basket_b == "defense_aerospace")
                & (table.window_start == 0) & (table.window_end == 0)].iloc[0]
    a = np.array([cars[(t, 0, 0)] for t in members["critical_minerals"]])
    b = np.array([cars[(t, 0, 0)] for t in members["defense_aerospace"]])
    n = 600
    slow = slow_permutation_p(a, b, n, np.random.default_rng(2024))
    margin = 4 * math.sqrt(max(row.p_permutation * (1 - row.p_permutation), 1 / n) / n) + 2 / n
    assert abs(slow - row.p_permutation) < margin


@pytest.mark.shared_data
def test_same_seed_same_p_values_and_baskets_subset(compared, market_parquet, tmp_path):
    out, _ = compared
    full = pd.read_csv(out / "comparisons.csv", keep_default_na=False, na_values=[""])
    code, _, stderr = invoke(
        "compare", JPM_CONFIG, "--prices", market_parquet, "--out", tmp_path, "--seed", 3,
        "--baskets", "energy,critical_minerals", "--quiet",
    )
    assert code == 0, stderr
    sub = pd.read_csv(tmp_path / "comparisons.csv", keep_default_na=False, na_values=[""])
    assert set(zip(sub.basket_a, sub.basket_b)) == {("critical_minerals", "energy")}
    same = full[(full.basket_a == "critical_minerals") & (full.basket_b == "energy")]
    np.testing.assert_array_equal(sub["p_permutation"].to_numpy(), same["p_permutation"].to_numpy())


@pytest.mark.parametrize("args, fragment", [
    (["--baskets", "energy,nope"], "'nope' (--baskets) is not defined"),
    (["--baskets", "energy"], "name at least two baskets"),
    (["--permutations", "0"], "--permutations"),
])
def test_compare_bad_flags_exit_2_with_one_line(args, fragment, tmp_path):
    code, _, stderr = invoke("compare", JPM_CONFIG, "--out", tmp_path, "--offline", *args)
    assert code == 2, stderr
    assert fragment in stderr and "Traceback" not in stderr


def test_compare_needs_two_baskets(tmp_path):
    config = tmp_path / "one.toml"
    config.write_text(
        'name = "one"\n[[events]]\ndate = 2025-10-13\ntiming = "before_open"\n'
        '[[baskets]]\nname = "a"\ntickers = ["MP", "USAR"]\n'
    )
    code, _, stderr = invoke("compare", config, "--out", tmp_path / "out", "--offline")
    assert code == 2 and "nothing to compare" in stderr and len(stderr.strip().splitlines()) == 1


def test_compare_help_names_every_option():
    code, out, _ = invoke("compare", "--help")
    assert code == 0
    for option in ("--baskets", "--prices", "--offline", "--out", "--permutations", "--seed"):
        assert option in out
