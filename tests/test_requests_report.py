"""The request-file report reads right at every size.

Few firm-events: one table of them all, no histogram; many: largest and
smallest lists that never share a firm-event, and a histogram whose axis one
glitch-sized CAR cannot stretch.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from evstudy.config import Window
from evstudy.firm_events import run_request
from evstudy.report.request_html import (
    ALL_MOVERS, MIN_DISTRIBUTION, render_request_html, robust_axis, split_movers,
)
from evstudy.requests import RequestConfig, read_request

from helpers import closes_from_returns, nyse_dates, price_data

TICKERS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF")


def _market(seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = nyse_dates(420)
    m = rng.normal(0.0004, 0.01, 420)
    returns = {"SPY": m, **{t: 0.9 * m + rng.normal(0, 0.015, 420) for t in TICKERS}}
    return closes_from_returns(returns, days)


def _html(tmp_path, n: int) -> str:
    """The report of ``n`` firm-events (tickers in turn, day 0 from day 300 on)."""
    closes = _market()
    days = closes.index
    rows = [{"event_id": f"ev{i}", "ticker": TICKERS[i % len(TICKERS)], "date": f"{days[300 + i // len(TICKERS)]:%Y-%m-%d}"}
            for i in range(n)]
    path = tmp_path / "request.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    config = RequestConfig(events_file=str(path), windows=(Window(0, 0), Window(-1, 1)))
    results = run_request(config, read_request(path, config), price_data(closes))
    assert len(results.firm_events) == n
    return render_request_html(results)


def _listed(html: str, table_id: str) -> list[str]:
    match = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert match, f"no table {table_id}"
    return re.findall(r"<tr><td>(ev[0-9]+)</td>", match.group(1))


def _movers_section(html: str) -> list[str]:
    """Every firm-event row under Movers, whatever the layout."""
    section = html[html.index('<section class="card" id="movers">'):]
    return re.findall(r"<tr><td>(ev[0-9]+)</td>", section[:section.index("</section>")])


def test_no_firm_event_is_listed_twice_among_the_movers(tmp_path):
    for n in (4, ALL_MOVERS - 10, ALL_MOVERS + 6):
        listed = _movers_section(_html(tmp_path, n))
        assert len(listed) == len(set(listed)) == min(n, 2 * (ALL_MOVERS // 2)), n


def test_few_firm_events_get_one_table_of_all_and_no_histogram(tmp_path):
    html = _html(tmp_path, 4)
    assert sorted(_listed(html, "movers-all")) == [f"ev{i}" for i in range(4)]
    assert 'id="movers-top"' not in html and 'id="movers-bottom"' not in html
    assert 'id="hist-spec"' not in html and "too few to show a distribution" in html


def test_histogram_starts_at_the_threshold(tmp_path):
    assert 'id="hist-spec"' not in _html(tmp_path, MIN_DISTRIBUTION - 1)
    assert 'id="hist-spec"' in _html(tmp_path, MIN_DISTRIBUTION)


def test_largest_and_smallest_lists_never_share_a_firm_event(tmp_path):
    html = _html(tmp_path, ALL_MOVERS + 6)
    top, bottom = _listed(html, "movers-top"), _listed(html, "movers-bottom")
    assert top and bottom and not set(top) & set(bottom)
    assert 'id="movers-all"' not in html


def test_split_movers_caps_each_list_at_half():
    ordered = pd.DataFrame({"car": np.linspace(1, -1, 7)})
    for cap in (1, 3, 25):
        top, bottom = split_movers(ordered, cap)
        assert len(top) == len(bottom) == min(cap, 3)
        assert not set(top.index) & set(bottom.index)
        assert top["car"].is_monotonic_decreasing and bottom["car"].is_monotonic_increasing


def test_one_glitch_sized_car_does_not_stretch_the_histogram_axis():
    cars = np.random.default_rng(1).normal(0, 0.02, 60)
    edges, below, above = robust_axis(np.append(cars, 5.0))  # an unadjusted split: +500%
    assert edges[-1] < 0.2 and (below, above) == (0, 1)
    assert 10 <= len(edges) - 1 <= 60
    edges, below, above = robust_axis(cars)
    assert (below, above) == (0, 0) and edges[0] == cars.min() and edges[-1] == cars.max()


def test_the_report_keeps_its_compiled_template(tmp_path, monkeypatch):
    """The second report loads the template compiled by the first (one kept file: its cache key is stable)."""
    import os
    from pathlib import Path

    import jinja2

    from evstudy.report import sections

    sections._report_environment.cache_clear()  # built afresh under this test's EVSTUDY_CACHE
    compiled = []
    original = jinja2.Environment._compile
    monkeypatch.setattr(jinja2.Environment, "_compile", lambda self, *a: compiled.append(a[1]) or original(self, *a))
    assert _html(tmp_path, 40) and _html(tmp_path, 40)
    assert len(compiled) == 1
    assert len(list((Path(os.environ["EVSTUDY_CACHE"]) / "report-templates").iterdir())) == 1
