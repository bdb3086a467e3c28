"""Write a scan's outputs (scan.csv with every ranked ticker, scan.json, scan.html) and its summary.

scan.csv goes through Arrow's C++ CSV writer: pandas' ``to_csv`` spends about
half a second formatting 9,000 x 36 floats, a third of a whole scan. Its text
cells are neutralized against spreadsheet formulas and quoted where needed
(a ticker from a price file may hold ``=``, ``,`` or ``"``). The three files are
written as one set: ``--out`` holds this scan's or the previous one's. All of
it reads the scan's numpy columns: no pandas.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from evstudy.report.scan_html import render_scan_html
from evstudy.report.writing import formula_risk, write_output_set
from evstudy.scan import DAY0_KEY, HIGHLIGHT_COLUMNS, ScanResults

SCAN_FILES = ("scan.csv", "scan.json", "scan.html")
_MUST_QUOTE = re.compile(r'[,"\r\n]')


def _arrow_column(values: np.ndarray) -> pa.Array:
    """A numpy column as an Arrow array, NaN as null (what ``Table.from_pandas`` gave).

    Built from the buffers: ``pa.array`` imports pandas (pyarrow's pandas shim), ~0.25 s of a scan.
    """
    if values.dtype == object:  # text
        encoded = [str(v).encode("utf-8") for v in values.tolist()]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])
    if values.dtype == bool:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    kind = {np.dtype(np.float64): pa.float64(), np.dtype(np.int64): pa.int64()}[values.dtype]
    missing = np.isnan(values) if kind == pa.float64() else np.zeros(len(values), dtype=bool)
    validity = pa.py_buffer(np.packbits(~missing, bitorder="little")) if missing.any() else None
    data = pa.py_buffer(np.ascontiguousarray(values))
    return pa.Array.from_buffers(kind, len(values), [validity, data], null_count=int(missing.sum()))


def scan_csv(results: ScanResults) -> bytes:
    """scan.csv: the ranked table, floats in shortest round-trip form, text quoted only where it must be."""
    arrays = {}
    special = False
    for name, values in results.columns.items():
        if values.dtype == object:  # text (the tickers): formula-leading cells neutralized
            values = np.array([f"'{v}" if formula_risk(v) else v for v in values.tolist()], dtype=object)
            special = special or any(_MUST_QUOTE.search(str(v)) for v in values.tolist())
        arrays[name] = _arrow_column(values)
    # Arrow's "needed" quotes every text cell; plain tickers read better bare, so quote only when some must be.
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(
        pa.table(arrays), sink, write_options=pa_csv.WriteOptions(quoting_style="needed" if special else "none")
    )
    return sink.getvalue().to_pybytes()


def scan_json(results: ScanResults) -> str:
    """scan.json text; refuses NaN/inf so none can leak into the contract."""
    return json.dumps(results.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)


def write_scan_outputs(results: ScanResults, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write scan.csv, scan.json and scan.html into ``out_dir`` as one set (replacing an earlier run's).

    scan.csv is formatted in a worker thread (Arrow's writer releases the GIL) while this one renders
    scan.json and scan.html.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evstudy-csv") as pool:
        csv_text = pool.submit(scan_csv, results)
        contents = {
            "scan.json": scan_json(results).encode("utf-8"),
            "scan.html": render_scan_html(results).encode("utf-8"),
        }
        contents = {"scan.csv": csv_text.result(), **contents}
    return write_output_set(out_dir, contents, command="scan")


def scan_summary_text(results: ScanResults, *, top: int = 10, highlights: int = 15) -> str:
    """Day 0, the filter funnel, the highlighted tickers' ranks and the top day-0 movers, as plain text."""
    n = results.n_ranked
    lines = [
        results.timeline.mapping,
        f"{n:,} of {results.n_tickers:,} tickers ranked by day-0 abnormal return "
        f"({results.config.model} model vs {results.config.benchmark})",
        "",
        "Filters (in order):",
    ]
    for row in results.funnel_rows():
        lines.append(f"  {row['filter']:<15} removed {row['removed']:>6,}   left {row['remaining']:>6,}")
    data_notes = results.provenance.get("notes", [])
    if data_notes:  # e.g. names in the price file that are not ticker symbols, left out before the funnel
        lines += ["", "Price data:", *(f"  {note}" for note in data_notes)]
    if results.highlight_rows:
        lines += ["", "Highlighted tickers:"]
        for values in results.highlight_rows[:highlights]:
            row = dict(zip(HIGHLIGHT_COLUMNS, values))
            if row["status"] == "ranked":
                lines.append(
                    f"  {row['ticker']:<8} rank {int(row['rank']):>6,} of {n:,} (top {row['percentile']:.2f}%), "
                    f"day-0 AR {row['ar_day0'] * 100:+.2f}%"
                )
            else:
                lines.append(f"  {row['ticker']:<8} not ranked: {row['reason']}")
        if len(results.highlight_rows) > highlights:
            lines.append(f"  ... and {len(results.highlight_rows) - highlights} more (scan.json, scan.html)")
    lines += ["", f"Top {min(top, n)} by day-0 abnormal return:"]
    columns = results.columns
    has_q = f"q_{DAY0_KEY}" in columns
    shown = {name: columns[name][:top].tolist() for name in ("rank", "ticker", "ar_day0", f"q_{DAY0_KEY}") if name in columns}
    for row in (dict(zip(shown, values)) for values in zip(*shown.values())):
        q = f"  q {row[f'q_{DAY0_KEY}']:.2g}" if has_q else ""
        lines.append(f"  {row['rank']:>4}  {row['ticker']:<8} AR {row['ar_day0'] * 100:+8.2f}%{q}")
    return "\n".join(lines)
