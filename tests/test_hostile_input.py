"""Tickers are data, never paths or markup; labels are text, never script.

Path traversal: odd tickers go through the whole Yahoo write path (yfinance
mocked) and the CLI, and a snapshot of the surrounding folders proves nothing
is written outside the cache folder and --out. Injection: a study config whose
every free-text label carries script and event-handler payloads is run through
the CLI; the report is parsed (no injected <script>, no on* attribute, the
labels intact as text and data) and opened in headless Chromium, where the
payloads would mark the page if they ran, which a control page proves they do.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yfinance
from click.testing import CliRunner

import evstudy.prices.yahoo as yahoo_module
from evstudy.cli import cli
from evstudy.errors import ConfigError
from evstudy.prices import YahooSource, cache_file_name
from evstudy.report.writing import MANIFEST
from market_fakes import EVENT, FlakyYahoo, market, write_wide_csv

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SAFE_NAME = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-%~.")


def snapshot(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def run_cli(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], prog_name="evstudy")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def yahoo(monkeypatch) -> FlakyYahoo:
    """A yfinance that knows the synthetic market plus every odd symbol below."""
    closes = market()
    twins = {"^GSPC": "SPY", "BRK-B": "BBB", "BRK.B": "CCC"}
    for ticker in ODD_ACCEPTED:
        closes[ticker.upper()] = closes[twins.get(ticker, "AAA")]
    fake = FlakyYahoo(closes)
    monkeypatch.setattr(yfinance, "download", fake)
    monkeypatch.setattr(yahoo_module, "_pause", lambda seconds: None)
    return fake


# --------------------------------------------------------------------------- path traversal

# Accepted by the library's YahooSource (it is not the CLI): they must still land inside the cache.
ODD_ACCEPTED = ["../X", "/", "..", "A/../../B", "..\\..\\C", "^GSPC", "BRK-B", "BRK.B", "CON", "É" * 32, "株式",
                "%2E%2E%2F", "X~Y"]
# Rejected before anything is written: NUL and other control characters, blanks, longer than 32 characters.
ODD_REJECTED = ["A\x00B", "\x00", "../\x00/x", "A B", "\t", "", "X" * 33, "É" * 33]
JAN = (dt.date(2024, 1, 2), dt.date(2024, 1, 31))


def test_odd_tickers_are_written_inside_the_cache_and_read_back(yahoo, tmp_path):
    cache = tmp_path / "sandbox" / "cache"
    (tmp_path / "sandbox" / "outside").mkdir(parents=True)
    before = snapshot(tmp_path)
    data = YahooSource(cache_dir=cache).load(ODD_ACCEPTED, *JAN)
    assert list(data.closes.columns) == [t.upper() for t in ODD_ACCEPTED] and not data.missing
    new = snapshot(tmp_path) - before
    parquet = {p for p in new if p.suffix == ".parquet"}
    assert parquet == {Path("sandbox/cache/yahoo") / cache_file_name(t.upper()) for t in ODD_ACCEPTED}
    for path in new:
        assert path.parts[:3] == ("sandbox", "cache", "yahoo") or path in (Path("sandbox/cache"),
                                                                             Path("sandbox/cache/yahoo")), path
        assert set(path.name) <= SAFE_NAME and (tmp_path / path).resolve().is_relative_to(cache.resolve())
    assert not list((cache / "yahoo").glob("*.tmp"))
    calls = len(yahoo.calls)  # one batch, after a one-ticker probe when the batch is large (prices/yahoo.py)
    again = YahooSource(cache_dir=cache, offline=True).load(ODD_ACCEPTED, *JAN)  # each reads back its own file
    assert again.closes.equals(data.closes)
    assert len(yahoo.calls) == calls <= 2


@pytest.mark.parametrize("ticker", ODD_REJECTED, ids=repr)
def test_unusable_tickers_are_rejected_before_anything_is_written(yahoo, tmp_path, ticker):
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError) as info:
        YahooSource(cache_dir=tmp_path / "cache").load(["AAA", ticker], *JAN)
    assert "ticker" in str(info.value) and repr(ticker)[:12] in str(info.value)
    assert snapshot(tmp_path) == before and yahoo.calls == []


def test_cli_writes_only_into_the_cache_and_out(yahoo, tmp_path, monkeypatch):
    """`fetch` and `run` with ^GSPC, BRK-B and BRK.B: files appear in the cache and --out, nowhere else."""
    work, cache, out = tmp_path / "cwd", tmp_path / "cache", tmp_path / "out"
    work.mkdir()
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    code, _, err = run_cli("fetch", "^GSPC,BRK-B,BRK.B", "--start", "2023-01-03", "--end", "2024-09-04",
                           "--cache-dir", cache)
    assert code == 0, err
    code, _, err = run_cli("run", "--event", EVENT, "--tickers", "BRK-B,BRK.B", "--benchmark", "^GSPC",
                           "--cache-dir", cache, "--out", out, "--quiet")
    assert code == 0, err
    new = snapshot(tmp_path) - before
    assert {p.parts[0] for p in new} == {"cache", "out"}
    assert {p.name for p in new if p.parent == Path("cache/yahoo") and p.suffix == ".parquet"} == {
        "%5EGSPC.parquet", "BRK-B.parquet", "BRK%2EB.parquet"}
    assert {p.name for p in new if p.parent == Path("out")} == {
        p.name for p in out.iterdir()} and all(not p.name.startswith(".") for p in out.iterdir() if p.name != MANIFEST)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left beside --out
    code, _, err = run_cli("fetch", "../X,AAA", "--start", "2024-01-02", "--end", "2024-01-31", "--cache-dir", cache)
    assert code == 2 and "'../X' (TICKERS) is not a valid symbol" in err
    assert snapshot(tmp_path) - before == new


# --------------------------------------------------------------------------- injection

MARK = "document.documentElement.setAttribute('data-pwned', '{}')"
PAYLOADS = [
    f"<script>{MARK.format('script')}</script>",
    f"\"><img src=x onerror=\"{MARK.format('img')}\">",
    f"'><svg onload=\"{MARK.format('svg')}\">",
    f"</script><script>{MARK.format('json')}</script>",
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
]
EVIL = " ".join(PAYLOADS)


def evil_config(folder: Path) -> Path:
    """A config whose every free-text field carries every payload (TOML strings written as JSON strings)."""
    s = json.dumps
    text = f"""
