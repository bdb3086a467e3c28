"""The report as a reader meets it: answer first, details collapsed, charts without the defects of issue 10.

Each chart check reads the figure JSON the page carries (the same JSON
plotly.js draws); the page-length check measures the page in headless
Chromium at 1,400 px wide with every block collapsed. The JPM and
government-stakes studies run on the shared market file.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape

import evstudy
from evstudy.config import config_from_dict
from evstudy.report import charts
from evstudy.report.format import fmt_p, plural, record_verdict
from evstudy.report.html import render_html
from evstudy.study import compute_study

from helpers import closes_from_returns, nyse_dates, price_data
from test_report_html import CHROMIUM, NO_NETWORK_FLAGS, Page

REPO = Path(__file__).resolve().parents[1]
SCREEN = (1400, 900)  # px: the window the page length is measured in
MAX_SCREENS = 12


def _specs(document: str) -> dict[str, dict]:
    return Page(document).json_specs()


@pytest.fixture(scope="module")
def jpm(market_parquet):
    return evstudy.run_study(REPO / "configs" / "jpm-sri-2025.toml", prices=market_parquet)


@pytest.fixture(scope="module")
def jpm_page(jpm) -> str:
    return render_html(jpm)


@pytest.fixture(scope="module")
def stakes(market_parquet):
    return evstudy.run_study(REPO / "configs" / "government-stakes-2025.toml", prices=market_parquet)


def _measure(document: str, tmp_path: Path, script: str) -> str:
    """Load the page in headless Chromium at SCREEN size and return what ``script`` (a JS expression) gives."""
    probe = (f'<script>window.addEventListener("load", function () {{ var m = document.createElement("output"); '
             f'm.id = "probe"; m.value = String({script}); document.body.appendChild(m); }});</script></body>')
    page = tmp_path / "report.html"
    page.write_text(document.replace("</body>", probe, 1), encoding="utf-8")
    result = subprocess.run(
        [CHROMIUM, *NO_NETWORK_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={SCREEN[0]},{SCREEN[1]}",
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'<output id="probe">([^<]*)</output>', result.stdout)
    assert found, result.stdout[-2000:]
    return found.group(1)


# --------------------------------------------------------------------------- structure


@pytest.mark.shared_data
@pytest.mark.browser
def test_jpm_report_fits_in_twelve_screens_collapsed(jpm_page, tmp_path):
    if CHROMIUM is None:
        pytest.skip("headless Chromium not found")
    height = int(_measure(jpm_page, tmp_path, "document.body.scrollHeight"))
    assert height / SCREEN[1] <= MAX_SCREENS, f"{height} px = {height / SCREEN[1]:.1f} screens"
    # everything stays reachable: every detail block is on the page, collapsed, and named in the contents bar
    blocks = re.findall(r'<details class="fold" id="([^"]+)">', jpm_page)
    assert {"baskets", "stocks", "diagnostics", "data", "reproduce", "fold-tests", "fold-drift"} <= set(blocks)
    for anchor in ("#baskets", "#tests", "#stocks", "#diagnostics", "#drift", "#reproduce"):
        assert f'href="{anchor}"' in jpm_page
    # inside "Which test to trust", each basket's table of every test opens on its own
    groups = jpm_page.count('<details class="sub">')
    assert groups == len(jpm_page.split('id="tests"')[1].split("</section>")[0].split("All tests: ")) - 1 >= 8


@pytest.mark.shared_data
def test_first_screen_answers_per_basket_from_the_record(jpm, jpm_page):
    summary = jpm_page[jpm_page.index('id="summary"'):jpm_page.index('id="charts"')]
    day0 = jpm.baskets[(jpm.baskets["window_start"] == 0) & (jpm.baskets["window_end"] == 0)]
    rows = re.findall(r"<tr><td><strong>.*?</tr>", summary, re.S)
    assert len(rows) == len(day0)  # one line per basket x benchmark
    assert "What could fool you here" in summary
    for needle in ("Other news in the same days", "Moves before the news", "Changed behaviour before the event",
                   "Few stocks"):
        assert needle in summary, needle
    assert summary.count("reason 1") >= 1 and 'class="reasons"' in summary
    assert len(re.findall(r'<span class="keep">p <span data-p="record\|', summary)) == len(day0)  # "p" stays with its value
    # each line's verdict, test and p are the record's (the report chooses no test, computes no p)
    for row, rec in zip(rows, day0.itertuples(index=False)):
        assert str(escape(f"{rec.headline_label}, p {fmt_p(rec.p_value)}")) in re.sub(r"<[^>]+>", "", row)
        assert str(escape(record_verdict(rec.verdict, rec.caar)[0])) in row
    for reason in set(day0["verdict_reason"]):
        assert str(escape(reason)) in summary


def test_long_tables_scroll_with_sticky_headers_and_a_search_box():
    rng = np.random.default_rng(3)
    dates = nyse_dates(320, start="2024-06-03")
    mkt = rng.normal(0, 0.01, len(dates))
    names = [f"S{i:02d}" for i in range(40)]
    closes = closes_from_returns({"MKT": mkt, **{n: mkt + rng.normal(0, 0.01, len(dates)) for n in names}}, dates)
    cfg = config_from_dict({"benchmark": "MKT", "events": [{"date": dates[300].date().isoformat()}],
                            "baskets": [{"name": "b", "tickers": names}]})
    document = render_html(compute_study(cfg, price_data(closes)))
    assert 'class="table-wrap scroll"' in document and "position: sticky" in document
    assert 'class="table-filter" data-table="stocks-1"' in document


# --------------------------------------------------------------------------- chart defects of issue 10


@pytest.mark.shared_data
def test_day0_chart_labels_every_stock(jpm, jpm_page):
    spec = _specs(jpm_page)["chart-0-day0-spec"]
    axis = spec["layout"]["xaxis"]
    bars = [x for trace in spec["data"] for x in trace["x"]]
    assert len(bars) == jpm.memberships["ticker"].nunique()
    assert axis["tickmode"] == "array" and axis["tickvals"] == axis["categoryarray"] == axis["ticktext"]
    assert sorted(axis["tickvals"]) == sorted(bars)


@pytest.mark.shared_data
def test_price_chart_gives_every_line_of_a_view_its_own_colour_and_a_label(jpm_page):
    spec = _specs(jpm_page)["chart-0-prices-spec"]
    data, layout = spec["data"], spec["layout"]
    views = [[t.get("visible", True) for t in data]]
    views += [button["args"][0]["visible"] for button in layout["updatemenus"][0]["buttons"]]
    labels = [button["args"][1]["annotations"] for button in layout["updatemenus"][0]["buttons"]]
    for k, visible in enumerate(views):
        stocks = [t for t, shown in zip(data, visible) if shown and "(benchmark)" not in t["name"]]
        assert 0 < len(stocks) <= charts.PRICE_LINES_MAX
        colours = [t["line"]["color"] for t in stocks]
        assert len(set(colours)) == len(colours), Counter(colours).most_common(2)
        lines = sum(1 for shown in visible if shown)
        if k and lines <= charts.END_LABELS_MAX:  # a small view also names each line at its end
            texts = {a["text"] for a in labels[k - 1]}
            assert {t["name"] for t in stocks} <= texts


@pytest.mark.shared_data
def test_drift_chart_draws_and_names_each_stock_once(jpm_page):
    spec = _specs(jpm_page)["drift-chart-spec"]
    lines = [t for t in spec["data"] if t.get("mode") == "lines"]
    stocks = [t["name"].split(" vs ")[0] for t in lines]
    assert len(stocks) == len(set(stocks)), Counter(stocks).most_common(2)
    assert not [t for t in spec["data"] if "text" in t.get("mode", "")]  # no labels drawn over the lines
    assert not spec["layout"].get("annotations")


@pytest.mark.shared_data
def test_single_stock_events_get_no_single_bar_chart(stakes):
    document = render_html(stakes)
    specs = _specs(document)
    for index, timeline in enumerate(stakes.timelines):
        n = stakes.memberships.loc[stakes.memberships["event"] == timeline.event_id, "ticker"].nunique()
        assert (f"chart-{index}-day0-spec" in specs) == (n > 1), timeline.event_id
    assert all(spec["layout"].get("barmode") != "overlay" or len(spec["data"]) > 1 or len(spec["data"][0]["x"]) > 1
               for spec in specs.values())


def test_per_stock_car_charts_have_a_y_axis_title(synthetic_results_small):
    page = render_html(synthetic_results_small)
    spec = _specs(page)["chart-0-car-spec"]
    layout = spec["layout"]
    axes = [k for k in layout if k.startswith("yaxis")]
    first_column = [k for k in axes if layout[k]["domain"] and layout[f"x{k[1:]}"]["domain"][0] == 0]
    assert first_column and all(layout[k]["title"]["text"] == "CAR (%)" for k in first_column)
    # the stock names sit inside their own panel, so they cannot run into a neighbour's
    for note in layout["annotations"]:
        assert note["xref"].endswith(" domain") and note["yref"].endswith(" domain") and note["yanchor"] == "top"


def test_car_picker_buttons_carry_only_their_own_stock():
    """Beyond the small multiples the picker restyles fixed traces: page size linear in stocks, not N²."""
    sizes = {}
    for n in (40, 80):
        results = _study(n)
        spec = charts.car_figure(results, results.timelines[0].event_id)
        buttons = spec["layout"]["updatemenus"][0]["buttons"]
        assert len(buttons) == n and len(spec["data"]) == 2  # band and line for the one benchmark
        assert all("visible" not in b["args"][0] for b in buttons)
        sizes[n] = len(json.dumps(spec, default=lambda a: np.asarray(a).tolist()))
    assert sizes[80] < 2.2 * sizes[40]


def test_small_multiples_share_one_y_range_and_wrap_long_titles():
    titles = ["Supply chain: critical minerals and materials", "Frontier tech: AI, semiconductors, quantum",
              "Defense & aerospace", "Energy independence: grid, storage, nuclear", "Banks", "Pharma"]
    layout = charts.subplot_grid(2, 4, titles, horizontal_spacing=0.05, vertical_spacing=0.15)
    charts.tidy_small_multiples(layout, cols=4)
    axes = [k for k in layout if k.startswith("yaxis") and k != "yaxis"]
    assert axes and all(layout[k]["matches"] == "y" for k in axes)
    per_panel = 1150 / 4 / 7.5
    for note in layout["annotations"]:
        assert max(len(line) for line in note["text"].split("<br>")) <= per_panel


def test_counts_agree_with_their_nouns():
    assert plural(1, "stock") == "1 stock" and plural(2, "stock") == "2 stocks"
    assert plural(1, "trading day") == "1 trading day" and plural(1204, "trading day") == "1,204 trading days"
    assert plural(1, "series", "series") == "1 series"
    assert record_verdict("significant at 1%", 0.2) == ("significant at 1%, positive", "sig")
    assert record_verdict("significant at 10%", -0.1) == ("significant at 10%, negative", "weak")
    assert record_verdict("inconclusive: too few stocks / too little evidence", 0.3)[1] == "na"
    assert record_verdict("no significant effect", 0.3) == ("no significant effect", "ns")


def test_one_stock_is_never_called_stocks(synthetic_results_small):
    page = render_html(synthetic_results_small)
    assert not re.search(r"\b1 (stocks|tickers|trading days|items)\b", re.sub(r"<script.*?</script>", "", page,
                                                                                 flags=re.S))


# --------------------------------------------------------------------------- size


def test_a_large_study_stays_small():
    """Tables and charts show movers and distributions past a few hundred stocks; the page stays far under 10 MB."""
    results = _study(600)
    document = render_html(results)
    specs = _specs(document)
    assert len(document) < 7_000_000
    assert "chart-0-day0hist-spec" in specs
    bars = [x for t in specs["chart-0-day0-spec"]["data"] for x in t["x"]]
    assert len(bars) == 2 * charts.MOVER_BARS
    assert len(specs["chart-0-car-spec"]["layout"]["updatemenus"][0]["buttons"]) == charts.PICKER_MAX
    rows = re.findall(r'<tr><td class="ticker">', document)
    assert len(rows) == 400 and "more rows in <code>cars.csv</code>" in document


def test_a_long_catalogue_draws_the_first_events_charts_only(monkeypatch):
    from evstudy.catalogue import attach_catalogue
    from evstudy.report import html

    monkeypatch.setattr(html, "EVENT_CHARTS_MAX", 2)
    rng = np.random.default_rng(4)
    dates = nyse_dates(420, start="2023-06-01")
    mkt = rng.normal(0.0004, 0.01, len(dates))
    names = ["A", "B", "C"]
    closes = closes_from_returns({"MKT": mkt, **{n: mkt + rng.normal(0, 0.01, len(dates)) for n in names}}, dates)
    events = [{"id": f"e{k}", "date": dates[300 + 20 * k].date().isoformat()} for k in range(4)]
    cfg = config_from_dict({"benchmark": "MKT", "events": events, "baskets": [{"name": "b", "tickers": names}],
                            "placebo_dates": 0})
    document = render_html(attach_catalogue(compute_study(cfg, price_data(closes))))
    specs = _specs(document)
    assert {k for k in specs if k.endswith("-caar-spec")} == {"chart-0-caar-spec", "chart-1-caar-spec"}
    assert "the other\n  2 events are in the event catalogue" in document


# --------------------------------------------------------------------------- helpers


def _study(n: int, seed: int = 5):
    rng = np.random.default_rng(seed)
    dates = nyse_dates(320, start="2024-06-03")
    mkt = rng.normal(0.0004, 0.01, len(dates))
    names = [f"T{i:04d}" for i in range(n)]
    noise = rng.normal(0, 0.015, (n, len(dates)))
    closes = closes_from_returns({"MKT": mkt, **{name: 0.8 * mkt + noise[i] for i, name in enumerate(names)}}, dates)
    cfg = config_from_dict({"benchmark": "MKT", "events": [{"date": dates[300].date().isoformat()}],
                            "baskets": [{"name": "all", "tickers": names}]})
    return compute_study(cfg, price_data(closes))


@pytest.fixture(scope="module")
def synthetic_results_small():
    """One stock alone in a basket, five in another: singular and plural wording, small-multiple CAR panels."""
    rng = np.random.default_rng(9)
    dates = nyse_dates(320, start="2024-06-03")
    mkt = rng.normal(0.0004, 0.01, len(dates))
    names = ["AAA", "BBB", "CCC", "DDD", "EEE"]
    closes = closes_from_returns({"MKT": mkt, **{n: mkt + rng.normal(0, 0.01, len(dates)) for n in names}}, dates)
    cfg = config_from_dict({
        "benchmark": "MKT",
        "events": [{"date": dates[300].date().isoformat(),
                    "confounders": [{"date": dates[299].date().isoformat(), "label": "Other news"}]}],
        "baskets": [{"name": "five", "tickers": names}, {"name": "solo", "tickers": ["AAA"]}],
    })
    return compute_study(cfg, price_data(closes))


@pytest.mark.shared_data
def test_scan_movers_tables_keep_their_header_in_view(market_parquet, tmp_path):
    from click.testing import CliRunner

    from evstudy.cli import cli

    out = tmp_path / "scan"
    result = CliRunner().invoke(cli, ["scan", "--event", "2025-10-13:before_open", "--prices", str(market_parquet),
                                      "--out", str(out), "--top", "20"])
    assert result.exit_code == 0, result.output
    document = (out / "scan.html").read_text(encoding="utf-8")
    assert document.count('<div class="table-wrap scroll">') == 2 and "position: sticky" in document


@pytest.mark.shared_data
def test_catalogue_rows_show_the_summary_p(stakes):
    """INTC and LAC day 0: the event catalogue shows the verdict record's test and p, as the summary does."""
    document = render_html(stakes)
    start = document.index('<section class="card" id="catalogue">')
    catalogue = document[start:document.index("<h3>Stacked CAAR</h3>", start)]
    day0 = stakes.baskets[(stakes.baskets["window_start"] == 0) & (stakes.baskets["window_end"] == 0)]
    titles = charts.basket_titles(stakes)
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            for row in re.findall(r"<tr><td><strong>.*?</tr>", catalogue, re.S)]
    cells = [(row[6], row[7]) for row in rows]  # columns: stocks, benchmark, N, return, AR, t, p, test, verdict
    assert len(cells) == len(day0)
    for (p, test), rec in zip(cells, day0.itertuples(index=False)):
        assert p == str(escape(fmt_p(rec.p_value))) and test == str(escape(rec.headline_label)), titles[rec.basket]


