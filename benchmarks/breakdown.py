#!/usr/bin/env python
"""Where a whole-market scan spends its time, phase by phase, in one fresh process.

    python benchmarks/breakdown.py [--prices PATH] [--event 2025-10-13]

Runs the phases of ``evstudy scan`` one after the other (no overlap, unlike
``scan_market``) and prints the wall and CPU seconds of each: the imports
(pandas; evstudy's scan modules; scipy.special, which the t p-values need),
reading and pivoting the
file, the scan itself, and writing scan.csv, scan.json and scan.html. CPU
exceeds wall where Arrow decodes the file in several threads. Minor page
faults count the fresh memory each phase touches: on this VM a fault costs
several microseconds (a transparent huge page far more), so fewer
temporaries is faster even when the arithmetic is the same.
"""

from __future__ import annotations

import resource
import time

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
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas  # noqa: E402,F401

_mark("import pandas")
from evstudy.config import parse_event  # noqa: E402
from evstudy.report.scan_files import scan_csv, scan_json  # noqa: E402
from evstudy.report.scan_html import render_scan_html  # noqa: E402
from evstudy.scan import ScanConfig, load_scan_prices, run_scan  # noqa: E402

_mark("import evstudy scan, report (jinja2)")
import evstudy.abnormal  # noqa: E402,F401
import evstudy.results  # noqa: E402,F401

_mark("import scipy.special (t p-values)")


def main() -> int:
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "us_equities_daily_2021_2026.parquet"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prices", type=Path, default=default)
    parser.add_argument("--event", default="2025-10-13")
    args = parser.parse_args()
    config = ScanConfig(event=parse_event(args.event))
    _mark("parse options")
    data = load_scan_prices(config, args.prices)
    _mark("read + pivot the file")
    results = run_scan(config, data)
    _mark("run_scan")
    with tempfile.TemporaryDirectory() as out:
        (Path(out) / "scan.csv").write_bytes(scan_csv(results))
        _mark("write scan.csv")
        (Path(out) / "scan.json").write_text(scan_json(results), encoding="utf-8")
        _mark("write scan.json")
        (Path(out) / "scan.html").write_text(render_scan_html(results), encoding="utf-8")
        _mark("write scan.html")
    width = max(len(p[0]) for p in _phases)
    print(f"{'phase':<{width}}   wall s    CPU s  page faults")
    for name, wall, cpu, faults in _phases:
        print(f"{name:<{width}}  {wall:7.3f}  {cpu:7.3f}  {faults:11,}")
    print(f"{'total':<{width}}  {sum(p[1] for p in _phases):7.3f}  {sum(p[2] for p in _phases):7.3f}  "
          f"{sum(p[3] for p in _phases):11,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
