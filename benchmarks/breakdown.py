#!/usr/bin/env python
"""Where a whole-market scan, or a study, spends its time, phase by phase, in one fresh process.

    python benchmarks/breakdown.py [--prices PATH] [--event 2025-10-13]
    python benchmarks/breakdown.py --study configs/jpm-sri-2025.toml [--prices PATH] [--json]

Runs the phases of ``evstudy scan`` one after the other (no overlap, unlike
``scan_market``) and prints the wall and CPU seconds of each: the imports
(numpy and pyarrow; evstudy's scan modules and jinja2; scipy.special for
the t p-values, which ``evstudy scan`` imports in a thread while it screens), the read from the file's local index (``evstudy scan`` it twice
first), the scan itself (its column blocks in threads, as the CLI runs it),
and writing scan.csv, scan.json and scan.html. The scan imports neither pandas
nor scipy.stats, and sets malloc up as the CLI does. Minor page
faults count the fresh memory each phase touches: on this VM a fault costs
several microseconds (a transparent huge page far more), so fewer
temporaries is faster even when the arithmetic is the same.

With ``--study CONFIG`` it runs the phases of ``evstudy run CONFIG`` instead:
imports, reading the prices, the per-event engine (placebo included), the
catalogue and basket comparison, results.json, the CSVs and report.html.
``--json`` prints the phases as JSON (benchmarks/run.py reads it).
"""

from __future__ import annotations

import os
import resource
import sys
import time

if "--study" in sys.argv:  # as `evstudy run` sets it before numpy loads (cli.py)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_phases: list[tuple[str, float, float, int]] = []


def _now() -> tuple[float, float, int]:
    return time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt


_last = _now()


def _mark(name: str) -> None:
    global _last
    now = _now()
    _phases.append((name, now[0] - _last[0], now[1] - _last[1], now[2] - _last[2]))
    _last = now


import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402


def scan_phases(event: str, prices: Path) -> None:
    """The phases of ``evstudy scan --event EVENT --prices PATH`` from the file's local index."""
    from evstudy.cli import _reuse_freed_memory

    _reuse_freed_memory()
    _mark("import click, evstudy.cli")
    import numpy as np  # noqa: F401
    import pyarrow.csv  # noqa: F401

    _mark("import numpy, pyarrow")
    from evstudy.config import parse_event
    from evstudy.prices.dataset import indexed_market
    from evstudy.report.scan_files import scan_csv, scan_json
    from evstudy.report.scan_html import render_scan_html
    from evstudy.scan import ScanConfig, scan_dates, scan_indexed

    _mark("import evstudy scan, report (jinja2)")
    import evstudy.abnormal  # noqa: F401
    import scipy.special  # noqa: F401

    _mark("import evstudy.abnormal, scipy.special (t p-values)")
    config = ScanConfig(event=parse_event(event))
    market = indexed_market(prices, *scan_dates(config))
    if market is None:
        raise SystemExit(f"{prices} has no local index yet: run `evstudy scan` on it twice first")
    _mark("open the local index")
    results = scan_indexed(config, market, str(prices))
    _mark("scan_closes (copy, returns, filters, fit, CARs, ranks)")
    with tempfile.TemporaryDirectory() as out:
        (Path(out) / "scan.csv").write_bytes(scan_csv(results))
        _mark("write scan.csv")
        (Path(out) / "scan.json").write_text(scan_json(results), encoding="utf-8")
        _mark("write scan.json")
        (Path(out) / "scan.html").write_text(render_scan_html(results), encoding="utf-8")
        _mark("write scan.html")


def study_phases(config_path: Path, prices: Path) -> None:
    """The phases of ``evstudy run CONFIG --prices PATH``, in the order the CLI runs them."""
    import pandas  # noqa: F401

    _mark("import pandas")
    from evstudy.report.scan_files import scan_csv  # noqa: F401  (the modules every command loads)

    _mark("import evstudy scan, report (jinja2)")
    import evstudy.abnormal  # noqa: F401
    import evstudy.results  # noqa: F401

    _mark("import evstudy.abnormal, evstudy.results")
    from evstudy.api import load_study_factors, load_study_prices
    from evstudy.catalogue import attach_catalogue
    from evstudy.compare import attach_comparison
    from evstudy.config import load_config
    from evstudy.study import compute_study

    _mark("import evstudy's study modules")
    from evstudy.report.files import csv_sources, encode_csvs, results_json
    from evstudy.report.html import render_html

    _mark("import evstudy's report modules")
    config = load_config(config_path)
    _mark("read the config")
    data = load_study_prices(config, prices=prices)
    _mark("read the prices (NYSE sessions kept in the cache)")
    results = compute_study(config, data, factors=load_study_factors(config))
    _mark("compute_study (per-event engine, tests, placebo)")
    results = attach_comparison(attach_catalogue(results))
    _mark("catalogue, drift and basket comparison")
    results_json(results)
    _mark("results.json text")
    encode_csvs(csv_sources(results))  # as `run` writes them (there, encoded in a thread)
    _mark("the CSV texts")
    render_html(results)
    _mark("report.html text")


def main() -> int:
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "us_equities_daily_2021_2026.parquet"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prices", type=Path, default=default)
    parser.add_argument("--event", default="2025-10-13")
    parser.add_argument("--study", type=Path, help="Break down `evstudy run STUDY` instead of the scan.")
    parser.add_argument("--json", action="store_true", help="Print the phases as JSON.")
    args = parser.parse_args()
    if args.study is not None:
        study_phases(args.study, args.prices)
    else:
        scan_phases(args.event, args.prices)
    return _print(args.json)


def _print(as_json: bool) -> int:
    if as_json:
        print(json.dumps([{"phase": n, "wall_s": w, "cpu_s": c, "page_faults": f} for n, w, c, f in _phases]))
        return 0
    width = max(len(p[0]) for p in _phases)
    print(f"{'phase':<{width}}   wall s    CPU s  page faults")
    for name, wall, cpu, faults in _phases:
        print(f"{name:<{width}}  {wall:7.3f}  {cpu:7.3f}  {faults:11,}")
    print(f"{'total':<{width}}  {sum(p[1] for p in _phases):7.3f}  {sum(p[2] for p in _phases):7.3f}  "
          f"{sum(p[3] for p in _phases):11,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