def test_sections_import_formats_from_format_not_from_the_page_composer():
    """report/html.py composes the page from the sections; no section imports it back (no import circle)."""
    import ast

    package = REPO / "src" / "evstudy" / "report"
    above = {"html.py", "files.py"}  # the composer and the writer that calls it
    pending = {"compare_section.py"}  # owned elsewhere: still imports html's re-exported formats
    offenders = []
    for path in sorted(package.glob("*.py")):
        if path.name in above | pending:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "evstudy.report.html":
                offenders.append(path.name)
            if isinstance(node, ast.ImportFrom) and node.module == "evstudy.report" and \
                    any(alias.name == "html" for alias in node.names):
                offenders.append(path.name)
    assert offenders == []
    format_source = (package / "format.py").read_text(encoding="utf-8")
    assert "from evstudy.report" not in format_source  # the bottom of the package imports none of it


@pytest.mark.shared_data
def test_each_windows_reason_is_its_own_line_in_the_test_tables(jpm, jpm_page):
    """Six windows' reasons run together read as a wall of text: one list item per distinct reason, naming its windows."""
    section = jpm_page[jpm_page.index('id="tests"'):]
    section = section[:section.index("</section>")]
    lists = re.findall(r'<ul class="reasons-by-window">(.*?)</ul>', section, re.S)
    assert lists, "the test tables list their reasons by window"
    for items in lists:
        for item in re.findall(r"<li>(.*?)</li>", items, re.S):
            assert re.match(r"<strong>days? [-+0-9]", item), item[:80]
            assert item.count("Read the ") + item.count("Inconclusive: ") == 1, item[:200]


