"""The many-event report (issue 9): a catalogue of many events stays small and readable.

Past ``MANY_EVENTS`` events the report shows the stacked answer, the
distribution of the events' CAARs and one searchable row per event, and full
per-event sections only for the largest and smallest moves; every p shown
still names its source and equals it. Synthetic catalogues, thresholds
lowered so a few events stand for many.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from evstudy.catalogue import attach_catalogue
from evstudy.compare import attach_comparison
from evstudy.config import Window, config_from_dict
from evstudy.report import catalogue_section
from evstudy.report.format import fmt_p
from evstudy.report.html import render_html
from evstudy.study import compute_study

from helpers import closes_from_returns, nyse_dates, price_data
from test_consistency import Cells, _expected
from test_report_layout import _specs

EVENTS = 8
HEADLINE = Window(0, 0)


@pytest.fixture(scope="module")
def catalogue_results():
    """Eight events, two baskets each (so the comparison and its section exist), a short placebo."""
    rng = np.random.default_rng(11)
    dates = nyse_dates(700, start="2022-01-03")
    mkt = rng.normal(0.0004, 0.01, len(dates))
    names = [f"S{i}" for i in range(8)]
    returns = {n: 0.9 * mkt + rng.normal(0, 0.012, len(dates)) for n in names}
    rows = [520 + 20 * k for k in range(EVENTS)]
    for k, row in enumerate(rows):  # a different day-0 move per event, so the ranking is clear
        for n in names[:4]:
            returns[n][row] += 0.01 * (k - EVENTS / 2)
    closes = closes_from_returns({"MKT": mkt, **returns}, dates)
    cfg = config_from_dict({
        "benchmark": "MKT", "placebo_dates": 40,
        "events": [{"id": f"ev{k}", "date": dates[row].date().isoformat()} for k, row in enumerate(rows)],
        "baskets": [{"name": "first", "tickers": names[:4]}, {"name": "second", "tickers": names[4:]}],
    })
    return attach_comparison(attach_catalogue(compute_study(cfg, price_data(closes))), n_permutations=200)


@pytest.fixture()
def many(monkeypatch):
    """Eight events count as many; two of them are detailed."""
    monkeypatch.setattr(catalogue_section, "MANY_EVENTS", 4)
    monkeypatch.setattr(catalogue_section, "DETAIL_EVENTS", 2)


def test_detail_events_are_the_largest_and_smallest_caars(catalogue_results, many):
    detailed = catalogue_section.detail_events(catalogue_results, HEADLINE)
    record = catalogue_results.baskets
    first = record[(record["window_start"] == 0) & (record["window_end"] == 0) & (record["basket"] == "first")]
    ranked = first.sort_values("caar", ascending=False)["event"].tolist()
    assert detailed == [ranked[0], ranked[-1]] == ["ev7", "ev0"]


def test_detail_view_keeps_only_the_detailed_events(catalogue_results):
    view = catalogue_section.detail_view(catalogue_results, ["ev3", "ev1"])
    assert [t.event_id for t in view.timelines] == ["ev3", "ev1"]
    for name in ("fits", "cars", "baskets", "tests", "placebo", "car_paths", "drift", "memberships"):
        assert set(getattr(view, name)["event"]) == {"ev1", "ev3"}, name
    assert set(view.extras["drift"].series["event"]) == {"ev1", "ev3"}
    assert set(view.extras["comparisons"].pairs["event"]) == {"ev1", "ev3"}
    assert len(view.extras["catalogue"].events) == len(catalogue_results.extras["catalogue"].events)


def test_many_events_get_one_row_each_and_full_sections_for_the_movers_only(catalogue_results, many):
    document = render_html(catalogue_results)
    specs = _specs(document)
    # per-event charts (answer charts, placebo) for the two detailed events only
    assert {k for k in specs if k.endswith("-caar-spec")} == {"chart-0-caar-spec", "chart-1-caar-spec"}
    assert {k for k in specs if k.endswith("-placebo-spec")} == {"chart-0-placebo-spec", "chart-1-placebo-spec"}
    assert "catalogue-distribution-spec" in specs
    heights = [sum(t["y"]) for t in specs["catalogue-distribution-spec"]["data"]]
    assert heights == [2 * EVENTS, 2 * EVENTS]  # every event x basket, on each of the two windows
    # the stacked chart's thin lines: the detailed events only
    stacked = [t for k, t in specs.items() if k.startswith("catalogue-stack-")][0]["data"]
    assert sorted(t["name"].split(" ")[0] for t in stacked if t.get("name", "").startswith("ev")) == ["ev0", "ev7"]
    # one row per event x basket x benchmark in the searchable table, with both windows' record p
    table = document[document.index('id="events-table-rows"'):]
    table = table[:table.index("</table>")]
    assert len(re.findall(r"<tr><td><strong>ev\d</strong>", table)) == 2 * EVENTS
    for row in catalogue_results.baskets.itertuples(index=False):
        if (row.window_start, row.window_end) in ((0, 0), (-1, 1)):
            key = f"record|{row.event}|{row.basket}|{row.benchmark}|{row.window_start}|{row.window_end}"
            assert f'data-p="{key}">{fmt_p(row.p_value)}<' in table, key
    # the answer blocks: the two movers, largest first
    summary = document[document.index('id="summary"'):document.index('id="charts"')]
    assert re.findall(r'<div class="event-block">\s*<h3>(ev\d)</h3>', summary) == ["ev7", "ev0"]
    assert "The largest and smallest moves" in summary


def test_every_p_of_the_many_event_page_names_and_equals_its_source(catalogue_results, many):
    cells = Cells(render_html(catalogue_results))
    assert cells.unsourced == [] and cells.pv_without_source == 0
    wrong = [(source, shown) for source, shown in cells.sourced
             if shown != fmt_p(_expected(catalogue_results, source))]
    assert wrong == []


def test_a_few_events_keep_a_section_each(catalogue_results):
    """At or below MANY_EVENTS the catalogue is laid out as before: a block per event, no events table."""
    document = render_html(catalogue_results)
    assert 'id="events-table-rows"' not in document and "catalogue-distribution" not in document
    specs = _specs(document)
    assert len([k for k in specs if k.endswith("-caar-spec")]) == EVENTS


def test_a_huge_catalogue_keeps_the_largest_and_smallest_rows_and_says_where_the_rest_are(
    catalogue_results, many, monkeypatch
):
    monkeypatch.setattr(catalogue_section, "EVENT_ROWS_MAX", 4)
    monkeypatch.setattr(catalogue_section, "DRIFT_ROWS_MAX", 3)
    document = render_html(catalogue_results)
    table = document[document.index('id="events-table-rows"'):]
    table = table[:table.index("</table>")]
    shown = re.findall(r'data-p="record\|(ev\d)\|(\w+)\|MKT\|0\|0"', table)
    record = catalogue_results.baskets
    day0 = record[(record["window_start"] == 0) & (record["window_end"] == 0)].sort_values("caar")
    ends = [day0.head(2), day0.tail(2)]
    extremes = {key for part in ends for key in zip(part["event"], part["basket"])}
    assert set(shown) == extremes and len(shown) == 4
    assert f"{2 * EVENTS - 4} more rows in <code>results.json</code> (<code>baskets</code>)" in document
    assert f"{2 * EVENTS - 3} more rows in <code>results.json</code> (<code>drift.baskets</code>)" in document
