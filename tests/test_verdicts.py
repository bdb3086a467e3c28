"""The verdict record (CONTRACT.md): one headline test per basket and window, and every output reads it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evstudy
from evstudy.config import ad_hoc_config, config_from_dict
from evstudy.report.files import write_outputs
from evstudy.report.terminal import summary_text
from evstudy.results import BASKET_COLUMNS, TEST_COLUMNS
from evstudy.study import compute_study
from evstudy.verdicts import (
    ALTERNATIVES, CAR_T, INCONCLUSIVE, NULLS, OPPOSITE, EvidenceTable, headline_verdicts, pick_test, shipped_table,
    signed_statistic, verdict_words,
)

from helpers import closes_from_returns, nyse_dates, price_data

REPO = Path(__file__).resolve().parents[1]
CELL = ["event", "basket", "benchmark", "window_start", "window_end"]


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(21)
    dates = nyse_dates(900, start="2022-01-03")
    market = rng.normal(0.0004, 0.01, len(dates))
    names = [f"S{i}" for i in range(12)]
    returns = {"MKT": market, **{n: market + rng.normal(0, 0.02, len(dates)) for n in names}}
    day0 = len(dates) - 20
    for n in names:
        returns[n][day0] += 0.04
    cfg = config_from_dict({
        "benchmark": "MKT", "placebo_dates": 100, "seed": 2,
        "events": [{"id": "e", "date": dates[day0].date().isoformat()}],
        "windows": [[0, 0], [-1, 1]],
        "baskets": [{"name": "large", "tickers": names}, {"name": "solo", "tickers": ["S0"]}],
    })
    return compute_study(cfg, price_data(closes_from_returns(returns, dates)))


def test_the_record_has_the_contract_columns_and_one_headline_row_per_cell(synthetic):
    assert list(synthetic.baskets.columns) == BASKET_COLUMNS
    assert list(synthetic.tests.columns) == TEST_COLUMNS
    flagged = synthetic.tests[synthetic.tests["headline"]]
    assert len(flagged) == len(flagged.drop_duplicates(CELL))
    merged = synthetic.baskets.merge(flagged, on=CELL, suffixes=("", "_row"))
    assert len(merged) == (synthetic.baskets["headline_test"] != "").sum()
    assert (merged["headline_test"] == merged["test"]).all()
    np.testing.assert_array_equal(merged["p_value"], merged["p_value_row"])
    np.testing.assert_array_equal(merged["statistic"], merged["statistic_row"])


def test_a_single_stock_is_judged_by_its_own_car_t(synthetic):
    solo = synthetic.baskets[synthetic.baskets["basket"] == "solo"]
    cars = synthetic.cars[synthetic.cars["ticker"] == "S0"]
    assert (solo["headline_test"] == CAR_T).all()
    joined = solo.merge(cars, on=["event", "benchmark", "window_start", "window_end"], suffixes=("", "_car"))
    np.testing.assert_array_equal(joined["statistic"], joined["t"])
    np.testing.assert_array_equal(joined["p_value"], joined["p_value_car"])
    rows = synthetic.tests[(synthetic.tests["basket"] == "solo") & synthetic.tests["headline"]]
    assert set(rows["test"]) == {CAR_T} and len(rows) == len(solo)


def test_verdict_words_follow_the_p_and_refuse_an_opposite_sign():
    assert verdict_words(0.004, 3.1, 0.02) == ("significant at 1%", True)
    assert verdict_words(0.03, -2.2, -0.02) == ("significant at 5%", True)
    assert verdict_words(0.2, 1.0, 0.01) == ("no significant effect", False)
    assert verdict_words(0.07, 1.9, 0.01) == ("significant at 10%", False)  # weak: the evidence measured 5%
    assert verdict_words(math.nan, math.nan, 0.01) == (INCONCLUSIVE, False)
    assert verdict_words(0.001, 3.5, -0.01) == (OPPOSITE, False)  # a positive statistic beside a negative CAAR


def _terminal_cells(text: str, basket: str, bench: str) -> list[str]:
    line = next(l for l in text.splitlines() if l.split()[:2] == [basket, bench])
    parts = line.split()
    return [parts[i + 1].rstrip("*!") for i in range(4, len(parts) - 1, 2)]


def _terminal_p(p: float) -> str:
    return "inconcl." if not math.isfinite(p) else "<.001" if p < 0.001 else f"{p:.3f}".lstrip("0")


@pytest.mark.shared_data
@pytest.mark.parametrize("config", ["jpm-sri-2025.toml", "government-stakes-2025.toml"])
def test_every_output_shows_the_same_p_for_the_same_cell(market_parquet, tmp_path, config):
    """res.baskets == results.json == tests.csv (headline row) == terminal == catalogue, for every cell."""
    results = evstudy.run_study(REPO / "configs" / config, prices=market_parquet)
    write_outputs(results, tmp_path)
    record = results.baskets
    doc = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert len(doc["baskets"]) == len(record)
    for row, item in zip(record.to_dict("records"), doc["baskets"]):
        assert [item[k] for k in CELL] == [row[k] for k in CELL]
        assert item["headline_test"] == row["headline_test"] and item["verdict"] == row["verdict"]
        assert (item["p_value"] is None) == (not math.isfinite(row["p_value"]))
        if item["p_value"] is not None:
            assert item["p_value"] == row["p_value"]
    csv = pd.read_csv(tmp_path / "tests.csv", keep_default_na=False, na_values=[""])
    headline = csv[csv["headline"]].merge(record, on=CELL, suffixes=("_csv", ""))
    assert len(headline) == (record["headline_test"] != "").sum()
    assert (headline["test"] == headline["headline_test"]).all()
    np.testing.assert_allclose(headline["p_value_csv"], headline["p_value"], rtol=1e-15)
    text = summary_text(results)
    for (event, basket, bench), group in record.groupby(["event", "basket", "benchmark"], sort=False):
        block = text[text.index(f"Event {event}:"):]
        assert _terminal_cells(block, basket, bench) == [_terminal_p(p) for p in group["p_value"]]
    catalogue = results.extras.get("catalogue")
    if catalogue is not None:  # its per-event day-0 rows are the record's day-0 cells
        day0 = record[(record["window_start"] == 0) & (record["window_end"] == 0)]
        merged = catalogue.events.merge(day0, on=["event", "basket", "benchmark"], suffixes=("_cat", ""))
        assert len(merged) == len(day0)
        np.testing.assert_array_equal(merged["p_value_cat"], merged["p_value"])
        assert (merged["verdict_cat"] == merged["verdict"]).all()
        for item in doc["catalogue"]["events"]:
            cell = day0[(day0["event"] == item["event"]) & (day0["basket"] == item["basket"])
                        & (day0["benchmark"] == item["benchmark"])].iloc[0]
            assert item["p_value"] == (cell["p_value"] if math.isfinite(cell["p_value"]) else None)


# --------------------------------------------------------------------------- the rule, on made-up evidence

SIZES = [2, 10, 18]
WINDOWS = [[0, 0], [-1, 1], [-5, 5]]


def _table(rates: dict[str, dict[str, float]], *, at: dict[tuple[int, str], dict[str, float]] | None = None,
           samples: int = 1000) -> EvidenceTable:
    """Evidence in the benchmark's format: ``rates[test][scenario]`` everywhere, ``at[(n, test)]`` overriding."""
    cells = []
    for n in SIZES:
        for window in WINDOWS:
            for scenario in (*NULLS, *ALTERNATIVES):
                values = {t: {**r, **(at or {}).get((n, t), {})}.get(scenario) for t, r in rates.items()}
                cells.append({"n": n, "window": window, "scenario": scenario, "samples": samples, "rbar_median": 0.4,
                              "rates": values, "rates_same_sign": values, "defined": {t: samples for t in rates}})
    return EvidenceTable({"format": 2, "method": {"sizes": SIZES, "windows": WINDOWS, "tests": list(rates)},
                          "cells": cells})


