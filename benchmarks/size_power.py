#!/usr/bin/env python
"""Size and power of every basket test on the real US market (the Brown & Warner 1985 method).

Draws many samples of N real stocks (N = 10 and 50) from the whole-market
Parquet file and runs the study's own code on each: the market model on SPY
over the estimation window [-250, -11], CARs with MacKinlay standard errors,
:func:`evstudy.inference.cross_section_tests`, :func:`evstudy.inference.portfolio_t`
and the placebo engine of :mod:`evstudy.placebo`, all batched over samples.
A test's rejection rate at 5% is measured (a) with no effect, (b) with +1%
and (c) with +2% added to every stock's day-0 return, in two designs:

* ``shared``: all N stocks of a sample share one random event day (as in a
  config, where a basket's members share day 0: cross-correlation bites);
* ``separate``: each stock has its own random event day (the textbook setting).

Eligible (stock, day 0): every close >= $1 from the day before the estimation
window to day +10, every return present from day -250 to +10, fewer than 20%
zero returns in the estimation window, SPY itself left out. Event days are
drawn from the sessions that also have the placebo's 504-session lookback plus
its estimation window inside the data. The placebo tests use fewer
pseudo-event days per sample than a study (``--placebo-dates``, 200 by
default). The portfolio test in the ``separate`` design averages the stocks'
returns and SPY's in event time.

Writes docs/inference.md (tables + plain-English reading + this command),
docs/inference.json and the identical package copy
src/evstudy/data/size_power.json that the report reads to say which test to trust.

Usage::

    python benchmarks/size_power.py            # the shipped table: 1,000 samples per cell (~7 min)
    python benchmarks/size_power.py --quick    # 200 samples, 50 pseudo-days, < 2 minutes: prints the page,
                                               # leaves the shipped files alone
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from evstudy.abnormal import abnormal_returns, car_stats  # noqa: E402
from evstudy.config import Window  # noqa: E402
from evstudy.inference import (  # noqa: E402
    TEST_IDS, TEST_LABELS, CrossSection, cross_section_tests, equal_weighted, placebo_test, portfolio_t,
    window_selectors,
)
from evstudy.models import fit  # noqa: E402
from evstudy.placebo import PLACEBO_LOOKBACK, SeriesPlacebo, basket_placebo, candidate_days, series_placebo  # noqa: E402
from evstudy.prices.files import FileSource  # noqa: E402
from evstudy.returns import simple_returns, trading_days  # noqa: E402

DEFAULT_PRICES = REPO.parent / "shared" / "data" / "us_equities_daily_2021_2026.parquet"
BENCHMARK = "SPY"
ESTIMATION = Window(-250, -11)
SPAN = Window(-10, 10)
WINDOWS = (Window(0, 0), Window(-1, 1), Window(-5, 5))
EFFECTS = (0.0, 0.01, 0.02)
SIZES = (10, 50)
DESIGNS = ("shared", "separate")
ALPHA = 0.05
MIN_PRICE = 1.0
MAX_ZERO_SHARE = 0.20
OUTPUTS = (REPO / "docs" / "inference.json", REPO / "src" / "evstudy" / "data" / "size_power.json")
MARKDOWN = REPO / "docs" / "inference.md"
FORMULAS = {
    "cs_t": "t = CAAR / (s(CAR) / sqrt(N)), Student t(N-1).",
    "patell_z": "Z = sum SCAR_i / sqrt(sum df_i / (df_i - 2)), standard normal.",
    "bmp_t": "t = mean SCAR / (s(SCAR) / sqrt(N)), Student t(N-1).",
    "kp_patell_z": "Patell's Z x sqrt((1 - r) / (1 + (N-1) r)), r the mean pairwise Pearson correlation of the "
                   "estimation-window residuals (each pair over the days both have), standard normal.",
    "kp_bmp_t": "the BMP t x sqrt((1 - r) / (1 + (N-1) r)), Student t(N-1).",
    "corrado_rank": "ranks K_it of each stock's ARs over the estimation window and event span, U_it = K_it / "
                    "(T_i + 1) (Corrado & Zivney 1992); T = sqrt(L2) (mean of the daily mean U over the window "
                    "- 1/2) / S_U, S_U = sqrt(mean over all days of (daily mean U - 1/2)^2) (Campbell & Wasley "
                    "1993), standard normal.",
    "generalized_sign": "Z = (w - N p) / sqrt(N p (1 - p)), w the number of positive CARs, p the average share of "
                        "positive estimation-window ARs, standard normal.",
    "wilcoxon": "W+ = sum of the ranks of |CAR| over the positive CARs; exact null distribution up to 50 "
                "non-zero CARs (scipy), normal above.",
    "portfolio_t": "the equal-weighted basket return through the same model, t = CAR_p / S_p with MacKinlay's "
                   "S_p, Student t with the portfolio fit's residual degrees of freedom.",
    "placebo_caar": "p = (1 + #{pseudo-days with |CAAR| >= |actual CAAR|}) / (K_valid + 1), K pseudo-event days "
                    "drawn with replacement from the 504 sessions before the estimation window whose event span "
                    "holds no event or confounder; the same stocks, model, windows and exclusion rules.",
    "placebo_bmp": "the same with the BMP t in place of the CAAR.",
}
SAMPLE_CHUNK = 250  # samples per batch: bounds the placebo stacks' memory


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _window_sum(flags: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Per (row in ``first``, column): the number of True flags in rows [first, last] (cumulative sums)."""
    csum = np.concatenate([np.zeros((1, flags.shape[1]), dtype=np.int32), np.cumsum(flags, axis=0, dtype=np.int32)])
    return csum[last + 1] - csum[first]


