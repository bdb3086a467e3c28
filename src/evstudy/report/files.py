"""Write a run's outputs: report.html, results.json, abnormal_returns.csv, cars.csv, tests.csv (+ comparisons.csv).

Each file is written to a temporary name in the output folder and renamed into
place, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from evstudy.compare import COMPARISON_COLUMNS
from evstudy.report.html import render_html
from evstudy.report.writing import atomic_write, prepare_out_dir
from evstudy.results import AR_COLUMNS, CAR_COLUMNS, TEST_COLUMNS, StudyResults

OUTPUT_FILES = ("report.html", "results.json", "abnormal_returns.csv", "cars.csv", "tests.csv")


def results_json(results: StudyResults) -> str:
    """results.json text; refuses NaN/inf so none can leak into the contract."""
    return json.dumps(results.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)


def with_baskets(frame: pd.DataFrame, memberships: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (one row per event, ticker, benchmark, ...) with a last column ``baskets``: the baskets the
    ticker belongs to in that event under that benchmark, joined by "; " (one cell, spreadsheet-friendly:
    a ticker in two baskets keeps one row per window, not two)."""
    keys = ["event", "ticker", "benchmark"]
    named = memberships.groupby(keys, sort=False)["basket"].agg("; ".join).rename("baskets").reset_index()
    out = frame.merge(named, on=keys, how="left")
    out["baskets"] = out["baskets"].fillna("")
    return out


def write_outputs(
    results: StudyResults,
    out_dir: str | os.PathLike[str],
    *,
    xlsx: bool = False,
    extra: Mapping[str, bytes] | None = None,
) -> dict[str, Path]:
    """Write every output file into ``out_dir`` (created if needed); return their paths.

    With ``xlsx``, also results.xlsx: the same tables in one workbook (:func:`xlsx_workbook`);
    ``extra`` adds files of the command's own (compare's compare.html) to the same set.
    """
    out = prepare_out_dir(out_dir)
    contents = {
        "results.json": results_json(results),
        "abnormal_returns.csv": with_baskets(results.abnormal_returns[AR_COLUMNS], results.memberships).to_csv(
            index=False, date_format="%Y-%m-%d"),
        "cars.csv": with_baskets(results.cars[CAR_COLUMNS], results.memberships).to_csv(index=False),
        "tests.csv": results.tests[TEST_COLUMNS].to_csv(index=False),
        "report.html": render_html(results),
    }
    comparison = results.extras.get("comparisons")
    if comparison is not None:  # multi-basket studies: the pairwise basket comparison
        contents["comparisons.csv"] = comparison.pairs[COMPARISON_COLUMNS].to_csv(index=False)
    paths = {}
    files = {name: text.encode("utf-8") for name, text in contents.items()}
    if xlsx:
        files["results.xlsx"] = xlsx_workbook(result_tables(results))
    files.update(extra or {})
    for name, data in files.items():
        paths[name] = out / name
        atomic_write(paths[name], data)
    return paths


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
            frame.to_excel(writer, sheet_name=sheet, index=False, na_rep="")
            worksheet = writer.sheets[sheet]
            worksheet.freeze_panes = "A2"
            for column, header in zip(worksheet.iter_cols(min_row=1, max_row=1), frame.columns):
                worksheet.column_dimensions[column[0].column_letter].width = max(10, len(str(header)) + 2)
    return buffer.getvalue()
