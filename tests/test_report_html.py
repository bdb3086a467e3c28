"""The HTML report: self-contained, escaped, readable, and rendered by a real browser.

Most tests use a small synthetic market (seeded, on real NYSE sessions) whose
labels are hostile HTML; one reads the real Parquet; one opens the report in
headless Chromium with the network disabled and checks that plotly drew every chart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from evstudy.config import config_from_dict
from evstudy.report.format import fmt_num, fmt_p, fmt_pct, verdict, window_words
from evstudy.report.html import render_html
from evstudy.study import compute_study

from helpers import closes_from_returns, nyse_dates, price_data, read_parquet_closes

EVIL_SCRIPT = "<script>alert(1)</script>"
EVIL_IMG = '"><img src=x onerror=alert(1)>'
CHARTS = ("caar", "car", "day0", "prices")
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
NO_NETWORK_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


class Page(HTMLParser):
    """Every element's tag and attributes, each <script>'s attributes and text, and each <h1>'s text."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.h1: list[str] = []
        self._open: str | None = None
        self._attrs: dict[str, str | None] = {}
        self._buffer: list[str] = []
        self.feed(document)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag in ("script", "h1"):
            self._open, self._attrs, self._buffer = tag, dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._open:
            self._buffer.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open == "script":
            self.scripts.append((self._attrs, "".join(self._buffer)))
            self._open = None
        elif tag == self._open == "h1":
            self.h1.append("".join(self._buffer).strip())
            self._open = None

    def json_specs(self) -> dict[str, dict]:
        return {a["id"]: json.loads(text) for a, text in self.scripts if a.get("type") == "application/json"}


def open_every_block(document: str) -> str:
    """The report with every <details> block opened before its script runs (charts in closed blocks wait)."""
    opener = '<script>document.querySelectorAll("details").forEach(function (d) { d.open = true; });</script>'
    return document.replace('<script>\n(function () {', opener + '\n<script>\n(function () {', 1)


