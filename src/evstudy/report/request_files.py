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

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from evstudy.firm_events import CAR_FILE_COLUMNS, GROUP_COLUMNS, REQUEST_TEST_COLUMNS, RequestResults
from evstudy.report.request_html import render_request_html
from evstudy.report.writing import neutralize_formula_columns, table_csv, write_output_set
from evstudy.requests import EXCLUDED_COLUMNS

REQUEST_OUTPUT_FILES = (
    "report.html", "results.json", "cars.parquet", "cars.csv", "groups.csv", "tests.csv", "excluded.csv",
)
CSV_PARTS = 2  # slices of cars.csv's rows formatted at once (this machine has 2 cores)


def request_results_json(results: RequestResults) -> str:
    """results.json text; refuses NaN/inf so none can leak into the contract."""
    return json.dumps(results.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)


def _cars_table(results: RequestResults) -> pa.Table:
    """cars.parquet's table: ``results.car_table`` with dates as dates, and the pandas metadata of ``results.cars``.

    The metadata (taken from an empty frame, so the 6·10^5-row frame is never
    built) makes ``pd.read_parquet`` give back the notebook's column types.
    """
    table = results.car_table
    schema = pa.Schema.from_pandas(results.car_table.slice(0, 0).to_pandas(), preserve_index=False)
    for name in ("date", "day0"):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, pa.field(name, pa.date32()), table.column(name).cast(pa.date32()))
    return table.replace_schema_metadata(schema.metadata)


class _Chunks:
    """A write-only file that keeps what is written as a list of bytes (one per Arrow batch, ~200 KB).

    A 60 MB ``io.BytesIO`` is one fresh memory map, every page of it a page
    fault (~15,000 per slice of cars.csv at 10^5 firm-events); chunks this size
    come from the heap, where the CLI keeps the blocks' freed memory for reuse.
    """

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _csv_part(cars: pa.Table, header: bool) -> list[bytes]:
    """Rows of cars.csv from rows of cars.parquet's ``cars``, by Arrow's C++ writer (pandas' to_csv formats
    ~6 M cells in Python), as consecutive chunks of the file.

    Text cells are neutralized (:func:`~evstudy.report.writing.neutralize_formula_columns`); numbers are written in
    their shortest round-trip form, missing ones as empty cells, dates as
    YYYY-MM-DD: the cells a spreadsheet or ``pd.read_csv`` reads back as the
    same values.
    """
    out = _Chunks()
    pa_csv.write_csv(neutralize_formula_columns(cars), out, pa_csv.WriteOptions(quoting_style="needed", include_header=header))
    return out.parts


def _parquet(table: pa.Table) -> bytes:
    """cars.parquet's bytes, zstd; dictionary pages only for columns that repeat (text, dates, integers).

    Text, dates and counts take few values (a firm-event's repeat on its row of
    every window), so a dictionary shrinks them; floats are nearly all distinct,
    and trying a dictionary for them first (Arrow's default) took a third of the
    encoding time and gave a larger file. The table read back is the same.
    """
    repeating = [field.name for field in table.schema if not pa.types.is_floating(field.type)]
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", use_dictionary=repeating)
    return out.getvalue()


def write_request_outputs(results: RequestResults, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write every output file into ``out_dir`` as one set (replacing an earlier run's); return their paths.

    cars.parquet and cars.csv (in :data:`CSV_PARTS` slices of rows, written one
    after the other: the bytes of one pass) are encoded by Arrow, which
    releases the GIL, in other threads while this one computes the group
    statistics and renders the report and the small files. The slices are not
    joined into one buffer: at 10^5 firm-events that copy touched 120 MB of
    fresh pages (~29,000 page faults) on this thread.
    """
    cars = _cars_table(results).select(CAR_FILE_COLUMNS)
    step = max(-(-cars.num_rows // CSV_PARTS), 1)
    starts = range(0, max(cars.num_rows, 1), step)
    with ThreadPoolExecutor(max_workers=1 + len(starts)) as pool:
        parquet = pool.submit(_parquet, cars)
        csv = [pool.submit(_csv_part, cars.slice(start, step), start == 0) for start in starts]
        small = {
            "groups.csv": table_csv(results.groups[GROUP_COLUMNS]).encode("utf-8"),
            "tests.csv": table_csv(results.tests[REQUEST_TEST_COLUMNS]).encode("utf-8"),
            "excluded.csv": table_csv(results.excluded[EXCLUDED_COLUMNS]).encode("utf-8"),
            "results.json": request_results_json(results).encode("utf-8"),
            "report.html": render_request_html(results).encode("utf-8"),
        }
        chunks = [chunk for part in csv for chunk in part.result()]
        contents = {"cars.parquet": parquet.result(), "cars.csv": chunks, **small}
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
