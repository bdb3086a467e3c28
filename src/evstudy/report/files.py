"""Write a run's outputs: report.html, results.json, abnormal_returns.csv, cars.csv, tests.csv (+ comparisons.csv).

Each file is written to a temporary name in the output folder and renamed into
place, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from evstudy.compare import COMPARISON_COLUMNS
from evstudy.errors import ConfigError
from evstudy.report.html import render_html
from evstudy.results import AR_COLUMNS, CAR_COLUMNS, TEST_COLUMNS, StudyResults

OUTPUT_FILES = ("report.html", "results.json", "abnormal_returns.csv", "cars.csv", "tests.csv")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename.

    The file gets the usual permissions for the user's umask (``mkstemp`` alone
    would make it private), since reports are meant to be shared.
    """
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(temp, 0o666 & ~_umask())
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def results_json(results: StudyResults) -> str:
    """results.json text; refuses NaN/inf so none can leak into the contract."""
    return json.dumps(results.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)


def write_outputs(results: StudyResults, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write every output file into ``out_dir`` (created if needed); return their paths."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the output folder ({exc.strerror})") from None
    if not out.is_dir():
        raise ConfigError(f"--out {out} is not a folder")
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
        atomic_write_text(paths[name], text)
    return paths
