"""Write a scan's outputs (scan.csv with every ranked ticker, scan.json, scan.html) and its summary.

scan.csv goes through Arrow's C++ CSV writer: pandas' ``to_csv`` spends about
half a second formatting 9,000 x 36 floats, a third of a whole scan. Its text
cells are neutralized against spreadsheet formulas and quoted where needed
(a ticker from a price file may hold ``=``, ``,`` or ``"``). The three files are
written as one set: ``--out`` holds this scan's or the previous one's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from evstudy.report.scan_html import render_scan_html
from evstudy.report.writing import neutralize_formula_cells, write_output_set
from evstudy.scan import DAY0_KEY, ScanResults

SCAN_FILES = ("scan.csv", "scan.json", "scan.html")


def scan_csv(results: ScanResults) -> bytes:
    """scan.csv: the ranked table, floats in shortest round-trip form, text quoted only where it must be."""
    frame = neutralize_formula_cells(results.table)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # Arrow's "needed" quotes every text cell; plain tickers read better bare, so quote only when some must be.
    texts = frame.select_dtypes(include=["object", "string"])
    special = any(texts[name].astype(str).str.contains(r'[,"\r\n]', regex=True).any() for name in texts.columns)
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, write_options=pa_csv.WriteOptions(quoting_style="needed" if special else "none"))
    return sink.getvalue().to_pybytes()


def scan_json(results: ScanResults) -> str:
    """scan.json text; refuses NaN/inf so none can leak into the contract."""
    return json.dumps(results.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)


def write_scan_outputs(results: ScanResults, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write scan.csv, scan.json and scan.html into ``out_dir`` as one set (replacing an earlier run's)."""
    contents = {
        "scan.csv": scan_csv(results),
        "scan.json": scan_json(results).encode("utf-8"),
        "scan.html": render_scan_html(results).encode("utf-8"),
    }
    return write_output_set(out_dir, contents, command="scan")


def scan_summary_text(results: ScanResults, *, top: int = 10, highlights: int = 15) -> str:
    """Day 0, the filter funnel, the highlighted tickers' ranks and the top day-0 movers, as plain text."""
    n = results.n_ranked
    lines = [
        results.timeline.mapping,
        f"{n:,} of {int(results.funnel['start'].iloc[0]):,} tickers ranked by day-0 abnormal return "
        f"({results.config.model} model vs {results.config.benchmark})",
        "",
        "Filters (in order):",
    ]
    for row in results.funnel.to_dict(orient="records"):
        lines.append(f"  {row['filter']:<15} removed {row['removed']:>6,}   left {row['remaining']:>6,}")
    data_notes = results.provenance.get("notes", [])
    if data_notes:  # e.g. names in the price file that are not ticker symbols, left out before the funnel
        lines += ["", "Price data:", *(f"  {note}" for note in data_notes)]
    if len(results.highlights):
        lines += ["", "Highlighted tickers:"]
        for row in results.highlights.head(highlights).to_dict(orient="records"):
            if row["status"] == "ranked":
                lines.append(
                    f"  {row['ticker']:<8} rank {int(row['rank']):>6,} of {n:,} (top {row['percentile']:.2f}%), "
                    f"day-0 AR {row['ar_day0'] * 100:+.2f}%"
                )
            else:
                lines.append(f"  {row['ticker']:<8} not ranked: {row['reason']}")
        if len(results.highlights) > highlights:
            lines.append(f"  ... and {len(results.highlights) - highlights} more (scan.json, scan.html)")
    lines += ["", f"Top {min(top, n)} by day-0 abnormal return:"]
    has_q = f"q_{DAY0_KEY}" in results.table
    for row in results.table.head(top).to_dict(orient="records"):
        q = f"  q {row[f'q_{DAY0_KEY}']:.2g}" if has_q else ""
        lines.append(f"  {row['rank']:>4}  {row['ticker']:<8} AR {row['ar_day0'] * 100:+8.2f}%{q}")
    return "\n".join(lines)
