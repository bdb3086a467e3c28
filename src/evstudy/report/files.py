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
from collections.abc import Mapping
from json.encoder import encode_basestring as _encode_string  # the C encoder json.dumps uses (ensure_ascii=False)
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import escape

from evstudy.compare import COMPARISON_COLUMNS
from evstudy.report.html import render_html
from evstudy.report.terminal import summary_text
from evstudy.report.writing import neutralize_formula_cells, table_csv, write_output_set
from evstudy.results import AR_COLUMNS, CAR_COLUMNS, TEST_COLUMNS, ColumnTable, StudyResults, column_table

OUTPUT_FILES = ("report.html", "results.json", "abnormal_returns.csv", "cars.csv", "tests.csv")
MAX_REPORT_MB = 50


def results_json(results: StudyResults) -> str:
    """results.json text; refuses NaN/inf so none can leak into the contract."""
    return json_text(results.to_dict(table=column_table))


def json_text(value: Any) -> str:
    """``json.dumps(value, indent=2, allow_nan=False, ensure_ascii=False)``, the same text, faster for tables.

    The standard library indents in pure Python, one generator step per value (~1.2 s for the 35 MB
    of a 5,000-ticker study). A table — a list of dicts with the same string keys and scalar
    values, what :func:`evstudy.results.records` gives — is written here column by column
    (``float.__repr__`` and the C string encoder, as json uses) into one row template;
    anything else, and any column holding a value json would refuse (NaN, inf, an unknown type),
    goes through ``json.dumps`` itself, so its text and its errors are json's. A
    :class:`~evstudy.results.ColumnTable` is written as the row dicts it stands for.
    """
    return _json_text(value, 0)


_SCALARS = (str, int, float, bool, type(None))
_NUMBERS = {int, float, bool, type(None)}


def _json_text(value: Any, level: int) -> str:
    inner = "\n" + "  " * (level + 1)
    if isinstance(value, ColumnTable):
        distinct = value.rows and value.names and len(set(value.names)) == len(value.names)
        text = _columns_text(value.names, value.columns, level + 1) if distinct else None
        return text if text is not None else _json_text(value.records(), level)
    if isinstance(value, dict) and value and all(type(key) is str for key in value):
        items = [f"{_encode_string(key)}: {_json_text(item, level + 1)}" for key, item in value.items()]
        return _wrap("{", inner, items, level, "}")
    if isinstance(value, (list, tuple)) and value:
        table = _table_text(value, level + 1)
        if table is not None:
            return table
        scalars = _column_text(value) if all(type(item) in _SCALARS for item in value) else None
        items = scalars if scalars is not None else [_json_text(item, level + 1) for item in value]
        return _wrap("[", inner, items, level, "]")
    if type(value) in _SCALARS:
        column = _column_text([value])
        if column is not None:
            return column[0]
    return json.dumps(value, indent=2, allow_nan=False, ensure_ascii=False).replace("\n", "\n" + "  " * level)


def _table_text(rows: list[Any] | tuple[Any, ...], level: int) -> str | None:
    """A list of same-keyed dicts of scalars as json.dumps indents it at ``level``; None if it is not one."""
    first = rows[0]
    if not isinstance(first, dict) or not first or not all(type(key) is str for key in first):
        return None
    keys = tuple(first)
    if not all(type(row) is dict and tuple(row) == keys for row in rows):
        return None
    return _columns_text(list(keys), [[row[key] for row in rows] for key in keys], level)


def _columns_text(keys: list[Any], values: list[list[Any]], level: int) -> str | None:
    """Rows given column by column (``values``, one list per key) as json.dumps indents them; None if it cannot."""
    if not all(type(key) is str for key in keys):
        return None
    columns = []
    for column_values in values:
        column = _column_text(column_values)
        if column is None:
            return None
        columns.append(column)
    pad = "  " * level
    template = "{\n" + ",\n".join(
        f"{pad}  {_encode_string(key).replace('%', '%%')}: %s" for key in keys
    ) + f"\n{pad}}}"
    return _wrap("[", f"\n{pad}", [template % cells for cells in zip(*columns)], level - 1, "]")


def _wrap(opening: str, inner: str, items: list[str], level: int, closing: str) -> str:
    """``items`` one per line between the brackets, as json.dumps indents them; the (often megabytes of)
    text copied once, not once per concatenation."""
    return "".join([opening, inner, ("," + inner).join(items), "\n", "  " * level, closing])


def _column_text(values: list[Any]) -> list[str] | None:
    """Each scalar's JSON text as json writes it, or None if one is not a plain finite scalar."""
    kinds = set(map(type, values))
    if kinds <= {str}:
        return list(map(_encode_string, values))
    if kinds <= _NUMBERS:  # json's C encoder writes these as its Python one does; no comma inside a number
        try:
            return json.dumps(values, allow_nan=False)[1:-1].split(", ")
        except ValueError:  # NaN or inf: json.dumps itself raises with its message
            return None
    if not kinds <= set(_SCALARS):
        return None
    out = []
    for value in values:
        kind = type(value)
        if kind is str:
            out.append(_encode_string(value))
        elif value is None:
            out.append("null")
        elif kind is bool:
            out.append("true" if value else "false")
        elif kind is int:
            out.append(int.__repr__(value))
        elif math.isfinite(value):
            out.append(float.__repr__(value))
        else:
            return None
    return out


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