@pytest.mark.parametrize("n", [1, 3, 6, 9])
def test_per_stock_car_panels_keep_their_height_and_day_axis_title(n):
    """Axis domains are fractions of the area inside the margins: a lone stock's panel was squashed to ~110 px."""
    results = _study(n)
    spec = charts.car_figure(results, results.timelines[0].event_id)
    layout = spec["layout"]
    inside = layout["height"] - layout["margin"]["t"] - layout["margin"]["b"]
    panels = [k for k in layout if re.fullmatch(r"yaxis\d*", k)]
    assert len(panels) == n
    for key in panels:
        low, high = layout[key]["domain"]
        assert 0 <= low < high <= 1 and (high - low) * inside >= 200, (key, low, high, inside)
    lowest = min(layout[k]["domain"][0] for k in panels)
    for key in panels:
        x_title = layout[f"x{key[1:]}"]["title"]["text"]
        below = any(layout[k]["domain"][1] < layout[key]["domain"][0]
                    and layout[f"x{k[1:]}"]["domain"] == layout[f"x{key[1:]}"]["domain"] for k in panels)
        assert (x_title == "trading day (relative to day 0)") == (not below), (key, lowest)


@pytest.mark.shared_data
def test_the_test_count_in_the_text_is_the_tables(jpm_page):
    """'tested eleven ways' above tables of fourteen rows: the text says the number the tables show."""
    section = jpm_page[jpm_page.index('id="tests"'):]
    section = section[:section.index("</section>")]
    said = int(re.search(r"CAAR is tested (\d+) ways", section).group(1))
    first = section[section.index('<table class="tests">'):]
    first = first[:first.index("</table>")]
    assert said == first.count("<code>")


