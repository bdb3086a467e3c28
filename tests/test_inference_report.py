"""The report's "Which test to trust": evidence-driven advice, the shipped evidence, the section and its chart."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape

import evstudy
from evstudy.config import config_from_dict
from evstudy.inference import TEST_IDS
from evstudy.report.html import render_html
from evstudy.report.inference_charts import placebo_figure
from evstudy.report.trust import advise, load_evidence
from evstudy.study import compute_study

from helpers import closes_from_returns, nyse_dates, price_data

REPO = Path(__file__).resolve().parents[1]


def _evidence(null: dict[str, float], power: dict[str, float], samples: int = 1000) -> dict:
    """A size/power table in the benchmark's format: N = 10 and 50, shared and separate days, day 0."""
    cells = []
    for design in ("shared", "separate"):
        for n in (10, 50):
            for effect, rates in ((0.0, null), (0.01, power), (0.02, {t: min(1.0, 2 * r) for t, r in power.items()})):
                cells.append({"design": design, "n": n, "window": [0, 0], "effect": effect, "samples": samples,
                              "rates": {t: rates.get(t, 0.05) for t in TEST_IDS}})
    return {"method": {"alpha": 0.05, "effects": [0.0, 0.01, 0.02]}, "cells": cells}


BASE_NULL = {t: 0.05 for t in TEST_IDS} | {"cs_t": 0.17, "bmp_t": 0.29, "patell_z": 0.27}
BASE_POWER = {t: 0.30 for t in TEST_IDS} | {"kp_bmp_t": 0.60, "patell_z": 0.99}


def test_advice_follows_the_numbers_not_the_names():
    evidence = _evidence(BASE_NULL, BASE_POWER)
    advice = advise(evidence, 18)
    assert advice.test == "kp_bmp_t" and not advice.small_n  # patell_z has more power but over-rejects
    assert "5.0%" in advice.reason and "60.0%" in advice.reason and "17.0%" in advice.reason  # cs_t contrast
    swapped = _evidence(BASE_NULL | {"kp_bmp_t": 0.12}, BASE_POWER | {"portfolio_t": 0.55})
    assert advise(swapped, 18).test == "portfolio_t"
    assert advise(swapped, 18, available=set(TEST_IDS) - {"portfolio_t"}).test != "portfolio_t"


def test_advice_below_ten_leans_on_the_placebo():
    evidence = _evidence(BASE_NULL, BASE_POWER | {"placebo_bmp": 0.4, "placebo_caar": 0.2})
    advice = advise(evidence, 6)
    assert advice.small_n and advice.test == "placebo_bmp"
    assert advice.reason.startswith("With only 6 tickers") and "unreliable" in advice.reason
    off = advise(evidence, 6, available=set(TEST_IDS) - {"placebo_bmp", "placebo_caar"})
    assert off.small_n and off.test not in ("placebo_bmp", "placebo_caar")
    assert "placebo tests, which do not need them, were not computed" in off.reason


def test_advice_when_nothing_holds_or_nothing_is_known():
    bad = _evidence({t: 0.2 for t in TEST_IDS} | {"portfolio_t": 0.08}, BASE_POWER)
    advice = advise(bad, 30)
    assert advice.test == "portfolio_t" and "No test kept its 5% promise" in advice.reason
    assert advise(None, 30).test is None and "no size/power measurements" in advise(None, 30).reason


def test_the_package_ships_the_documented_evidence():
    shipped = load_evidence()
    assert shipped is not None
    docs = json.loads((REPO / "docs" / "inference.json").read_text(encoding="utf-8"))
    assert shipped == docs  # the benchmark writes both; they must not drift apart
    cells = {(c["design"], c["n"], tuple(c["window"]), c["effect"]) for c in shipped["cells"]}
    for design in ("shared", "separate"):
        for n in (10, 50):
            for effect in (0.0, 0.01, 0.02):
                assert (design, n, (0, 0), effect) in cells
    assert all(set(c["rates"]) == set(TEST_IDS) for c in shipped["cells"])
    assert shipped["method"]["samples_per_cell"] >= 1000
    assert "python benchmarks/size_power.py" in (REPO / "docs" / "inference.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def study():
    rng = np.random.default_rng(3)
    dates = nyse_dates(1100, start="2021-01-04")
    market = rng.normal(0.0004, 0.01, len(dates))
    names = [f"S{i}" for i in range(12)]
    returns = {"MKT": market, **{n: 0.0002 + market + rng.normal(0, 0.02, len(dates)) for n in names}}
    day0 = len(dates) - 20
    for n in names:
        returns[n][day0] += 0.05
    cfg = config_from_dict({
        "benchmark": "MKT", "placebo_dates": 120, "seed": 5,
        "events": [{"id": "e", "date": dates[day0].date().isoformat()}],
        "baskets": [{"name": "large", "tickers": names}, {"name": "small", "tickers": names[:3]}],
    })
    return compute_study(cfg, price_data(closes_from_returns(returns, dates)))


def test_section_highlights_the_advised_test_with_its_reason(study):
    html = render_html(study)
    section = html[html.index('<section class="card" id="tests">'):]
    section = section[:section.index("</section>")]
    evidence = load_evidence()
    for basket, n in (("large", 12), ("small", 3)):
        available = set(study.tests.loc[(study.tests["basket"] == basket) & study.tests["statistic"].notna(), "test"])
        advice = advise(evidence, n, available=available)
        assert str(escape(advice.reason)) in section
        assert '<tr class="trusted"><td>' in section
        trusted = re.findall(r'<tr class="trusted"><td>[^<]*<code>([a-z_]+)</code>', section)
        assert advice.test in trusted
    assert "Small basket (fewer than 10 stocks)" in section
    assert section.count('<tr class="trusted">') == 2
    assert 'href="#tests"' in html  # the baskets section points to it


def test_placebo_chart_marks_the_actual_caar(study):
    fig = placebo_figure(study, "e")
    actual = [t for t in fig.data if t.name == "actual CAAR (event)"]
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(actual) == len(bars) == 2 * len(study.config.windows)  # two baskets, one panel per window
    caar = study.tests.query("basket == 'large' and test == 'placebo_caar'")["statistic"].to_numpy() * 100
    np.testing.assert_allclose([t.x[0] for t in actual[: len(caar)]], caar)
    assert sum(bars[0].y) == study.placebo.query("basket == 'large' and window_start == 0 and window_end == 0")[
        "caar"].notna().sum()
    assert [b["label"] for b in fig.layout.updatemenus[0].buttons] == ["large vs MKT", "small vs MKT"]
    menu = copy.deepcopy(fig.layout.updatemenus[0].buttons[1].args[0]["visible"])
    assert sum(menu) == len(actual) // 2 * 2 and not any(menu[: len(menu) // 2])
