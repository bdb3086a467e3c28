"""One source per number: every p the report, terminal and files show equals the one table it comes from.

Each p on the page carries ``data-p`` naming its table and row (see
:func:`evstudy.report.format.p_key`); this test parses the rendered report of
the JPM and government-stakes studies, checks that every p column and every
test cell carries that source, and that the text shown equals the source
value formatted by ``fmt_p``. The headline p of each (event, basket,
benchmark, window) is the verdict record's (``res.baskets.p_value``), which
must also be the p of the ``tests`` row flagged ``headline``, the p the
terminal prints, ``results.json["baskets"]`` and the headline rows of
``tests.csv``.
"""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

import evstudy
from evstudy.report.format import fmt_p
from evstudy.report.html import render_html
from evstudy.report.terminal import summary_text

REPO = Path(__file__).resolve().parents[1]
P_HEADER = re.compile(r"^(p|its p|p \(.+\)|q \(BH\))$")
CONFIGS = ["jpm-sri-2025.toml", "government-stakes-2025.toml"]


class Cells(HTMLParser):
    """Every element with ``data-p`` (its source and text), and every table cell under a p header that lacks one."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.sourced: list[tuple[str, str]] = []
        self.unsourced: list[tuple[str, str]] = []
        self.pv_without_source = 0
        self._capture: list[list] = []  # [source, tag, depth, text parts]
        self._depth = 0
        self._headers: list[list[str]] = []  # per open table: its header texts, by column
        self._in_head = False
        self._th: list[str] | None = None
        self._th_span = 1
        self._row: list[tuple[int, dict]] = []  # body cells of the row: (column, attrs)
        self._column = 0
        self._cell_text: list[str] | None = None
        self._cell_attrs: dict = {}
        self._cell_column = 0
        self._pv_open = 0
        self._pv_sourced = False
        self.feed(document)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._depth += 1
        if "data-p" in attrs:
            self._capture.append([attrs["data-p"], tag, self._depth, []])
            if self._pv_open:
                self._pv_sourced = True
        if tag == "span" and "pv" in (attrs.get("class") or "").split():
            self._pv_open, self._pv_sourced = self._depth, "data-p" in attrs
        if tag == "table":
            self._headers.append([])
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._column = 0
        elif tag in ("th", "td") and self._headers:
            span = int(attrs.get("colspan") or 1)
            if self._in_head and tag == "th":
                self._th, self._th_span = [], span
            elif tag == "td":
                self._cell_text, self._cell_attrs, self._cell_column = [], attrs, self._column
            self._column += span

    def handle_data(self, data):
        for capture in self._capture:
            capture[3].append(data)
        if self._th is not None:
            self._th.append(data)
        if self._cell_text is not None:
            self._cell_text.append(data)

    def handle_endtag(self, tag):
        if self._capture and self._capture[-1][1] == tag and self._capture[-1][2] == self._depth:
            source, _, _, text = self._capture.pop()
            self.sourced.append((source, "".join(text).strip()))
        if self._pv_open == self._depth and tag == "span":
            self.pv_without_source += not self._pv_sourced
            self._pv_open = 0
        if tag == "thead":
            self._in_head = False
        elif tag == "th" and self._th is not None:
            self._headers[-1].extend(["".join(self._th).strip()] * self._th_span)
            self._th = None
        elif tag == "td" and self._cell_text is not None:
            headers = self._headers[-1] if self._headers else []
            header = headers[self._cell_column] if self._cell_column < len(headers) else ""
            if P_HEADER.match(header) and "data-p" not in self._cell_attrs:
                self.unsourced.append((header, "".join(self._cell_text).strip()))
            self._cell_text = None
        elif tag == "table" and self._headers:
            self._headers.pop()
        self._depth -= 1


def _expected(res, source: str) -> float | None:
    """The value of the p named by ``source`` in the results' tables."""
    kind, *key = source.split("|")

    def pick(frame: pd.DataFrame, columns: list[str], column: str) -> float:
        mask = pd.Series(True, index=frame.index)
        for name, value in zip(columns, key):
            mask &= frame[name].astype(str) == value
        hits = frame.loc[mask, column]
        assert len(hits) == 1, (source, len(hits))
        return hits.iloc[0]

    cell = ["event", "basket", "benchmark", "window_start", "window_end"]
    if kind == "record":
        return pick(res.baskets, cell, "p_value")
    if kind == "cs":
        return pick(res.baskets, cell, "cs_p")
    if kind == "tests":
        return pick(res.tests, [*cell, "test"], "p_value")
    if kind == "cars":
        return pick(res.cars, ["event", "ticker", "benchmark", "window_start", "window_end"], "p_value")
    if kind == "fit_comparison":
        return pick(res.fit_comparison, ["event", "ticker", "benchmark", "fit", "window_start", "window_end"], "p_value")
    if kind == "drift":
        return pick(res.extras["drift"].series, ["event", "ticker", "benchmark"], "p_value")
    if kind == "drift_baskets":
        return pick(res.extras["drift"].baskets, ["event", "basket", "benchmark"], "p_value")
    if kind == "stack":
        return pick(res.extras["catalogue"].tests, ["stack", "benchmark", "window_start", "window_end", "test"], "p_value")
    if kind == "comparisons":
        column = key.pop()
        return pick(res.extras["comparisons"].pairs, ["event", "basket_a", "basket_b", "benchmark", "window_start", "window_end"], column)
    raise AssertionError(f"a p on the page names an unknown source: {source}")


