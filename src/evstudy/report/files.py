"""Write a run's outputs: report.html, results.json, abnormal_returns.csv, cars.csv, tests.csv (+ comparisons.csv).

Each file is written to a temporary name in the output folder and renamed into
place, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from evstudy.compare import COMPARISON_COLUMNS
from evstudy.report.html import render_html
from evstudy.report.writing import atomic_write, prepare_out_dir
from evstudy.results import AR_COLUMNS, CAR_COLUMNS, TEST_COLUMNS, StudyResults

OUTPUT_FILES = ("report.html", "results.json", "abnormal_returns.csv", "cars.csv", "tests.csv")


def results_json(results: StudyResults) -> str:
    """results.json text; refuses NaN/inf so none can leak into the contract."""
    return json.dumps(results.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)


def write_outputs(results: StudyResults, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write every output file into ``out_dir`` (created if needed); return their paths."""
    out = prepare_out_dir(out_dir)
    contents = {
        "results.json": results_json(results),
        "abnormal_returns.csv": results.abnormal_returns[AR_COLUMNS].to_csv(index=False, date_format="%Y-%m-%d"),
        "cars.csv": results.cars[CAR_COLUMNS].to_csv(index=False),
        "tests.csv": results.tests[TEST_COLUMNS].to_csv(index=False),
        "report.html": render_html(results),
    }
    comparison = results.extras.get("comparisons")
    if comparison is not None:  # multi-basket studies: the pairwise basket comparison
        contents["comparisons.csv"] = comparison.pairs[COMPARISON_COLUMNS].to_csv(index=False)
    paths = {}
    for name, text in contents.items():
        paths[name] = out / name
        atomic_write(paths[name], text.encode("utf-8"))
    return paths