HELD = {"plain": 0.05, "eiv": 0.055, "correlated": 0.045}
STRONG = {"+0.5%": 0.3, "+1%": 0.6, "+2%": 0.9, "+2% σ-scaled": 0.7}
WEAK = {"+0.5%": 0.1, "+1%": 0.2, "+2%": 0.4, "+2% σ-scaled": 0.3}


def test_the_most_powerful_test_that_holds_its_size_under_every_null_is_picked():
    table = _table({
        "kp_patell_z": {"plain": 0.05, "eiv": 0.09, "correlated": 0.05, **STRONG, "+2%": 0.99},  # eiv breaks it
        "std_portfolio_t": {**HELD, **STRONG},
        "corrado_rank": {**HELD, **STRONG, "+1%": 0.5},
        "placebo_bmp": {"plain": 0.02, "eiv": 0.03, "correlated": 0.01, **STRONG, "+2%": 1.0},  # too conservative
    })
    pick = pick_test(table, 10, (0, 0), ["kp_patell_z", "std_portfolio_t", "corrado_rank", "placebo_bmp"])
    assert pick.test == "std_portfolio_t" and pick.n_used == 10 and pick.worst_size == pytest.approx(0.055)
    assert pick.worst_null == "eiv" and pick.power2 == pytest.approx(0.9)
    assert pick_test(table, 10, (0, 0), ["kp_patell_z", "corrado_rank"]).test == "corrado_rank"  # only what ran
    assert pick_test(table, 10, (0, 0), ["kp_patell_z"]).test is None