def eligibility(returns: np.ndarray, closes: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(len(rows) x tickers): whether each ticker can be a sample member with day 0 at each row."""
    est_len = ESTIMATION.end - ESTIMATION.start + 1
    full = _window_sum(np.isfinite(returns), rows + ESTIMATION.start, rows + SPAN.end)
    priced = _window_sum(np.nan_to_num(closes, nan=0.0) >= MIN_PRICE, rows + ESTIMATION.start - 1, rows + SPAN.end)
    zeros = _window_sum(returns == 0.0, rows + ESTIMATION.start, rows + ESTIMATION.end)
    return (
        (full == SPAN.end - ESTIMATION.start + 1)
        & (priced == SPAN.end - ESTIMATION.start + 2)
        & (zeros < MAX_ZERO_SHARE * est_len)
    )


def draw_samples(
    rng: np.random.Generator, eligible: np.ndarray, rows: np.ndarray, design: str, n: int, samples: int
) -> tuple[np.ndarray, np.ndarray]:
    """(samples x n) ticker columns and day-0 rows: one shared day per sample, or one day per stock."""
    tickers = np.empty((samples, n), dtype=np.int64)
    days = np.empty((samples, n), dtype=np.int64)
    if design == "shared":
        usable = np.flatnonzero(eligible.sum(axis=1) >= n)
        for s, r in enumerate(rng.choice(usable, samples)):
            tickers[s] = rng.choice(np.flatnonzero(eligible[r]), n, replace=False)
            days[s] = rows[r]
        return tickers, days
    pair_rows, pair_tickers = np.nonzero(eligible)
    for s in range(samples):
        picked: dict[int, int] = {}
        while len(picked) < n:
            for k in rng.integers(0, len(pair_rows), 2 * n):
                picked.setdefault(int(pair_tickers[k]), int(rows[pair_rows[k]]))
        chosen = list(picked.items())[:n]
        tickers[s] = [t for t, _ in chosen]
        days[s] = [d for _, d in chosen]
    return tickers, days


def pseudo_days(rng: np.random.Generator, days: np.ndarray, design: str, k: int) -> np.ndarray:
    """(k, samples x n) pseudo day-0 rows: the library's candidate set, one draw per sample (shared) or per stock."""
    reference = int(days.max())
    offsets = reference - candidate_days(reference, ESTIMATION, SPAN, blocked=[])
    samples, n = days.shape
    if design == "shared":
        picks = np.repeat(rng.choice(offsets, (k, samples))[:, :, None], n, axis=2)
    else:
        picks = rng.choice(offsets, (k, samples, n))
    return (days[None, :, :] - picks).reshape(k, samples * n)


def run_batch(
    stock: np.ndarray, market: np.ndarray, tickers: np.ndarray, days: np.ndarray, placebo: SeriesPlacebo
) -> dict[float, dict[str, np.ndarray]]:
    """p-values (samples x windows) of every test, per injected effect, for one batch of samples."""
    samples, n = tickers.shape
    cols = tickers.ravel()
    day0 = days.ravel()
    est_rows = day0[None, :] + np.arange(ESTIMATION.start, ESTIMATION.end + 1)[:, None]
    ev_rows = day0[None, :] + np.arange(SPAN.start, SPAN.end + 1)[:, None]
    rel = np.arange(SPAN.start, SPAN.end + 1)
    y_est, m_est = stock[est_rows, cols[None, :]], market[est_rows]
    y_ev, m_ev = stock[ev_rows, cols[None, :]], market[ev_rows]
    fitted = fit("market", y_est, m_est)
    selectors = window_selectors(rel, WINDOWS)
    nw, w, L = len(WINDOWS), len(rel), y_est.shape[0]

    def per_sample(a: np.ndarray, rows: int) -> np.ndarray:  # (rows, samples*n) -> (samples, rows, n)
        return a.reshape(rows, samples, n).transpose(1, 0, 2)

    dist = basket_placebo(SeriesPlacebo(
        placebo.day0, placebo.car.reshape(-1, nw, samples, n), placebo.scar.reshape(-1, nw, samples, n)
    ), np.arange(n))
    out: dict[float, dict[str, np.ndarray]] = {}
    for effect in EFFECTS:
        shocked = y_ev.copy()
        shocked[rel == 0] += effect
        ar = abnormal_returns(fitted, shocked, m_ev, rel)
        cars = car_stats(fitted, ar, list(WINDOWS))
        tests = cross_section_tests(CrossSection(
            per_sample(cars.car, nw), per_sample(cars.se, nw), fitted.df.reshape(samples, n),
            per_sample(fitted.residuals, L), per_sample(ar.abnormal, w), selectors,
        ))
        tests["portfolio_t"] = portfolio_t(
            "market",
            equal_weighted(y_est.reshape(L, samples, n)), equal_weighted(m_est.reshape(L, samples, n)),
            equal_weighted(shocked.reshape(w, samples, n)), equal_weighted(m_ev.reshape(w, samples, n)),
            rel, WINDOWS, np.full(samples, n),
        )
        members = np.full((samples, nw), n)
        caar = per_sample(cars.car, nw).mean(axis=-1)
        draws_caar, draws_bmp = dist.caar.transpose(0, 2, 1), dist.bmp.transpose(0, 2, 1)  # (K, samples, windows)
        tests["placebo_caar"] = placebo_test("placebo_caar", caar, draws_caar, members)
        tests["placebo_bmp"] = placebo_test("placebo_bmp", tests["bmp_t"].statistic, draws_bmp, members)
        out[effect] = {name: tests[name].p_value for name in TEST_IDS}
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    log(f"reading {args.prices}")
    data = FileSource(args.prices).load_all(dt.date(1990, 1, 1), dt.date.today())
    closes = data.closes
    days = trading_days(closes, BENCHMARK)
    panel = simple_returns(closes, days)
    names = list(panel.returns.columns)
    returns = panel.returns.to_numpy(copy=True)
    closes_np = panel.closes.to_numpy()
    market = returns[:, names.index(BENCHMARK)].copy()
    returns[:, names.index(BENCHMARK)] = np.nan  # SPY is the benchmark, never a sample member
    first_row = 2 * (-ESTIMATION.start) + PLACEBO_LOOKBACK + 1  # pseudo-days' estimation windows inside the data
    rows = np.arange(max(first_row, 1 - ESTIMATION.start + 1), len(days) - SPAN.end)
    eligible = eligibility(returns, closes_np, rows)
    log(f"{len(names):,} tickers, {len(days):,} sessions; event days {days[rows[0]].date()} to "
        f"{days[rows[-1]].date()}; eligible stocks per day: median {int(np.median(eligible.sum(axis=1))):,}")
    rng = np.random.default_rng(args.seed)
    cells = []
    for design in DESIGNS:
        for n in SIZES:
            t0 = time.perf_counter()
            tickers, day0 = draw_samples(rng, eligible, rows, design, n, args.samples)
            pvalues: dict[float, dict[str, list[np.ndarray]]] = {e: {name: [] for name in TEST_IDS} for e in EFFECTS}
            for start in range(0, args.samples, SAMPLE_CHUNK):
                part = slice(start, start + SAMPLE_CHUNK)
                pseudo = pseudo_days(rng, day0[part], design, args.placebo_dates)
                placebo = series_placebo(
                    "market", returns, market[:, None], tickers[part].ravel(),
                    np.zeros(tickers[part].size, dtype=np.int64), pseudo,
                    estimation=ESTIMATION, span=SPAN, windows=WINDOWS,
                    min_returns=ESTIMATION.end - ESTIMATION.start + 1, max_zero_share=MAX_ZERO_SHARE,
                )
                for effect, by_test in run_batch(returns, market, tickers[part], day0[part], placebo).items():
                    for name, p in by_test.items():
                        pvalues[effect][name].append(p)
            for effect in EFFECTS:
                for w, window in enumerate(WINDOWS):
                    rates, defined = {}, {}
                    for name in TEST_IDS:
                        p = np.concatenate(pvalues[effect][name])[:, w]
                        ok = np.isfinite(p)
                        defined[name] = int(ok.sum())
                        rates[name] = float((p[ok] <= ALPHA).mean()) if ok.any() else None
                    cells.append({
                        "design": design, "n": n, "window": [window.start, window.end], "effect": effect,
                        "samples": args.samples, "rates": rates, "defined": defined,
                    })
            log(f"{design} n={n}: {args.samples} samples in {time.perf_counter() - t0:.0f} s")
    return {
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/size_power.py",
        "data": {
            "file": args.prices.name, "first_event_day": str(days[rows[0]].date()),
            "last_event_day": str(days[rows[-1]].date()), "tickers": len(names), "sessions": len(days),
        },
        "method": {
            "model": "market", "benchmark": BENCHMARK,
            "estimation_window": [ESTIMATION.start, ESTIMATION.end], "event_span": [SPAN.start, SPAN.end],
            "alpha": ALPHA, "samples_per_cell": args.samples, "placebo_dates_per_sample": args.placebo_dates,
            "placebo_lookback": PLACEBO_LOOKBACK, "effects": list(EFFECTS), "sizes": list(SIZES),
            "designs": list(DESIGNS), "min_price": MIN_PRICE, "max_zero_share": MAX_ZERO_SHARE, "seed": args.seed,
        },
        "seconds": round(time.perf_counter() - started, 1),
        "cells": cells,
    }


# --------------------------------------------------------------------------- the markdown page


def _rate(cell: dict[str, Any], name: str) -> str:
    value = cell["rates"][name]
    return "—" if value is None else f"{100 * value:.1f}"


def _cell(evidence: dict[str, Any], design: str, n: int, window: list[int], effect: float) -> dict[str, Any]:
    return next(c for c in evidence["cells"] if c["design"] == design and c["n"] == n
                and c["window"] == window and c["effect"] == effect)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} seconds" if seconds < 120 else f"{seconds / 60:.0f} minutes"


