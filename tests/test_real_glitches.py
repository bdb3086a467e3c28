"""Issue 11 acceptance: no output of a run on the dirty shared market file holds a glitch-driven value unflagged.

The whole-market scan of 2025-10-13 and the JPM study (with the data's known
dirt added) run through the real CLI on the shared Parquet. The checks read the
raw closes again with pandas, independently of evstudy's reader and screen:

- every ranked or included series is free of glitches over the days its
  numbers use (the close before the estimation window to the last event day):
  no one-day move by 5x or more before the event span, no 2x move undone the
  next day, no close below $0.05;
- every series with such a glitch is left out, and the reason names it
  ("price glitch" in a study's exclusions, the ``price_glitch`` filter in a
  scan, e.g. PPCB's 0.01 -> 625 and ABTS's 0.252 -> 3.732);
- every extreme value that remains — an abnormal return beyond ±50% in a
  day, far outside the daily moves of any stock without news (the scan's
  median |AR| is under 2%) — is a move the next close keeps (at least a
  quarter of it), i.e. a repricing (TMQ +211% on a US stake), not a bad tick.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from evstudy.cli import cli

REPO = Path(__file__).resolve().parents[1]
JPM = REPO / "configs" / "jpm-sri-2025.toml"
EVENT = "2025-10-13"
EXTREME_AR = 0.5
KEPT_SHARE = 0.25
pytestmark = pytest.mark.shared_data


def invoke(*args: object) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def independent_glitches(closes: pd.DataFrame, event_start: pd.Timestamp) -> pd.Series:
    """Per ticker: does its window hold a glitch? (plain pandas, written apart from evstudy.returns)."""
    closes = closes.where(np.isfinite(closes) & (closes > 0))
    ratio = closes / closes.shift(1)
    log_move = np.log(ratio)
    before_event = pd.Series(closes.index < event_start, index=closes.index)
    jump = ((ratio >= 5) | (ratio <= 1 / 5)).where(before_event, False, axis=0)
    sigma = 1.4826 * (log_move - log_move.median()).abs().median()
    undone = (np.sign(log_move.shift(-1)) == -np.sign(log_move)) & (log_move.shift(-1).abs() >= 0.75 * log_move.abs())
    spike = (log_move.abs() >= np.log(2)) & ((log_move - log_move.median()).abs() > 10 * sigma) & undone
    low = closes < 0.05
    return (jump | spike | low).any()


@pytest.fixture(scope="module")
def market(market_parquet) -> pd.DataFrame:
    frame = pd.read_parquet(market_parquet, filters=[("date", ">=", pd.Timestamp("2024-08-01")),
                                                     ("date", "<=", pd.Timestamp("2025-11-30"))])
    return frame.pivot(index="date", columns="ticker", values="close").sort_index()


@pytest.fixture(scope="module")
def scan(market_parquet, tmp_path_factory) -> tuple[pd.DataFrame, dict]:
    out = tmp_path_factory.mktemp("scan")
    invoke("scan", "--event", EVENT, "--prices", market_parquet, "--highlight", "PPCB,CMCT,OMH", "--out", out)
    return pd.read_csv(out / "scan.csv"), json.loads((out / "scan.json").read_text())


def window(market: pd.DataFrame, first: str, last: str) -> pd.DataFrame:
    start = market.index.searchsorted(pd.Timestamp(first)) - 1  # the close before the first return
    return market.iloc[max(start, 0): market.index.searchsorted(pd.Timestamp(last), side="right")]


def test_no_ranked_ticker_holds_a_glitch(scan, market):
    table, doc = scan
    event = doc["event"]
    closes = window(market, event["estimation_start"], event["event_window_end"])
    glitchy = independent_glitches(closes, pd.Timestamp(event["event_window_start"]))
    ranked = set(table["ticker"])
    assert not ranked & set(glitchy[glitchy].index)
    removed = dict((f["filter"], f["removed"]) for f in doc["filters"])
    assert removed["price_glitch"] >= 50  # the dirt is real: dozens of series in this window
    reasons = {h["ticker"]: h["reason"] for h in doc["highlights"]}
    assert all(reasons[t].startswith("price_glitch") for t in ("PPCB", "CMCT", "OMH")), reasons


def test_extreme_scan_values_are_repricings_not_glitches(scan, market):
    table, doc = scan
    extreme = table[table["ar_day0"].abs() > EXTREME_AR]
    assert len(extreme) < 20 and table["ar_day0"].abs().median() < 0.02
    assert_kept(market, extreme["ticker"], [doc["event"]["day0"]] * len(extreme))


def assert_kept(market: pd.DataFrame, tickers: pd.Series, dates: list[str]) -> None:
    """Each (ticker, day)'s one-day move is kept by the next close (at least KEPT_SHARE of it, in logs)."""
    for ticker, day in zip(tickers, dates):
        row = market.index.get_loc(pd.Timestamp(day))
        before, on, after = (market[ticker].iloc[row + k] for k in (-1, 0, 1))
        kept = np.log(after / before) / np.log(on / before)
        assert kept >= KEPT_SHARE, (ticker, day, before, on, after)


def test_jpm_study_names_every_glitch(market, market_parquet, tmp_path):
    config = tmp_path / "jpm-dirty.toml"
    config.write_text(JPM.read_text(encoding="utf-8") + '\n[[baskets]]\nname = "dirty"\n'
                      'tickers = ["ABTS", "PPCB", "CMCT", "MP"]\n', encoding="utf-8")
    invoke("run", config, "--prices", market_parquet, "--out", tmp_path / "out", "--placebo", 0)
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    timeline = doc["events"][0]
    closes = window(market, timeline["estimation_start"], timeline["event_window_end"])
    glitchy = independent_glitches(closes, pd.Timestamp(timeline["event_window_start"]))
    included = {f["ticker"] for f in doc["fits"]}
    reasons = {e["ticker"]: e["reason"] for e in doc["exclusions"]}
    assert not included & set(glitchy[glitchy].index)
    for ticker in ("ABTS", "PPCB", "CMCT"):
        assert glitchy[ticker] and reasons[ticker].startswith("price glitch"), (ticker, reasons.get(ticker))
    ars = pd.read_csv(tmp_path / "out" / "abnormal_returns.csv")
    extreme = ars[ars["abnormal_return"].abs() > EXTREME_AR]  # e.g. TMQ +211% on 2025-10-07 (a US stake)
    assert_kept(market, extreme["ticker"], list(extreme["date"]))