def test_too_little_power_is_inconclusive_not_not_significant():
    table = _table({"corrado_rank": {**HELD, **WEAK}})
    pick = pick_test(table, 10, (0, 0), ["corrado_rank"])
    assert pick.test is None and pick.best == "corrado_rank" and pick.power2 == pytest.approx(0.4)


def test_between_grid_points_the_size_must_hold_at_both_neighbours_and_power_is_read_below():
    table = _table({"a": {**HELD, **STRONG}, "b": {**HELD, **WEAK, "+2%": 0.6}},
                   at={(18, "a"): {"correlated": 0.08}})
    assert pick_test(table, 10, (0, 0), ["a", "b"]).test == "a"
    between = pick_test(table, 14, (0, 0), ["a", "b"])  # a over-rejects at 18: b, with its power at N = 10
    assert (between.test, between.n_used, between.n_checked) == ("b", 10, 18)
    assert pick_test(table, 40, (0, 0), ["a", "b"]).n_used == 18  # above the grid: the largest N
    assert pick_test(table, 10, (0, 2), ["a"]).window_used == (-1, 1)  # nearest measured length
    assert pick_test(table, 10, (-10, 10), ["a"]).window_used == (-5, 5)


def test_signed_statistic_centres_wilcoxon():
    assert signed_statistic("wilcoxon", np.array([0.0, 27.5, 55.0]), np.array(10)).tolist() == [-27.5, 0.0, 27.5]
    assert signed_statistic("kp_bmp_t", np.array([-1.5]), np.array(10)).tolist() == [-1.5]


def _battery(results):
    """The study's tables as the verdict step receives them (before the verdict columns)."""
    baskets = results.baskets[["event", "basket", "benchmark", "window_start", "window_end", "n", "caar", "se",
                               "cs_t", "cs_p", "note"]]
    tests = results.tests[results.tests["test"] != CAR_T].drop(columns="headline")
    return baskets, tests, results.cars, results.memberships


def test_the_reason_quotes_the_evidence_cell_and_inconclusive_cells_have_no_p(synthetic):
    table = _table({"kp_bmp_t": {**HELD, **STRONG}, "corrado_rank": {**HELD, **WEAK}})
    baskets, tests = headline_verdicts(*_battery(synthetic), table=table)
    large = baskets[baskets["basket"] == "large"].set_index(["window_start", "window_end"])
    day0 = large.loc[(0, 0)]
    assert day0["headline_test"] == "kp_bmp_t" and day0["significant"]
    for quoted in ("1,000 random samples of 10 real US stocks", "day 0", "5.5%", "doubled event-day variance",
                   "90.0%", "a basket of 12 sits between the measured 10 and 18"):
        assert quoted in day0["verdict_reason"], quoted
    assert "the measured window nearest to days -1 to +1" not in large.loc[(-1, 1)]["verdict_reason"]
    weak = _table({"corrado_rank": {**HELD, **WEAK}})
    baskets, tests = headline_verdicts(*_battery(synthetic), table=weak)
    large = baskets[baskets["basket"] == "large"]
    assert (large["verdict"] == INCONCLUSIVE).all() and large["p_value"].isna().all()
    assert (large["headline_test"] == "").all() and not large["significant"].any()
    assert large["verdict_reason"].str.contains("caught a \\+2% move in only 40.0%").all()
    assert not tests.loc[tests["basket"] == "large", "headline"].any()
    assert (baskets.loc[baskets["basket"] == "solo", "headline_test"] == CAR_T).all()  # one stock: its own t