name = "evil"
title = {s("Title " + EVIL)}
description = {s("Description " + EVIL)}

[[events]]
id = "ev"
label = {s("Event " + EVIL)}
date = {EVENT}

[[events.confounders]]
date = 2024-03-12
label = {s("Confounder " + EVIL)}

[[baskets]]
name = "b1"
label = {s("Basket one " + EVIL)}
tickers = ["AAA", "BBB", "CCC"]

[[baskets]]
name = "b2"
label = {s("Basket two " + EVIL)}
tickers = ["AAA", "NEG"]
"""
    path = folder / "evil.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Page(HTMLParser):
    """Every element with its attributes, and each <script>'s attributes and text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._script: dict[str, str | None] | None = None
        self._buffer: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag == "script":
            self._script, self._buffer = attributes, []

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._buffer)))
            self._script = None

    def handle_data(self, data):
        (self._buffer if self._script is not None else self.text).append(data)


@pytest.fixture(scope="module")
def evil_report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("evil")
    write_wide_csv(market(), folder / "wide.csv")
    out = folder / "out"
    code, _, err = run_cli("run", evil_config(folder), "--prices", folder / "wide.csv", "--out", out, "--quiet")
    assert code == 0, err
    return out / "report.html"


def test_report_has_no_injected_script_or_handler(evil_report):
    html = evil_report.read_text(encoding="utf-8")
    page = Page(html)
    handlers = [(tag, name) for tag, attrs in page.elements for name in attrs if name.lower().startswith("on")]
    assert handlers == []
    assert [tag for tag, _ in page.elements if tag in ("img", "iframe", "object", "embed")] == []
    svg_handlers = [attrs for tag, attrs in page.elements if tag == "svg" and any(a.startswith("on") for a in attrs)]
    assert svg_handlers == []
    executable = [text for attrs, text in page.scripts if attrs.get("type") in (None, "", "text/javascript")]
    data = [text for attrs, text in page.scripts if attrs.get("type") == "application/json"]
    assert len(executable) + len(data) == len(page.scripts)  # no script of another type slipped in
    assert not any("data-pwned" in text or "alert(1)" in text for text in executable)
    assert all("src" not in attrs for attrs, _ in page.scripts)
    # The payloads survive as text the reader can see, and as data the charts get, unexecuted.
    visible = "".join(page.text)
    for label in ("Title ", "Event ", "Basket one ", "Confounder "):
        assert label + EVIL in visible, label
    charts = "".join(data)
    assert "</script" not in charts.lower() and "<script" not in charts.lower()
    decoded = json.dumps([json.loads(text) for text in data], ensure_ascii=False)
    assert "Basket one" in decoded


@pytest.mark.browser
def test_payloads_do_not_run_in_chromium(evil_report, tmp_path):
    if CHROMIUM is None:
        pytest.skip("headless Chromium not found (install it: apt-get install -y chromium)")

    def dump(url: str) -> str:
        result = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=180, env={**os.environ, "HOME": str(tmp_path)},
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    # Control: the same payloads pasted raw into a page do mark it, so a clean dump below means they did not run.
    control = tmp_path / "control.html"
    control.write_text(f"<!DOCTYPE html><html><head><title>t</title></head><body>{PAYLOADS[0]} x{PAYLOADS[1]} "
                       f"</body></html>", encoding="utf-8")
    assert 'data-pwned="' in dump(control.as_uri())

    dom = dump(evil_report.as_uri())
    assert "js-plotly-plot" in dom  # the page's own scripts did run (the charts were drawn)
    assert 'data-pwned="' not in dom
    page = Page(dom)
    assert [tag for tag, _ in page.elements if tag == "img"] == []
    assert not [(tag, name) for tag, attrs in page.elements for name in attrs if name.lower().startswith("on")]