@pytest.mark.shared_data
def test_a_long_scan_highlight_table_scrolls_under_a_sticky_header(market_parquet):
    """A config's 92 covered tickers made a 92-row table before anything else in the scan report."""
    from evstudy.config import parse_event
    from evstudy.report.scan_html import render_scan_html
    from evstudy.scan import ScanConfig, scan_market

    tickers = ("MP", "USAR", "LAC", "TMQ", "UAMY", "CRML", "NB", "PPTA", "IDR", "TMC", "UUUU", "SGML", "LAR", "ALB",
               "FCX", "ERO", "METC", "ABAT")
    page = render_scan_html(scan_market(ScanConfig(event=parse_event("2025-10-13"), highlight=tickers), market_parquet))
    table = page[page.index("Where the covered tickers rank"):]
    assert re.match(r'Where the covered tickers rank</h3>\s*<div class="table-wrap scroll">', table)


@pytest.mark.shared_data
def test_the_read_this_one_row_is_lit_only_in_the_windows_it_speaks_for(jpm, jpm_page):
    """critical_minerals [-10,+10] is inconclusive: its cell in the highlighted row must not look like the verdict."""
    section = jpm_page[jpm_page.index('id="tests"'):]
    rows = re.findall(r'<tr class="trusted">(.*?)</tr>', section, re.S)
    flagged = jpm.tests[jpm.tests["headline"]]
    assert rows
    silent = sum(row.count('class="num silent"') for row in rows)
    spoken = sum(row.count('<td class="num"') for row in rows)
    assert spoken == len(flagged)  # one lit cell per record cell the test speaks for
    assert silent > 0 and silent + spoken == len(rows) * len(jpm.config.windows)


def test_a_one_stock_basket_gets_its_own_caveat_not_the_few_stocks_one(synthetic_results_small):
    """A lone stock's verdict is its own CAR t: 'approximate p-values are unreliable' for few stocks does not apply."""
    page = render_html(synthetic_results_small)
    caveats = page[page.index("What could fool you here"):]
    caveats = caveats[:caveats.index("</ul>")]
    few = re.search(r"<strong>Few stocks:</strong>(.*?)</li>", caveats, re.S)
    one = re.search(r"<strong>One stock:</strong>(.*?)</li>", caveats, re.S)
    assert one and "own move" in one.group(1)
    assert few and "(1 stock)" not in few.group(1) and "stocks)" in few.group(1)
