"""Write a run's outputs: report.html, results.json, abnormal_returns.csv, cars.csv, tests.csv (+ comparisons.csv).

The files are written as one set (:func:`evstudy.report.writing.write_output_set`):
``--out`` holds this run's complete set or the previous one, never a mix. A
report.html over ``max_report_bytes`` (e.g. 5,000 ad hoc tickers make ~250 MB
that a browser needs minutes for) is replaced by a summary page saying why and
where the full data is.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from markupsafe import escape

from evstudy.compare import COMPARISON_COLUMNS
from evstudy.report.html import render_html
from evstudy.report.terminal import summary_text
from evstudy.report.writing import neutralize_formula_cells, table_csv, write_output_set
from evstudy.results import (
    AR_COLUMNS, CAR_COLUMNS, TEST_COLUMNS, ColumnTable, StudyResults, cleans_to_finite, column_table,
)

OUTPUT_FILES = ("report.html", "results.json", "abnormal_returns.csv", "cars.csv", "tests.csv")
MAX_REPORT_MB = 50


def results_json(results: StudyResults) -> bytes:
    """results.json as written (UTF-8); refuses NaN/inf so none can leak into the contract.

    Each table's JSON-ready columns and row dicts are built when the encoder reaches it (:class:`FrameTable`),
    so one table's are held at a time, not every table's (~50 MB of Python objects at 200 events).
    """
    return json_bytes(results.to_dict(table=FrameTable))


@dataclass(frozen=True)
class FrameTable:
    """A table for :func:`json_bytes`, written as :func:`~evstudy.results.records` of ``frame``, built when written."""

    frame: pd.DataFrame


def json_bytes(value: Any) -> bytes:
    """``value`` as JSON indented by 2 (UTF-8), encoded by orjson; a :class:`~evstudy.results.ColumnTable`
    or :class:`FrameTable` is written as the row dicts it stands for.

    Loads back to what ``json.dumps(value, indent=2, allow_nan=False, ensure_ascii=False)`` loads to: the
    same keys in the same order, every float bit for bit (orjson spells it in its shortest round-trip
    digits, e.g. ``1e-7``, ``0.0001`` where json writes ``1e-07``, ``0.0001``). NaN and ±inf are refused,
    as json's ``allow_nan=False`` refuses them and with its error (orjson would write null); anything
    orjson cannot encode (an int beyond 64 bits, a non-string key, a type it does not know) goes through
    ``json.dumps`` itself, so its text and its errors are json's. The stdlib indents in pure Python:
    ~0.5 CPU s for the 38 MB of a 200-event catalogue, orjson ~0.14 s (benchmarks/README.md, ninth round).
    """
    if not _all_finite(value):
        return _stdlib_json(value)  # raises json's ValueError for the NaN or inf
    try:
        return orjson.dumps(value, default=_records, option=orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATACLASS)
    except orjson.JSONEncodeError:
        return _stdlib_json(value)


def _stdlib_json(value: Any) -> bytes:
    return json.dumps(value, indent=2, allow_nan=False, ensure_ascii=False, default=_records).encode("utf-8")


def _records(value: Any) -> list[dict[str, Any]]:
    """A ColumnTable's or FrameTable's row dicts, for the encoders' ``default``; anything else refused with json's
    message."""
    if isinstance(value, ColumnTable):
        return value.records()
    if isinstance(value, FrameTable):
        return column_table(value.frame).records()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _all_finite(value: Any) -> bool:
    """False if a float anywhere in ``value`` (dicts, lists, tuples, ColumnTable columns, FrameTables) is NaN
    or ±inf.

    The floats of a list (or of a dict's values) are finite when their sum is, so its values are looked at
    one by one only when some are nested values or other types, or the sum is not finite (a NaN or inf, or
    finite values that overflow together). A table whose columns' types clean every NaN to None
    (:func:`~evstudy.results.cleans_to_finite`) is not looked into."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, ColumnTable):
        return all(map(_all_finite, value.columns))
    if isinstance(value, FrameTable):
        return cleans_to_finite(value.frame) or _all_finite(column_table(value.frame))
    if isinstance(value, dict):
        value = list(value.values())
    elif not isinstance(value, (list, tuple)):
        return True
    kinds = set(map(type, value))
    if kinds <= _NO_FLOATS:
        return True
    if kinds <= _PLAIN:
        numbers = value if kinds <= _NUMBERS else [v for v in value if type(v) is float]
        try:
            if math.isfinite(sum(filter(None, numbers))):
                return True
        except OverflowError:  # an int beyond a float's range
            pass
    return all(map(_all_finite, value))


_NO_FLOATS = {str, int, bool, type(None)}
_NUMBERS = {float, int, bool, type(None)}
_PLAIN = {float, str, int, bool, type(None)}


def with_baskets(frame: pd.DataFrame, memberships: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (one row per event, ticker, benchmark, ...) with a last column ``baskets``: the baskets the
    ticker belongs to in that event under that benchmark, joined by "; " (one cell, spreadsheet-friendly:
    a ticker in two baskets keeps one row per window, not two)."""
    keys = ["event", "ticker", "benchmark"]
    joined: dict[tuple, list[str]] = {}  # in order of first appearance, as groupby(sort=False) gives them
    for *key, basket in zip(*(memberships[name].tolist() for name in [*keys, "basket"])):
        if not any(pd.isna(part) for part in key):  # groupby's dropna: no row for a missing key
            joined.setdefault(tuple(key), []).append(basket)
    # a dict, not groupby().agg("; ".join): pandas calls the join once per group in Python (0.1 s at 8,000)
    named = pd.DataFrame([(*key, "; ".join(baskets)) for key, baskets in joined.items()], columns=[*keys, "baskets"])
    named = named.astype({key: memberships[key].dtype for key in keys})
    out = frame.merge(named, on=keys, how="left")
    out["baskets"] = out["baskets"].fillna("")
    return out


def csv_sources(results: StudyResults) -> dict[str, ArrowCsv | bytes]:
    """The run's CSVs, name -> its :class:`ArrowCsv` still to encode (or the bytes pandas wrote for a table Arrow
    cannot): abnormal_returns.csv, cars.csv, tests.csv (+ comparisons.csv for multi-basket studies)."""
    tables: dict[str, tuple[pd.DataFrame, str | None]] = {
        "abnormal_returns.csv": (with_baskets(results.abnormal_returns[AR_COLUMNS], results.memberships), "%Y-%m-%d"),
        "cars.csv": (with_baskets(results.cars[CAR_COLUMNS], results.memberships), None),
        "tests.csv": (results.tests[TEST_COLUMNS], None),
    }
    comparison = results.extras.get("comparisons")
    if comparison is not None:  # multi-basket studies: the pairwise basket comparison
        tables["comparisons.csv"] = (comparison.pairs[COMPARISON_COLUMNS], None)
    return {name: _csv_source(frame, date_format) for name, (frame, date_format) in tables.items()}


def _csv_source(frame: pd.DataFrame, date_format: str | None) -> ArrowCsv | bytes:
    source = ArrowCsv.of(frame, date_format=date_format)
    if source is not None:
        return source
    return table_csv(frame, date_format=date_format).encode("utf-8")  # None: pandas' default


def encode_csvs(sources: Mapping[str, ArrowCsv | bytes]) -> dict[str, bytes]:
    """The bytes of every CSV of :func:`csv_sources` (Arrow encodes; pandas' text is already bytes)."""
    return {name: source.encode() if isinstance(source, ArrowCsv) else source for name, source in sources.items()}


def write_outputs(
    results: StudyResults,
    out_dir: str | os.PathLike[str],
    *,
    max_report_bytes: int = MAX_REPORT_MB * 1_000_000,
    command: str = "run",
    xlsx: bool = False,
    extra: Mapping[str, bytes] | None = None,
) -> dict[str, Path]:
    """Write every output file into ``out_dir`` as one set (replacing an earlier run's); return their paths.

    With ``xlsx``, also results.xlsx: the same tables in one workbook (:func:`xlsx_workbook`);
    ``extra`` adds files of the command's own (compare's compare.html) to the same set.
    The CSVs are encoded by Arrow (which releases the GIL) in another thread while this one
    builds results.json and report.html; an error there is raised here, before anything is written.
    """
    sources = csv_sources(results)
    with ThreadPoolExecutor(max_workers=1) as pool:
        csvs = pool.submit(encode_csvs, sources)
        data = {"results.json": results_json(results)}
        report = render_html(results).encode("utf-8")
        if xlsx:
            data["results.xlsx"] = xlsx_workbook(result_tables(results))
        data.update(csvs.result())
    data.update(extra or {})
    data["report.html"] = capped_report(results, report, sorted(data), max_report_bytes)
    return write_output_set(out_dir, data, command=command)


_CSV_SPECIAL = (",", '"', "\r", "\n")
_QUOTE, _COMMA = "\x1e", "\x1f"  # stand-ins Arrow's unquoted writer accepts, swapped for '"' and ',' after encoding


class ArrowCsv:
    """A table's CSV cells as an Arrow table, encoded by :meth:`encode` (Arrow's C++ writer, which releases the GIL).

    The text is :func:`~evstudy.report.writing.table_csv`'s — formula cells neutralized, a
    header line, no index, text quoted only where it holds a comma or a quote (inner quotes
    doubled), a missing value an empty cell, booleans ``True``/``False``, dates
    ``YYYY-MM-DD`` — except that a float is written as Arrow writes it: the shortest digits that
    read back as the same double, in places spelled otherwise than Python's ``repr``
    (``1e-7``, ``0.00006879433969241049``, ``1``, ``-0`` where Python writes ``1e-07``,
    ``6.879433969241049e-05``, ``1.0``, ``-0.0``): the same value, bit for bit, when read back. Built in the calling thread (pandas holds the GIL); :meth:`encode`
    may then run in another while this one works.
    """

    def __init__(self, table: pa.Table, header: str, quoted: bool) -> None:
        self.table, self.header, self.quoted = table, header, quoted

    @classmethod
    def of(cls, frame: pd.DataFrame, *, date_format: str | None = None) -> ArrowCsv | None:
        """``frame``'s cells, or None if a column is not plain (float64, int64, bool, text without a line
        break, datetime64 with ``date_format="%Y-%m-%d"``), a name needs quoting, or the table is empty
        or of one column (pandas quotes a row of one empty cell): pandas writes those."""
        safe = neutralize_formula_cells(frame)
        if not len(safe) or safe.shape[1] < 2 or any(not isinstance(name, str) or any(ch in name for ch in (*_CSV_SPECIAL, _QUOTE, _COMMA))
               for name in safe.columns):
            return None
        columns, quoted = [], False
        for i in range(safe.shape[1]):
            cells = _arrow_column(safe.iloc[:, i], date_format)
            if cells is None:
                return None
            array, needs_quotes = cells
            columns.append(array)
            quoted = quoted or needs_quotes
        table = pa.Table.from_arrays(columns, names=[f"c{i}" for i in range(len(columns))])
        return cls(table, ",".join(safe.columns) + os.linesep, quoted)

    def encode(self) -> bytes:
        """The CSV bytes (header line first)."""
        out = io.BytesIO()
        out.write(self.header.encode("utf-8"))
        options = pa_csv.WriteOptions(
            include_header=False, quoting_style="none", eol=os.linesep, delimiter=_COMMA if self.quoted else ","
        )
        pa_csv.write_csv(self.table, out, options)
        text = out.getvalue()
        if self.quoted:
            text = text.replace(_COMMA.encode(), b",").replace(_QUOTE.encode(), b'"')
        return text


def _arrow_column(column: pd.Series, date_format: str | None) -> tuple[pa.Array, bool] | None:
    """One column's cells for :class:`ArrowCsv` and whether a text cell is quoted; None if not a plain column."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype.itemsize == 8:
        return pa.array(column.to_numpy(), from_pandas=True), False  # NaN: null, an empty cell
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return pa.array(column.to_numpy()), False
    if isinstance(dtype, np.dtype) and dtype.kind == "b":
        return pa.array(np.array(["False", "True"])[column.to_numpy().astype(np.intp)]), False
    if isinstance(dtype, np.dtype) and dtype.kind == "M" and date_format == "%Y-%m-%d":
        values = column.to_numpy()
        return pa.array(values.astype("datetime64[D]"), type=pa.date32(), mask=np.isnat(values)), False
    if isinstance(dtype, pd.StringDtype) or (isinstance(dtype, np.dtype) and dtype.kind == "O"):
        codes, uniques = pd.factorize(column)  # few distinct texts (tickers, baskets): each checked and quoted once
        texts = uniques.tolist()
        if not all(type(text) is str for text in texts):
            return None
        joined = "".join(texts)
        if any(ch in joined for ch in ("\r", "\n", _QUOTE, _COMMA)):
            return None
        quoted = "," in joined or '"' in joined
        if quoted:  # csv.QUOTE_MINIMAL, as pandas writes: quoted, inner quotes doubled
            quote = _QUOTE  # the delimiter is then the stand-in, so a comma inside a cell is plain text to Arrow
            texts = [quote + text.replace('"', quote * 2) + quote if "," in text or '"' in text else text for text in texts]
        indices = pa.array(codes, mask=codes < 0)  # -1: missing, an empty cell
        return pa.array(texts, type=pa.string()).take(indices), quoted
    return None


def capped_report(results: StudyResults, report: bytes, data_files: list[str], max_bytes: int) -> bytes:
    """``report`` if it is at most ``max_bytes``; else a summary page, with a warning saying so.

    The summary page holds the terminal summary (day 0, the headline CARs and
    tests, exclusions) and names the files holding every number.
    """
    if len(report) <= max_bytes:
        return report
    size, cap = f"{len(report) / 1e6:,.3g}", f"{max_bytes / 1e6:,.3g}"
    files = ", ".join(data_files)
    warnings.warn(
        f"the full report.html would be {size} MB, over the {cap} MB a browser opens comfortably: "
        f"wrote a summary-only report.html instead; every number is in {files} "
        f"(raise the cap with --max-report-mb to write the full report anyway)",
        stacklevel=2,
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(results.config.name)}: summary report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}}
.note{{background:#fff4d6;border:1px solid #e0b84c;padding:.8rem 1rem;border-radius:4px}}
pre{{overflow-x:auto;font-size:.85rem}}</style></head>
<body><h1>{escape(results.config.name)}</h1>
<p class="note"><strong>Summary only.</strong> The full report would be {size} MB, more than the
{cap} MB cap (browsers need minutes for pages that large). Every number is in the files next to
this one: {escape(files)}. Rerun with a higher <code>--max-report-mb</code> to write the full report.</p>
<pre>{escape(summary_text(results))}</pre>
</body></html>
"""
    return page.encode("utf-8")


XLSX_SHEET_CHARS = 31  # Excel's limit on a sheet name
XLSX_ABOUT = [
    "Returns, abnormal returns, CARs, CAARs, standard errors and differences are decimals: 0.05 = 5%.",
    "p-values are two-sided, between 0 and 1. An empty cell is a number that could not be computed (see 'note').",
    "window_start/window_end and rel_day count trading days from day 0 (the first session that could react).",
    "baskets (cars, abnormal_returns): every basket holding the ticker in that event under that benchmark.",
    "One sheet per table of the run; the same tables as the CSV files and results.json.",
]


def result_tables(results: StudyResults) -> dict[str, pd.DataFrame]:
    """The tables of a run, by sheet name, in the order an analyst reads them (what results.xlsx holds)."""
    tables = {
        "about": pd.DataFrame({"note": XLSX_ABOUT}),
        "baskets": results.baskets,
        "tests": results.tests[TEST_COLUMNS],
        "cars": with_baskets(results.cars[CAR_COLUMNS], results.memberships),
        "abnormal_returns": with_baskets(results.abnormal_returns[AR_COLUMNS], results.memberships),
        "fits": results.fits,
        "exclusions": results.exclusions,
        "diagnostics": results.diagnostics,
        "drift": results.drift,
        "bhars": results.bhars,
    }
    comparison = results.extras.get("comparisons")
    if comparison is not None:
        tables["comparisons"] = comparison.pairs[COMPARISON_COLUMNS]
        tables["basket_ci"] = comparison.baskets
    return tables


def xlsx_workbook(tables: Mapping[str, pd.DataFrame]) -> bytes:
    """``tables`` as one Excel workbook (the bytes of results.xlsx), one sheet per table.

    Sheet names are the keys (cut to Excel's 31 characters); missing values are
    empty cells, dates real Excel dates; the header row is frozen and each
    column sized to its header, so every sheet opens readable.
    """
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        for name, frame in tables.items():
            sheet = name[:XLSX_SHEET_CHARS]
            neutralize_formula_cells(frame).to_excel(writer, sheet_name=sheet, index=False, na_rep="")
            worksheet = writer.sheets[sheet]
            worksheet.freeze_panes = "A2"
            for column, header in zip(worksheet.iter_cols(min_row=1, max_row=1), frame.columns):
                worksheet.column_dimensions[column[0].column_letter].width = max(10, len(str(header)) + 2)
    return buffer.getvalue()
