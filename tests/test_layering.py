"""Data flows one way: no module imports a later stage, and computation does no I/O.

The stages, in order: config → prices / calendar → returns → models →
abnormal → diagnostics / inference → results / placebo → battery / drift / verdicts →
study → compare / catalogue / scan → api → report → cli. Every ``import
evstudy...`` in a module (including imports inside functions) must name a
stage at or before its own. Computation modules may use the price stage's
data types but not its readers; presentation libraries (plotly, jinja2,
click) and the network client (yfinance) stay in their stages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "evstudy"

STAGE = {
    "_version": 0, "errors": 0, "config": 1, "requests": 1, "tables": 1,
    "prices": 2, "calendar": 2,
    "returns": 3, "models": 4, "abnormal": 5, "kernels": 5,
    "diagnostics": 6, "inference": 6,
    "results": 7, "placebo": 7,
    "battery": 8, "drift": 8, "verdicts": 8,
    "study": 9,
    "compare": 10, "catalogue": 10, "scan": 10, "firm_events": 10,
    "scale": 11,
    "api": 11, "report": 12, "cli": 13, "__init__": 14, "__main__": 14,
}
COMPUTATION = {
    "returns", "models", "abnormal", "diagnostics", "inference", "results", "placebo", "battery", "drift", "verdicts",
    "study", "compare", "catalogue", "scan", "firm_events", "tables", "kernels",
}
PRICE_TYPES = {"evstudy.prices.base", "evstudy.prices.factors"}  # PriceData, FactorData: types, not readers
# The deliberate exceptions, with their reason: the scan's convenience loader `scan.load_scan_prices`
# imports the file reader lazily, and `scan.scan_market` reads the file's local index without pandas,
# so the whole-market scan starts fast (see benchmarks/README.md).
# The compiled request kernels keep numba's compiled code in the evstudy cache folder (prices.locations names it).
ALLOWED_IO = {("scan", "evstudy.prices.files"), ("scan", "evstudy.prices.dataset"), ("kernels", "evstudy.prices.locations")}
# The one deliberate late import, with its reason: a notebook user holding a StudyResults calls
# res.write(out_dir) / res.to_html(); those two methods import the report stage when called (never at
# import time, never from computation), so the results object stays the one thing a notebook needs.
ALLOWED_LATE = {("results", "evstudy.report.files"), ("results", "evstudy.report.html")}
THIRD_PARTY_HOME = {"plotly": {"report"}, "jinja2": {"report"}, "click": {"cli"}, "yfinance": {"prices"}}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found.append((parts[0], path))
    return found


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "evstudy":
                names.update(f"evstudy.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize(("stage", "path"), _modules(), ids=lambda v: str(v))
def test_no_module_imports_a_later_stage(stage, path):
    assert stage in STAGE, f"{path}: new top-level module {stage!r}: give it a stage in this test"
    for name in _imports(path):
        if not name.startswith("evstudy.") or name == "evstudy":
            continue
        target = name.split(".")[1]
        if (stage, name) in ALLOWED_LATE:
            continue
        assert STAGE[target] <= STAGE[stage], f"{path.name} ({stage}) imports the later stage {name}"


@pytest.mark.parametrize(("stage", "path"), [m for m in _modules() if m[0] in COMPUTATION], ids=lambda v: str(v))
def test_computation_uses_price_types_not_readers(stage, path):
    for name in _imports(path):
        if name.startswith("evstudy.prices") and name not in PRICE_TYPES:
            assert (stage, name) in ALLOWED_IO, f"{path.name} imports the price reader {name}"


@pytest.mark.parametrize(("stage", "path"), _modules(), ids=lambda v: str(v))
def test_presentation_and_network_libraries_stay_in_their_stage(stage, path):
    for name in _imports(path):
        home = THIRD_PARTY_HOME.get(name.split(".")[0])
        if home is not None:
            assert stage in home, f"{path.name} ({stage}) imports {name}, which belongs in {sorted(home)}"


def test_the_late_imports_allowed_are_inside_the_two_notebook_methods():
    """ALLOWED_LATE covers StudyResults.write and .to_html only: not a module-level import, no other function."""
    tree = ast.parse((PACKAGE / "results.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").startswith("evstudy.report"), "results.py imports the report at load time"
    late = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("evstudy.report"):
                    late[inner.module] = node.name
    assert late == {"evstudy.report.files": "write", "evstudy.report.html": "to_html"}