def data_files(results: StudyResults, *, xlsx: bool = False) -> dict[str, bytes]:
    """Every output of a run but report.html, name -> bytes: results.json, the CSVs (and results.xlsx)."""
    data = {
        "results.json": results_json(results).encode("utf-8"),
        "abnormal_returns.csv": fast_table_csv(
            with_baskets(results.abnormal_returns[AR_COLUMNS], results.memberships), date_format="%Y-%m-%d"
        ).encode("utf-8"),
        "cars.csv": fast_table_csv(with_baskets(results.cars[CAR_COLUMNS], results.memberships)).encode("utf-8"),
        "tests.csv": fast_table_csv(results.tests[TEST_COLUMNS]).encode("utf-8"),
    }
    comparison = results.extras.get("comparisons")
    if comparison is not None:  # multi-basket studies: the pairwise basket comparison
        data["comparisons.csv"] = table_csv(comparison.pairs[COMPARISON_COLUMNS]).encode("utf-8")
    if xlsx:
        data["results.xlsx"] = xlsx_workbook(result_tables(results))
    return data


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
    """
    data = data_files(results, xlsx=xlsx)
    data.update(extra or {})
    data["report.html"] = capped_report(results, render_html(results).encode("utf-8"), sorted(data), max_report_bytes)
    return write_output_set(out_dir, data, command=command)


_CSV_SPECIAL = (",", '"', "\r", "\n")


def fast_table_csv(frame: pd.DataFrame, *, date_format: str | None = None) -> str:
    """:func:`~evstudy.report.writing.table_csv` of ``frame``: the same text, column by column for plain tables.

    pandas formats each float with NumPy's ``astype(str)`` (~1 µs a value: 0.5 s for the 315,000 of a
    5,000-ticker abnormal_returns.csv); ``float.__repr__`` gives the same digits several times faster.
    Only tables whose every column is float64, int64, bool, text without a line break (a comma or
    a quote is quoted as pandas quotes it), or (with ``date_format="%Y-%m-%d"``) datetime64 are
    written here; any other goes to pandas, as do empty and one-column tables.
    """
    safe = neutralize_formula_cells(frame)
    if len(safe) and safe.shape[1] > 1 and not any(
        not isinstance(name, str) or any(ch in name for ch in _CSV_SPECIAL) for name in safe.columns
    ):
        columns = [_csv_column(safe.iloc[:, i], date_format) for i in range(safe.shape[1])]
        if all(column is not None for column in columns):
            lines = [",".join(safe.columns), *map(",".join, zip(*columns))]
            return os.linesep.join(lines) + os.linesep
    return table_csv(frame, date_format=date_format) if date_format else table_csv(frame)


def _csv_column(column: pd.Series, date_format: str | None) -> list[str] | None:
    """One column's CSV cells as pandas' writer gives them (missing values empty), or None if not a plain column."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype.itemsize == 8:
        values = column.to_numpy()
        cells = json.dumps(values.tolist())[1:-1].split(", ")  # json writes finite floats with float.__repr__
        for position in np.flatnonzero(~np.isfinite(values)).tolist():
            value = values[position]
            cells[position] = "" if np.isnan(value) else ("inf" if value > 0 else "-inf")
        return cells
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return list(map(str, column.to_numpy().tolist()))
    if isinstance(dtype, np.dtype) and dtype.kind == "b":
        return list(map(str, column.to_numpy().tolist()))
    if isinstance(dtype, np.dtype) and dtype.kind == "M" and date_format == "%Y-%m-%d":
        values = column.to_numpy()
        cells = np.datetime_as_string(values.astype("datetime64[D]"), unit="D").tolist()
        for position in np.flatnonzero(np.isnat(values)).tolist():
            cells[position] = ""
        return cells
    if isinstance(dtype, pd.StringDtype):  # few distinct texts (tickers, baskets): each checked and quoted once
        codes, uniques = pd.factorize(column)
        texts = _csv_texts(uniques.tolist())
        return None if texts is None else np.array([*texts, ""], dtype=object)[codes].tolist()  # -1: missing
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        return _csv_texts(["" if value is None else value for value in column.to_numpy().tolist()])
    return None


def _csv_texts(cells: list[Any]) -> list[str] | None:
    """Text cells as pandas' writer gives them, or None if one is not text or holds a line break."""
    joined = "".join(cells) if all(type(cell) is str for cell in cells) else None
    if joined is None or "\r" in joined or "\n" in joined:
        return None
    if "," in joined or '"' in joined:  # csv.QUOTE_MINIMAL, as pandas writes: quoted, inner quotes doubled
        cells = [f'"{cell.replace(chr(34), chr(34) * 2)}"' if "," in cell or '"' in cell else cell for cell in cells]
    return cells


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
