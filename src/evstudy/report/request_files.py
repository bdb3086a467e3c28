"""Write a request-file study's outputs.

cars.parquet, cars.csv, groups.csv, tests.csv, excluded.csv, results.json, report.html.

The files are written as one set (:func:`evstudy.report.writing.write_output_set`):
``--out`` holds this run's complete set or the previous one, never a mix. Text
cells of the CSVs are neutralized against spreadsheet formulas. cars.parquet and
cars.csv hold one row per firm-event and window, keyed by event_id and ticker.
"""

from __future__ import annotations

import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from evstudy.firm_events import CAR_FILE_COLUMNS, GROUP_COLUMNS, REQUEST_TEST_COLUMNS, RequestResults
from evstudy.report.request_html import render_request_html
from evstudy.report.writing import neutralize_formula_cells, table_csv, write_output_set
from evstudy.requests import EXCLUDED_COLUMNS

REQUEST_OUTPUT_FILES = (
    "report.html", "results.json", "cars.parquet", "cars.csv", "groups.csv", "tests.csv", "excluded.csv",
)
CSV_PARTS = 2  # slices of cars.csv's rows formatted at once (this machine has 2 cores)


def request_results_json(results: RequestResults) -> str:
    """results.json text; refuses NaN/inf so none can leak into the contract."""
    return json.dumps(results.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)


def _cars_table(frame: pd.DataFrame) -> pa.Table:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    dates = [pa.field(name, pa.date32()) for name in ("date", "day0")]
    return table.set_column(2, dates[0], table.column("date").cast(pa.date32())).set_column(
        3, dates[1], table.column("day0").cast(pa.date32()))


def _csv_table(frame: pd.DataFrame, table: pa.Table) -> pa.Table:
    """cars.csv's cells: cars.parquet's ``table`` of ``frame``, with formula-leading text neutralized.

    Text columns that hold a cell a spreadsheet would run as a formula are
    replaced by their neutralized cells (:func:`neutralize_formula_cells`);
    the others are the table's columns as they are.
    """
    text = [name for name in frame.columns if pd.api.types.is_object_dtype(frame[name].dtype)
            or pd.api.types.is_string_dtype(frame[name].dtype)]
    safe = neutralize_formula_cells(frame[text])
    for name in text:
        if safe[name].dtype == frame[name].dtype and not pd.api.types.is_object_dtype(frame[name].dtype):
            continue  # unchanged (a changed column comes back as Python objects)
        column = pa.array(safe[name].to_numpy(dtype=object), type=pa.string(), from_pandas=True)
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def _csv_part(table: pa.Table, header: bool) -> bytes:
    """Rows of cars.csv by Arrow's C++ writer (pandas' to_csv formats ~6 M cells in Python).

    Numbers are written in their shortest round-trip form, missing ones as
    empty cells, dates as YYYY-MM-DD: the cells a spreadsheet or
    ``pd.read_csv`` reads back as the same values.
    """
    out = io.BytesIO()
    pa_csv.write_csv(table, out, pa_csv.WriteOptions(quoting_style="needed", include_header=header))
    return out.getvalue()


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def write_request_outputs(results: RequestResults, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write every output file into ``out_dir`` as one set (replacing an earlier run's); return their paths.

    cars.parquet and cars.csv (in :data:`CSV_PARTS` slices of rows, joined in
    order: the bytes of one pass) are encoded by Arrow's writers, which
    release the GIL, in other threads while this one renders the report and
    the small files.
    """
    frame = results.cars[CAR_FILE_COLUMNS]
    cars = _cars_table(frame)
    csv_table = _csv_table(frame, cars)
    step = max(-(-csv_table.num_rows // CSV_PARTS), 1)
    starts = range(0, max(csv_table.num_rows, 1), step)
    with ThreadPoolExecutor(max_workers=1 + len(starts)) as pool:
        parquet = pool.submit(_parquet, cars)
        csv = [pool.submit(_csv_part, csv_table.slice(start, step), start == 0) for start in starts]
        small = {
            "groups.csv": table_csv(results.groups[GROUP_COLUMNS]).encode("utf-8"),
            "tests.csv": table_csv(results.tests[REQUEST_TEST_COLUMNS]).encode("utf-8"),
            "excluded.csv": table_csv(results.excluded[EXCLUDED_COLUMNS]).encode("utf-8"),
            "results.json": request_results_json(results).encode("utf-8"),
            "report.html": render_request_html(results).encode("utf-8"),
        }
        contents = {"cars.parquet": parquet.result(), "cars.csv": b"".join(part.result() for part in csv), **small}
    return write_output_set(out_dir, contents, command="run")


def request_summary_text(results: RequestResults) -> str:
    """A few lines for the terminal: counts and, per group, the CAAR and p-values of the first window."""
    window = results.config.windows[0]
    groups = results.groups
    head = groups[(groups["window_start"] == window.start) & (groups["window_end"] == window.end)]
    tests = results.tests.set_index(["group", "window_start", "window_end", "test"])["p_value"]
    lines = [
        f"{len(results.firm_events):,} firm-events measured of {results.n_rows:,} rows "
        f"({len(results.excluded):,} excluded: see excluded.csv)",
        f"CAAR {window.label} per group (p: cross-sectional t / BMP / BMP clustered by day 0):",
    ]
    for r in head.to_dict(orient="records"):
        ps = [tests.get((r["group"], window.start, window.end, t)) for t in ("cs_t", "bmp_t", "clustered_bmp_t")]
        shown = " / ".join("–" if p is None or p != p else f"{p:.4f}" for p in ps)
        lines.append(f"  {r['group']}: N={r['n']:,}  CAAR {r['caar'] * 100:+.3f}%  p {shown}")
    return "\n".join(lines)
