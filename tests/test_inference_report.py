"""The report's "Which test to trust": evidence-driven advice, the shipped evidence, the section and its chart."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import plotly.graph_objects as go
from markupsafe import escape

from evstudy.config import config_from_dict
from evstudy.inference import TEST_IDS
from evstudy.report.html import render_html
from evstudy.report.inference_charts import placebo_figure
from evstudy.verdicts import ALTERNATIVES, NULLS, EvidenceTable, load_evidence, pick_test
from evstudy.study import compute_study

from helpers import closes_from_returns, nyse_dates, price_data

REPO = Path(__file__).resolve().parents[1]


def test_the_package_ships_the_documented_evidence():
    """Every N x window x scenario cell the rule reads is shipped, from 1,000+ samples, and documented."""
    shipped = load_evidence()
    assert shipped is not None and shipped["format"] == 2
    method = shipped["method"]
    assert method["sizes"] == [2, 3, 4, 6, 10, 18, 30, 50]
    assert method["windows"] == [[0, 0], [0, 1], [-1, 1], [0, 5], [-5, 5], [-10, 10]]
    cells = {(c["n"], tuple(c["window"]), c["scenario"]) for c in shipped["cells"]}
    for n in method["sizes"]:
        for window in method["windows"]:
            for scenario in (*NULLS, *ALTERNATIVES):
                assert (n, tuple(window), scenario) in cells
    assert all(c["samples"] >= 1000 for c in shipped["cells"])
    assert set(method["tests"]) <= set(TEST_IDS)
    page = (REPO / "docs" / "inference.md").read_text(encoding="utf-8")
    assert "python benchmarks/size_power.py" in page and shipped["generated"] in page


def test_the_picked_test_holds_its_size_in_every_cell_it_is_picked_for():
    """docs/inference.md's acceptance: the picked test's worst-case size over the three nulls is within 5% ± 1.5%."""
    table = EvidenceTable(load_evidence())
    picked = 0
    for n in table.sizes:
        for window in table.windows:
            pick = pick_test(table, n, window, table.method["tests"])
            if pick.test is not None:
                picked += 1
                worst = max(table.rate(n, window, null, pick.test) for null in NULLS)
                assert 0.035 <= worst <= 0.065, (n, window, pick.test)
    assert picked > 0


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


def test_section_highlights_the_headline_test_with_its_reason(study):
    html = render_html(study)
    section = html[html.index('<section class="card" id="tests">'):]
    section = section[:section.index("</section>")]
    for basket in ("large", "small"):
        record = study.baskets[study.baskets["basket"] == basket]
        for reason in record["verdict_reason"]:
            assert str(escape(reason)) in section
        chosen = set(study.tests.loc[(study.tests["basket"] == basket) & study.tests["headline"], "test"])
        trusted = set(re.findall(r'<tr class="trusted"><td>[^<]*<code>([a-z_]+)</code>', section))
        assert chosen <= trusted
    assert "Small basket (fewer than 10 stocks)" in section
    assert 'href="#tests"' in html  # the baskets section points to it


def test_placebo_chart_marks_the_actual_caar(study):
    fig = go.Figure(placebo_figure(study, "e"))  # a plotly.js dict; the object form reads it back
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