def _strings(value: object):
    """Every string inside a parsed JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# --------------------------------------------------------------------------- a hostile synthetic study


@pytest.fixture(scope="module")
def synthetic_results():
    """Two baskets (one ticker in both), two benchmarks, a one-stock basket, an excluded ticker,
    confounders on a trading day, a weekend and the day after, and HTML in every label."""
    rng = np.random.default_rng(7)
    dates = nyse_dates(360, start="2024-06-03")
    i0 = next(i for i in range(300, 340) if dates[i].weekday() == 0)  # a Monday, so a weekend precedes it
    n = len(dates)
    mkt = rng.normal(0.0004, 0.01, n)
    sec = 0.8 * mkt + rng.normal(0.0, 0.008, n)
    returns = {"MKT": mkt, "SEC": sec}
    for k, name in enumerate(["AAA", "BBB", "CCC", "DDD", "EEE", "GAP"]):
        r = 0.0002 + (0.6 + 0.2 * k) * mkt + rng.normal(0.0, 0.01, n)
        r[i0] += 0.04 if name in ("AAA", "BBB", "CCC") else 0.0
        returns[name] = r
    closes = closes_from_returns(returns, dates)
    closes.loc[closes.index[: i0 - 60], "GAP"] = np.nan  # too few estimation returns: excluded
    day = lambda i: dates[i].date().isoformat()  # noqa: E731
    sunday = (dates[i0] - pd.Timedelta(days=1)).date().isoformat()
    cfg = config_from_dict({
        "name": "hostile",
        "title": f"Test {EVIL_SCRIPT}",
        "description": f"About {EVIL_IMG} & more",
        "benchmark": "MKT",
        "events": [{
            "id": "ev", "label": f"JPM {EVIL_SCRIPT}", "date": day(i0), "timing": "before_open",
            "confounders": [
                {"date": day(i0 - 2), "label": f"China {EVIL_IMG}"},
                {"date": sunday, "label": "Weekend </script><script>alert(1)</script> R&D"},
                {"date": day(i0 + 1), "label": f"Day after {EVIL_SCRIPT}"},
            ],
        }],
        "baskets": [
            {"name": "critical_minerals", "label": f"Minerals {EVIL_SCRIPT}",
             "tickers": ["AAA", "BBB", "CCC", "GAP"], "benchmarks": ["MKT", "SEC"]},
            {"name": "defense", "label": f"Defense {EVIL_IMG}", "tickers": ["DDD", "EEE", "AAA"]},
            {"name": "solo", "tickers": ["EEE"]},
        ],
    }, source="configs/hostile.toml")
    return compute_study(cfg, price_data(closes, location="synthetic <market>"))


@pytest.fixture(scope="module")
def document(synthetic_results) -> str:
    return render_html(synthetic_results)


@pytest.fixture(scope="module")
def page(document) -> Page:
    return Page(document)


def test_plotly_is_embedded_once_and_nothing_is_fetched(document, page):
    bundle = get_plotlyjs()
    assert document.count(bundle) == 1
    rest = document.replace(bundle, "")
    for needle in ('src="http', "src='http", 'href="http', "href='http", "@import", "url(http", "url(//", "mathjax"):
        assert needle not in rest.lower(), needle
    assert not [a for tag, a in page.elements if tag == "link"]
    for tag, attrs in page.elements:
        for key in ("src", "href", "action", "data", "poster"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "ftp:")), (tag, attrs)
    assert not [a for a, _ in page.scripts if "src" in a]


def test_every_chart_is_present_with_data(page):
    ids = {a.get("id") for tag, a in page.elements if tag == "div"}
    specs = page.json_specs()
    for chart in CHARTS:
        assert f"chart-0-{chart}" in ids
        spec = specs[f"chart-0-{chart}-spec"]
        assert spec["data"], chart
        assert spec["config"]["displaylogo"] is False


def test_injected_labels_are_only_ever_text(page, document):
    assert page.h1 == [f"Test {EVIL_SCRIPT}"]  # shown to the reader verbatim, as text
    assert not [a for tag, a in page.elements if any(k.startswith("on") for k in a)]
    assert not [1 for tag, _ in page.elements if tag == "img"]
    executable = [text for a, text in page.scripts if a.get("type") in (None, "", "text/javascript")]
    assert len(executable) == 2  # plotly.js and the page's own few lines
    assert not [text for text in executable if "alert(1)" in text and "plotly.js" not in text]
    assert not [text for text in executable if "alert(1)</script>" in text]
    for attrs, text in page.scripts:
        if attrs.get("type") == "application/json":
            assert "<" not in text and ">" not in text and "&" not in text
    # Plotly renders some tags in text: every string a figure receives is escaped.
    for spec in page.json_specs().values():
        for text in _strings(spec):
            assert "<script" not in text and "<img" not in text and "</script" not in text, text
    assert "Minerals &lt;script&gt;alert(1)&lt;/script&gt;" in document


def test_nan_is_never_shown(document, page):
    rest = document.replace(get_plotlyjs(), "")
    assert not re.search(r"\b(nan|NaN|inf|None)\b", re.sub(r"<script[^>]*>.*?</script>", "", rest, flags=re.S))
    for spec in page.json_specs().values():
        assert not [t for t in _strings(spec) if re.search(r"\bnan\b", t, re.I)]
    assert "needs at least 2 tickers" in document  # the one-stock basket explains its missing t


def test_reads_as_a_report(synthetic_results, document):
    res = synthetic_results
    timeline = res.timelines[0]
    est_start, est_end = timeline.estimation_start.date(), timeline.estimation_end.date()
    expected = [
        timeline.mapping,
        f"market model vs MKT, SEC, estimated over trading days -250 to -11 ({est_start} to {est_end})",
        "synthetic &lt;market&gt;",
        "returns are close-to-close",
        "What could fool you here",
        "significant at",
        "Estimation diagnostics",
        "MacKinlay 1997",
        f"evstudy {res.version}",
        "configs/hostile.toml",
        "not a trading day: first priced on day 0",
    ]
    for text in expected:
        assert text in document, text
    reason = res.exclusions.loc[res.exclusions["ticker"] == "GAP", "reason"].iloc[0]
    assert reason in document
    order = [document.index(h) for h in ("id=\"summary\"", "id=\"charts\"", "id=\"baskets\"", "id=\"stocks\"",
                                           "id=\"diagnostics\"", "id=\"data\"", "id=\"reproduce\"")]
    assert order == sorted(order)


def test_tests_table_appears_when_more_tests_ran(synthetic_results):
    only_t = synthetic_results.tests[synthetic_results.tests["test"] == "cs_t"]
    extra = only_t.assign(test="wilcoxon", statistic=1.5, p_value=0.0004)
    both = dataclasses.replace(synthetic_results, tests=pd.concat([only_t, extra]))
    assert "All tests:" not in render_html(dataclasses.replace(synthetic_results, tests=only_t))
    html = render_html(both)
    assert "All tests:" in html and ">wilcoxon<" in html and "&lt;0.001" in html


def test_several_events_and_a_model_without_beta():
    rng = np.random.default_rng(11)
    dates = nyse_dates(420, start="2024-01-02")
    mkt = rng.normal(0.0, 0.01, len(dates))
    closes = closes_from_returns({"MKT": mkt, **{t: mkt + rng.normal(0, 0.01, len(dates)) for t in ("X", "Y")}}, dates)
    cfg = config_from_dict({
        "benchmark": "MKT", "model": "market_adjusted",
        "events": [{"id": "first", "date": dates[300].date().isoformat()},
                   {"id": "second", "label": "Second <b>event</b>", "date": dates[380].date().isoformat()}],
        "baskets": [{"name": "b", "tickers": ["X", "Y"]}],
    })
    html = render_html(compute_study(cfg, price_data(closes)))
    page = Page(html)
    for i in (0, 1):
        for chart in CHARTS:
            assert f"chart-{i}-{chart}-spec" in page.json_specs()
    assert "Second &lt;b&gt;event&lt;/b&gt;" in html and "<b>event</b>" not in html
    assert "market-adjusted returns vs MKT" in html
    assert "—" in html  # no alpha, no beta under this model
    assert not re.search(r"\bnan\b", re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S), re.I)


@pytest.mark.parametrize(
    ("value", "pct", "num", "p"),
    [
        (0.032112, "+3.21%", "0.03", "0.032"),
        (-0.5, "-50.00%", "-0.50", "-0.500"),
        (0.0004, "+0.04%", "0.00", "<0.001"),
        (float("nan"), "—", "—", "—"),
        (None, "—", "—", "—"),
        (math.inf, "—", "—", "—"),
    ],
)
def test_number_formats(value, pct, num, p):
    assert fmt_pct(value) == pct
    assert fmt_num(value) == num
    if value is None or not math.isfinite(value) or value >= 0:
        assert fmt_p(value) == p


def test_plain_words():
    assert verdict(0.004, 0.1) == ("significant at 1%, positive", "sig")
    assert verdict(0.03, -0.1) == ("significant at 5%, negative", "sig")
    assert verdict(0.07)[1] == "weak"
    assert verdict(0.5) == ("not significant", "ns")
    assert verdict(None) == ("not computed", "na")
    assert window_words(0, 0) == "day 0"
    assert window_words(-1, 1) == "days -1 to +1"
    assert window_words(1, 1) == "day +1"


@pytest.mark.shared_data
def test_real_data_lead(market_parquet):
    cfg = config_from_dict({
        "events": [{"date": "2025-10-13", "timing": "before_open",
                    "confounders": [{"date": "2025-10-10", "label": "Tariff threat"}]}],
        "baskets": [{"name": "minerals", "tickers": ["MP", "USAR", "LAC"], "benchmarks": ["SPY", "REMX"]}],
    })
    closes = read_parquet_closes(market_parquet, cfg.tickers())
    html = render_html(compute_study(cfg, price_data(closes.loc["2024-06-01":"2025-12-31"], location=str(market_parquet))))
    assert "announced Mon 2025-10-13 before the open → day 0 Mon 2025-10-13" in html
    assert "market model vs SPY, REMX, estimated over trading days -250 to -11 (2024-10-11 to 2025-09-26)" in html
    assert "Fri 2025-10-10: Tariff threat" in html


@pytest.mark.browser
def test_charts_render_in_headless_chromium(document, tmp_path):
    if CHROMIUM is None:
        pytest.skip("headless Chromium not found (install it: apt-get install -y chromium)")
    report = tmp_path / "report.html"
    report.write_text(open_every_block(document), encoding="utf-8")
    result = subprocess.run(
        [CHROMIUM, *NO_NETWORK_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
         "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    drawn = Page(dom)
    plots = [a for tag, a in drawn.elements if "js-plotly-plot" in (a.get("class") or "")]
    charts = document.count(' data-chart="')  # the four main charts plus those of the extra sections
    assert charts >= len(CHARTS) and len(plots) == charts, [a.get("id") for a in plots]
    assert sum(1 for tag, a in drawn.elements if tag == "svg" and "main-svg" in (a.get("class") or "")) >= len(CHARTS)
    assert not [a for tag, a in drawn.elements if tag == "img" or "onerror" in a]
