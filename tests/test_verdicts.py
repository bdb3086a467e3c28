"""The verdict record (CONTRACT.md): one headline test per basket and window, and every output reads it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evstudy
from evstudy.config import config_from_dict
from evstudy.report.files import write_outputs
from evstudy.report.terminal import summary_text
from evstudy.results import BASKET_COLUMNS, TEST_COLUMNS
from evstudy.study import compute_study
from evstudy.verdicts import CAR_T, INCONCLUSIVE, OPPOSITE, verdict_words

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
    assert verdict_words(math.nan, math.nan, 0.01) == (INCONCLUSIVE, False)
    assert verdict_words(0.001, 3.5, -0.01) == (OPPOSITE, False)  # a positive statistic beside a negative CAAR


def _terminal_cells(text: str, basket: str, bench: str) -> list[str]:
    line = next(l for l in text.splitlines() if l.split()[:2] == [basket, bench])
    parts = line.split()
    return [parts[i + 1].rstrip("*?") for i in range(4, len(parts) - 1, 2)]


def _terminal_p(p: float) -> str:
    return "—" if not math.isfinite(p) else "<.001" if p < 0.001 else f"{p:.3f}".lstrip("0")


@pytest.mark.shared_data
def test_every_output_shows_the_same_p_for_the_same_cell(market_parquet, tmp_path):
    """res.baskets == results.json == tests.csv (headline row) == terminal, for every (basket, window)."""
    results = evstudy.run_study(REPO / "configs" / "jpm-sri-2025.toml", prices=market_parquet)
    write_outputs(results, tmp_path)
    record = results.baskets
    doc = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))["baskets"]
    assert len(doc) == len(record)
    for row, item in zip(record.to_dict("records"), doc):
        assert [item[k] for k in CELL] == [row[k] for k in CELL]
        assert item["headline_test"] == row["headline_test"] and item["verdict"] == row["verdict"]
        assert (item["p_value"] is None) == (not math.isfinite(row["p_value"]))
        if item["p_value"] is not None:
            assert item["p_value"] == row["p_value"]
    csv = pd.read_csv(tmp_path / "tests.csv")
    headline = csv[csv["headline"]].merge(record, on=CELL, suffixes=("_csv", ""))
    assert len(headline) == (record["headline_test"] != "").sum()
    assert (headline["test"] == headline["headline_test"]).all()
    np.testing.assert_allclose(headline["p_value_csv"], headline["p_value"], rtol=1e-15)
    text = summary_text(results)
    for (basket, bench), group in record.groupby(["basket", "benchmark"], sort=False):
        assert _terminal_cells(text, basket, bench) == [_terminal_p(p) for p in group["p_value"]]