def _band(samples: int) -> float:
    """Upper edge of a 'held its size' rejection rate: 5% plus two binomial standard errors."""
    return ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / samples)


def markdown(evidence: dict[str, Any]) -> str:
    method, data = evidence["method"], evidence["data"]
    samples = method["samples_per_cell"]
    band = _band(samples)
    lines = [
        "# Which test to trust: size and power measured on the real market",
        "",
        "Every basket test evstudy reports promises to reject a true \"no effect\" 5% of the time at the 5% level.",
        "This page measures whether it keeps that promise on real US stocks, following Brown & Warner (1985):",
        f"draw {samples:,} random samples of N real stocks per cell, run the study's own code on each, and count",
        "how often each test rejects at 5% (a) with no effect, (b) with +1% and (c) with +2% added to every",
        "stock's day-0 return. Two designs: all N stocks **share one event day** (as every basket of an evstudy",
        "config does), or each stock has **its own** random event day.",
        "",
        "Regenerate this page, `docs/inference.json` and the package copy `src/evstudy/data/size_power.json`",
        "(which the report reads to pick the test to trust) with:",
        "",
        "```",
        evidence["command"],
        "```",
        "",
        "(`--quick` runs 200 samples with 50 pseudo-days in under two minutes and prints this page without",
        "touching the shipped files; `--render-only` rewrites this page from `docs/inference.json`.)",
        "",
        f"Generated {evidence['generated']} in {_duration(evidence['seconds'])}. Data: `{data['file']}`;",
        f"event days drawn from {data['first_event_day']} to {data['last_event_day']} (the sessions with the",
        f"placebo's {method['placebo_lookback']}-session lookback and its estimation window inside the data).",
        f"Market model on {method['benchmark']}, estimation window {method['estimation_window']}, event span",
        f"{method['event_span']}. Stocks: every close >= ${method['min_price']:.0f}, all {method['event_span'][1] - method['estimation_window'][0] + 1}",
        f"returns from day {method['estimation_window'][0]} to day +{method['event_span'][1]} present, fewer than",
        f"{method['max_zero_share']:.0%} zero returns in the estimation window. The placebo tests use",
        f"**{method['placebo_dates_per_sample']} pseudo-event days per sample** here (a study uses 1,000 by default).",
        "In the separate-days design the portfolio test averages the stocks' and SPY's returns in event time.",
        "",
        f"Rates are in percent. With {samples:,} samples a correctly sized test lands within 5 ± "
        f"{100 * (band - ALPHA):.2f} about 95% of the time;",
        f"**bold** marks a null rejection rate above {100 * band:.2f}% (the test over-rejects).",
        "",
    ]
    window_names = {(0, 0): "day 0", (-1, 1): "days -1 to +1", (-5, 5): "days -5 to +5"}
    for design in method["designs"]:
        title = "All stocks of a sample share one event day" if design == "shared" else "Each stock its own event day"
        lines += [f"## {title}", ""]
        for window in evidence_windows(evidence):
            header = ["test"]
            for n in method["sizes"]:
                header += [f"N={n} size", f"N={n} +1%", f"N={n} +2%"]
            lines += [f"### Window: {window_names.get(tuple(window), str(window))}", "",
                      "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for name in TEST_IDS:
                row = [f"`{name}`"]
                for n in method["sizes"]:
                    for effect in method["effects"]:
                        cell = _cell(evidence, design, n, window, effect)
                        text = _rate(cell, name)
                        if effect == 0 and cell["rates"][name] is not None and cell["rates"][name] > band:
                            text = f"**{text}**"
                        row.append(text)
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")
    lines += ["## Reading", "", *reading(evidence), ""]
    lines += [
        "## How the report uses this",
        "",
        "For each basket the report highlights the test this table supports for the basket's design (a shared",
        "event day) and size (the nearest measured N): among the tests whose day-0 null rejection rate stayed",
        f"within 5% + two standard errors, the one with the highest rejection rate at +1%. Below N = 10 it says",
        "that asymptotic p-values are unreliable and leans on the placebo test.",
        "",
        "## The tests",
        "",
        "All two-sided; N stocks, SCAR_i = CAR_i / S_CAR_i with MacKinlay's (1997, eq. 10-11) S_CAR including the",
        "estimation error, df_i the stock's residual degrees of freedom. Formulas and citations are in the",
        "docstrings of `evstudy.inference`.",
        "",
        *[f"- `{name}`, {TEST_LABELS[name]}: {FORMULAS[name]}" for name in TEST_IDS],
        "",
    ]
    return "\n".join(lines)


def evidence_windows(evidence: dict[str, Any]) -> list[list[int]]:
    seen: list[list[int]] = []
    for cell in evidence["cells"]:
        if cell["window"] not in seen:
            seen.append(cell["window"])
    return seen


def reading(evidence: dict[str, Any]) -> list[str]:
    """Plain-English sentences drawn from the numbers (day-0 window)."""
    method = evidence["method"]
    band = _band(method["samples_per_cell"])

    def holds(design: str, n: int, test: str) -> bool:
        rate = _cell(evidence, design, n, [0, 0], 0.0)["rates"][test]
        return rate is not None and rate <= band

    sizes = method["sizes"]
    largest, smallest = max(sizes), min(sizes)

    def rate(n: int, test: str) -> float:
        value = _cell(evidence, "shared", n, [0, 0], 0.0)["rates"][test]
        return float("nan") if value is None else 100 * value

    broken = [t for t in TEST_IDS if not holds("shared", largest, t)]
    always = [t for t in TEST_IDS if all(holds("shared", n, t) for n in sizes)]
    borderline = [t for t in TEST_IDS if t not in broken and t not in always]
    separate = sum(all(holds("separate", n, t) for n in sizes) for t in TEST_IDS)
    out = []
    if broken:
        def span(n: int) -> str:
            values = [rate(n, t) for t in broken]
            return f"{min(values):.0f}% to {max(values):.0f}%"

        sentence = (
            "In short: when the stocks share their event day, " + ", ".join(f"`{t}`" for t in broken)
            + f" over-reject, and more so with more stocks: they reject a true null {span(smallest)} of the time at "
            f"N = {smallest} and {span(largest)} at N = {largest}, instead of 5%, because a shock common to the "
            "day does not average out across stocks. "
        )
        sentence += (", ".join(f"`{t}`" for t in always) + " keep the 5% promise at every N measured") if always \
            else "No test keeps the 5% promise at every N measured"
        if borderline:
            sentence += "; borderline: " + ", ".join(
                f"`{t}` ({max(rate(n, t) for n in sizes):.1f}% at N = "
                f"{max(sizes, key=lambda n: rate(n, t))})" for t in borderline)
        sentence += (
            f". With a separate day per stock, {separate} of {len(TEST_IDS)} tests hold at every N. Among the "
            "robust tests power differs widely: compare their +1% and +2% columns."
        )
        out += [sentence, ""]
    for design in method["designs"]:
        for n in method["sizes"]:
            null = _cell(evidence, design, n, [0, 0], 0.0)["rates"]
            power = _cell(evidence, design, n, [0, 0], 0.01)["rates"]
            held = [t for t in TEST_IDS if null[t] is not None and null[t] <= band]
            over = sorted((t for t in TEST_IDS if null[t] is not None and null[t] > band), key=lambda t: -null[t])
            best = max(held, key=lambda t: power[t]) if held else None
            where = "sharing one event day" if design == "shared" else "each on its own event day"
            sentence = f"- **N = {n}, {where}:** "
            if held:
                sentence += f"{len(held)} of {len(TEST_IDS)} tests held their 5% size on day 0 ("
                sentence += ", ".join(f"`{t}` {100 * null[t]:.1f}%" for t in held) + ")"
            else:
                sentence += "no test held its 5% size on day 0"
            if over:
                sentence += "; over-rejecting: " + ", ".join(f"`{t}` {100 * null[t]:.1f}%" for t in over)
            if best:
                sentence += (f". Of those that held, `{best}` caught a +1% day-0 effect most often "
                             f"({100 * power[best]:.0f}% of samples).")
            else:
                sentence += "."
            out.append(sentence)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="200 samples and 50 pseudo-days per cell, < 2 minutes; prints the page, writes nothing.")
    parser.add_argument("--samples", type=int, help="Samples per cell [default: 1000, quick: 200].")
    parser.add_argument("--placebo-dates", type=int, help="Pseudo-event days per sample [default: 200, quick: 50].")
    parser.add_argument("--seed", type=int, default=1985, help="Seed of every draw [default: 1985].")
    parser.add_argument("--prices", type=Path, default=Path(os.environ.get("EVSTUDY_BENCH_PRICES", DEFAULT_PRICES)),
                        help="The whole-market Parquet file [default: ../shared/data/...parquet].")
    parser.add_argument("--no-write", action="store_true", help="Print the JSON instead of writing the three files.")
    parser.add_argument("--render-only", action="store_true",
                        help="Rewrite docs/inference.md from the existing docs/inference.json, measuring nothing.")
    args = parser.parse_args(argv)
    if args.render_only:
        MARKDOWN.write_text(markdown(json.loads(OUTPUTS[0].read_text(encoding="utf-8"))), encoding="utf-8")
        return 0
    args.samples = args.samples or (200 if args.quick else 1000)
    args.placebo_dates = args.placebo_dates or (50 if args.quick else 200)
    if not args.prices.is_file():
        print(f"error: no market Parquet at {args.prices} (give --prices or $EVSTUDY_BENCH_PRICES)", file=sys.stderr)
        return 2
    evidence = measure(args)
    text = json.dumps(evidence, indent=1) + "\n"
    if args.no_write:
        print(text)
        return 0
    if args.quick:  # a smoke run: too few samples to replace the shipped evidence
        print(markdown(evidence))
        return 0
    for path in OUTPUTS:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    MARKDOWN.write_text(markdown(evidence), encoding="utf-8")
    log(f"wrote {MARKDOWN.relative_to(REPO)}, " + ", ".join(str(p.relative_to(REPO)) for p in OUTPUTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