@pytest.fixture(scope="module", params=CONFIGS)
def study(request, market_parquet):
    res = evstudy.run_study(REPO / "configs" / request.param, prices=market_parquet)
    return res, Cells(render_html(res))


@pytest.mark.shared_data
def test_every_p_on_the_page_names_its_source(study):
    res, cells = study
    assert cells.unsourced == [], "p cells without a data-p source"
    assert cells.pv_without_source == 0, "test-table p without a data-p source"
    kinds = {source.split("|")[0] for source, _ in cells.sourced}
    assert {"record", "cs", "tests", "cars"} <= kinds, kinds


@pytest.mark.shared_data
def test_every_p_on_the_page_equals_its_source(study):
    res, cells = study
    wrong = [(source, shown, fmt_p(_expected(res, source))) for source, shown in cells.sourced
             if shown != fmt_p(_expected(res, source))]
    assert wrong == []


@pytest.mark.shared_data
def test_the_headline_p_on_the_page_is_the_records_everywhere_it_appears(study):
    """Each record cell shown in the answer, the basket table and the catalogue shows the record's p; and the
    page shows a headline p for every cell of the record that has one."""
    res, cells = study
    shown: dict[str, set[str]] = {}
    for source, text in cells.sourced:
        if source.startswith("record|"):
            shown.setdefault(source, set()).add(text)
    assert all(len(texts) == 1 for texts in shown.values()), {k: v for k, v in shown.items() if len(v) > 1}
    record = res.baskets[res.baskets["headline_test"] != ""]
    keys = {"|".join(map(str, ("record", r.event, r.basket, r.benchmark, r.window_start, r.window_end)))
            for r in record.itertuples(index=False)}
    assert keys <= set(shown), sorted(keys - set(shown))[:5]


@pytest.mark.shared_data
def test_the_record_the_tests_table_the_terminal_and_the_files_agree(study, tmp_path):
    res, _ = study
    cell = ["event", "basket", "benchmark", "window_start", "window_end"]
    record = res.baskets[res.baskets["headline_test"] != ""].set_index(cell)
    flagged = res.tests[res.tests["headline"]].set_index(cell)
    assert len(flagged) == len(record)
    joined = record.join(flagged[["test", "p_value"]].rename(columns={"p_value": "p_value_tests"}))
    assert (joined["headline_test"] == joined["test"]).all()
    assert (joined["p_value"] == joined["p_value_tests"]).all()

    res.write(tmp_path)
    saved = pd.DataFrame(json.loads((tmp_path / "results.json").read_text())["baskets"]).set_index(cell)
    for key, row in record.iterrows():
        assert saved.loc[key, "headline_test"] == row["headline_test"]
        assert math.isclose(saved.loc[key, "p_value"], row["p_value"], rel_tol=1e-12)
    csv = pd.read_csv(tmp_path / "tests.csv")
    csv = csv[csv["headline"]].set_index(cell)
    assert len(csv) == len(record)
    for key, row in record.iterrows():
        assert csv.loc[key, "test"] == row["headline_test"]
        assert math.isclose(csv.loc[key, "p_value"], row["p_value"], rel_tol=1e-9)

    text = summary_text(res)
    windows = [w.label for w in res.config.windows]
    for event, rows in res.baskets.groupby("event", sort=False):
        block = text.split(f"Event {event}:", 1)[1]
        for (basket, bench), group in rows.groupby(["basket", "benchmark"], sort=False):
            line = next(line for line in block.splitlines() if re.match(rf"{re.escape(basket)}\s+{bench}\s", line))
            cells = re.split(r"\s{2,}", line.strip())[4:]
            assert len(cells) == len(windows), line
            for shown, r in zip(cells, group.itertuples(index=False)):
                if not r.headline_test:
                    assert shown.endswith("inconcl."), (line, r)
                    continue
                p = "<.001" if r.p_value < 0.001 else f"{r.p_value:.3f}".lstrip("0")
                assert shown.split()[1].rstrip("*!") == p, (line, windows, r.window_start, r.window_end)