def test_a_weighted_statistic_against_the_caar_cannot_be_significant():
    """Issue 8: ten calm stocks up 1.5% and one volatile stock down 40%: the CAAR is negative, but the
    inverse-variance weighted tests see ten significant rises. The verdict must not star the negative CAAR."""
    rng = np.random.default_rng(8)
    dates = nyse_dates(700, start="2022-01-03")
    market = rng.normal(0.0003, 0.008, len(dates))
    calm = [f"C{i}" for i in range(10)]
    returns = {"MKT": market, **{c: market + rng.normal(0, 0.004, len(dates)) for c in calm},
               "WILD": market + rng.normal(0, 0.12, len(dates))}
    day0 = len(dates) - 15
    for c in calm:
        returns[c][day0] += 0.015
    returns["WILD"][day0] = -0.40
    cfg = config_from_dict({
        "benchmark": "MKT", "placebo_dates": 0, "windows": [[0, 0]],
        "events": [{"id": "e", "date": dates[day0].date().isoformat()}],
        "baskets": [{"name": "mixed", "tickers": [*calm, "WILD"]}],
    })
    closes = closes_from_returns(returns, dates)
    closes["WILD"] *= 1000  # same returns, but its random walk never nears the $0.05 glitch floor
    results = compute_study(cfg, price_data(closes))
    tests = results.tests.set_index("test")
    assert results.exclusions.empty
    assert results.baskets["caar"].iloc[0] < 0
    assert tests.loc["std_portfolio_t", "statistic"] > 0 and tests.loc["std_portfolio_t", "p_value"] < 0.01
    table = _table({"std_portfolio_t": {**HELD, **STRONG}})
    baskets, _ = headline_verdicts(*_battery(results), table=table)
    row = baskets.iloc[0]
    assert row["headline_test"] == "std_portfolio_t" and row["p_value"] < 0.01
    assert row["verdict"] == OPPOSITE and not row["significant"]
    assert "points the other way" in row["verdict_reason"] and "points the other way" in row["note"]


# --------------------------------------------------------------------------- issue 8's cases on real data


@pytest.mark.shared_data
def test_jpm_critical_minerals_five_days_is_judged_by_a_test_that_holds_its_size(market_parquet):
    """Issue 8: [-5,5] was "significant at 1%" from KP-Patell alone, which over-rejects when the event
    doubles the variance; KP-BMP and Corrado gave p ~ 0.2. The verdict now comes from the rule's cell."""
    results = evstudy.run_study(REPO / "configs" / "jpm-sri-2025.toml", prices=market_parquet)
    record = results.baskets.set_index(["basket", "benchmark", "window_start", "window_end"])
    row = record.loc[("critical_minerals", "SPY", -5, 5)]
    table = shipped_table()
    assert not table.qualifies(18, (-5, 5), "kp_patell_z")  # the test that spoke before does not hold its size
    assert row["headline_test"] != "kp_patell_z" and row["verdict"] != "significant at 1%"
    if row["headline_test"]:
        assert table.qualifies(18, (-5, 5), row["headline_test"])
    else:
        assert row["verdict"] == INCONCLUSIVE and math.isnan(row["p_value"]) and not row["significant"]
    assert "18 real US stocks" in row["verdict_reason"] and "days -5 to +5" in row["verdict_reason"]


@pytest.mark.shared_data
def test_mp_and_usar_alone_are_inconclusive_not_significant(market_parquet):
    """Issue 8: `--event 2025-10-13T08:00:00-04:00 --tickers MP,USAR` called [-5,5] "significant at 1%"
    (placebo BMP) although each stock's own [-5,5] p is 0.55-0.58. Two stocks cannot support a verdict."""
    config = ad_hoc_config(event="2025-10-13T08:00:00-04:00", tickers=["MP", "USAR"])
    results = evstudy.run_study(config, prices=market_parquet)
    row = results.baskets.set_index(["window_start", "window_end"]).loc[(-5, 5)]
    own = results.cars[(results.cars["window_start"] == -5) & (results.cars["window_end"] == 5)]
    assert (own["p_value"] > 0.5).all()
    assert row["verdict"] == INCONCLUSIVE and not row["significant"] and math.isnan(row["p_value"])
    assert row["headline_test"] == "" and not results.tests["headline"].any()
    assert "2 real US stocks" in row["verdict_reason"] and "days -5 to +5" in row["verdict_reason"]
    assert "inconcl." in summary_text(results)
