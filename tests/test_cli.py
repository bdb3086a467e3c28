"""The command line as a user meets it: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from evstudy import __version__
from evstudy.cli import cli

REPO = Path(__file__).resolve().parents[1]
JPM_CONFIG = REPO / "configs" / "jpm-sri-2025.toml"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, stderr: str, *fragments: str) -> None:
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_version_and_help_on_every_command():
    code, out, _ = invoke("--version")
    assert code == 0 and __version__ in out
    for command in ([], ["run"], ["fetch"]):
        code, out, _ = invoke(*command, "--help")
        assert code == 0 and "Usage:" in out and len(out) > 200


@pytest.mark.shared_data
def test_jpm_config_writes_the_contract(market_parquet, tmp_path):
    # The run's wall time (< 15 s) is measured in benchmarks/, not asserted here.
    out = tmp_path / "jpm"
    code, stdout, stderr = invoke("run", JPM_CONFIG, "--prices", market_parquet, "--out", out)
    assert code == 0, stderr
    for name in ("report.html", "results.json", "abnormal_returns.csv", "cars.csv"):
        assert (out / name).stat().st_size > 0, name
    assert "day 0 Mon 2025-10-13" in stdout

    cars = pd.read_csv(out / "cars.csv")
    assert list(cars.columns) == [
        "event", "ticker", "benchmark", "window_start", "window_end", "car", "se", "t", "p_value", "baskets"
    ]
    assert set(cars.loc[cars.ticker == "MP", "baskets"]) == {"critical_minerals; named_in_coverage", "critical_minerals"}
    # MP is in critical_minerals, measured against SPY and REMX: a row for each.
    mp = cars[(cars.ticker == "MP") & (cars.window_start == 0) & (cars.window_end == 0)]
    assert set(mp.benchmark) == {"SPY", "REMX"}
    assert cars[["car", "se", "t", "p_value"]].notna().all().all()

    ars = pd.read_csv(out / "abnormal_returns.csv")
    assert list(ars.columns) == [
        "event", "ticker", "benchmark", "date", "rel_day", "return", "expected_return", "abnormal_return", "baskets"
    ]
    assert set(ars.rel_day) == set(range(-10, 11))

    doc = json.loads((out / "results.json").read_text())
    for key in ("parameters", "data", "events", "fits", "cars", "baskets", "exclusions"):
        assert key in doc
    assert doc["events"][0]["day0"] == "2025-10-13"
    # The study's parameters, not the per-series model coefficients, sit under "parameters".
    assert doc["parameters"]["estimation_window"] == [-250, -11]
    assert doc["parameters"]["name"] == "jpm-sri-2025"
    assert {"ticker", "benchmark"} <= set(doc["model_parameters"][0])
    assert doc["data"]["source"] == "files"

    def finite(value):
        if isinstance(value, float):
            assert math.isfinite(value)
        elif isinstance(value, dict):
            for v in value.values():
                finite(v)
        elif isinstance(value, list):
            for v in value:
                finite(v)

    finite(doc)


@pytest.mark.shared_data
def test_ad_hoc_run_forms_basket_all(market_parquet, tmp_path):
    code, stdout, stderr = invoke(
        "run", "--event", "2025-10-13:before_open", "--tickers", "MP,USAR,LAC", "--benchmark", "SPY",
        "--window", "0,0", "--window", "-1,1", "--prices", market_parquet, "--out", tmp_path, "--quiet",
    )
    assert code == 0, stderr
    baskets = json.loads((tmp_path / "results.json").read_text())["baskets"]
    assert {b["basket"] for b in baskets} == {"all"}
    assert {b["event"] for b in baskets} == {"event"}
    assert {(b["window_start"], b["window_end"]) for b in baskets} == {(0, 0), (-1, 1)}


@pytest.mark.shared_data
def test_unknown_ticker_in_prices(market_parquet, tmp_path):
    code, _, stderr = invoke(
        "run", "--event", "2025-10-13", "--tickers", "MP,NOSUCHTKR", "--prices", market_parquet, "--out", tmp_path
    )
    assert_one_line_error(code, stderr, "NOSUCHTKR")


@pytest.mark.shared_data
def test_event_outside_the_data(market_parquet, tmp_path):
    code, _, stderr = invoke(
        "run", "--event", "2027-03-01", "--tickers", "MP,LAC", "--prices", market_parquet, "--out", tmp_path
    )
    assert_one_line_error(code, stderr, "2027-03-01", "after the last close", "2026-07-31")  # issue 11: the data's own end


@pytest.mark.shared_data
def test_estimation_window_too_short_for_every_ticker(market_parquet, tmp_path):
    # USAR and CRML only have a short history before 2021-06; a 2021-03 event leaves < 120 returns.
    code, _, stderr = invoke(
        "run", "--event", "2021-03-15", "--tickers", "MP,LAC", "--prices", market_parquet, "--out", tmp_path
    )
    assert_one_line_error(code, stderr, "every ticker was excluded", "valid returns")


def test_malformed_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[events]\ndate = 2025-10-13\n')
    code, _, stderr = invoke("run", bad, "--out", tmp_path)
    assert_one_line_error(code, stderr, str(bad), "not valid TOML")


def test_unknown_config_key_suggests(tmp_path):
    bad = tmp_path / "typo.toml"
    bad.write_text(
        'benchmak = "SPY"\n[[events]]\ndate = 2025-10-13\n[[baskets]]\nname = "a"\ntickers = ["MP"]\n'
    )
    code, _, stderr = invoke("run", bad, "--out", tmp_path)
    assert_one_line_error(code, stderr, "'benchmak'", "did you mean 'benchmark'", str(bad))


def test_config_and_ad_hoc_flags_conflict(tmp_path):
    code, _, stderr = invoke("run", JPM_CONFIG, "--tickers", "MP", "--out", tmp_path)
    assert_one_line_error(code, stderr, "--tickers", "CONFIG")


def test_ad_hoc_needs_event_and_tickers(tmp_path):
    code, _, stderr = invoke("run", "--tickers", "MP", "--out", tmp_path)
    assert_one_line_error(code, stderr, "--event")


def test_bad_window_flag(tmp_path):
    code, _, stderr = invoke("run", "--event", "2025-10-13", "--tickers", "MP", "--window", "1,-1", "--out", tmp_path)
    assert_one_line_error(code, stderr, "reversed")


def test_scan_missing_price_file_is_one_line(tmp_path):
    code, _, stderr = invoke("scan", "--event", "2025-10-13", "--prices", tmp_path / "nope.parquet", "--out", tmp_path)
    assert_one_line_error(code, stderr, "nope.parquet", "does not exist")


@pytest.mark.shared_data
def test_output_piped_into_a_closed_reader_is_not_an_error(market_parquet, tmp_path):
    """`evstudy run ... | head -1`: the reader leaves early; the files are written and the exit is clean."""
    import subprocess
    import sys

    script = Path(sys.executable).with_name("evstudy")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "evstudy"]
    process = subprocess.Popen(
        [*command, "run", "--event", "2025-10-13", "--tickers", "MP,USAR,LAC", "--prices", str(market_parquet),
         "--out", str(tmp_path), "--placebo", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    process.stdout.close()  # the reader is gone before the first line is written, like `| head -0`
    stderr = process.stderr.read().decode()
    assert process.wait() == 0, stderr
    assert "BrokenPipe" not in stderr and "Traceback" not in stderr
    assert (tmp_path / "results.json").is_file()


def test_yfinance_chatter_stays_out_of_the_terminal(monkeypatch, tmp_path, caplog):
    """yfinance's own error logs and pandas deprecations inside it are not shown; our one line is."""
    import logging
    import warnings

    import yfinance

    def empty_download(tickers, **kwargs):
        logging.getLogger("yfinance").error("%d Failed downloads: possibly delisted; no timezone found", len(tickers))
        warnings.warn("The inplace keyword in DataFrame.rename is deprecated", DeprecationWarning, stacklevel=1)
        return pd.DataFrame()

    monkeypatch.setattr(yfinance, "download", empty_download)
    monkeypatch.setattr("evstudy.prices.yahoo.time.sleep", lambda _seconds: None)
    tickers = ",".join(f"T{i}" for i in range(12))
    code, _, stderr = invoke("run", "--event", "2025-10-13", "--tickers", tickers, "--cache-dir", tmp_path / "c",
                             "--out", tmp_path / "o")
    assert code == 3, stderr
    assert "possibly delisted" not in stderr and "inplace" not in stderr
    # yfinance's logger has no handler of its own: its ERROR records would reach the terminal through
    # logging's last-resort handler, so none may be emitted at all.
    assert not [r for r in caplog.records if r.name.startswith("yfinance")]
    error = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1 and "any of the 13 tickers (SPY, T0, T1" in error[0] and "and 5 more" in error[0]


@pytest.mark.parametrize(("given", "expected"), [(None, "1"), ("3", "3")])
def test_run_sets_single_threaded_openblas_before_numpy_loads_unless_the_user_chose(given, expected):
    """`evstudy run` asks OpenBLAS for one thread (its thread start-up is all a study's thin products get
    from it); a user's own OPENBLAS_NUM_THREADS wins."""
    import os
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "from click.testing import CliRunner\n"
        "from evstudy.cli import cli\n"
        "assert 'numpy' not in sys.modules\n"
        "CliRunner().invoke(cli, ['run', '--drop-overlaps'])\n"
        "print(os.environ.get('OPENBLAS_NUM_THREADS'), 'numpy' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [expected, "True"]


def test_the_console_entry_point_collects_young_objects_less_often():
    """main() raises the cyclic collector's first threshold (a short run allocates millions of small objects)."""
    import subprocess
    import sys

    code = (
        "import gc, sys\n"
        "from evstudy.cli import main\n"
        "sys.argv = ['evstudy', '--version']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(gc.get_threshold())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "(50000, 20, 10)"


class _RecordingLibc:
    """A stand-in for glibc's C library that records mallopt calls."""

    def __init__(self, name: object = None) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return 1


def test_reuse_freed_memory_sets_glibc_thresholds_and_one_arena_only_when_asked(monkeypatch):
    import ctypes

    from evstudy import cli as cli_module

    made: list[_RecordingLibc] = []
    monkeypatch.setattr(ctypes, "CDLL", lambda name=None: made.append(_RecordingLibc()) or made[-1])
    cli_module._reuse_freed_memory()
    cli_module._reuse_freed_memory(one_arena=True)
    thresholds = [(-3, 32 * 2**20), (-1, 2**31 - 1)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    assert made[0].calls == thresholds
    assert made[1].calls == [*thresholds, (-8, 1)]  # M_ARENA_MAX


def test_request_runs_and_only_they_ask_for_one_malloc_arena(monkeypatch, tmp_path, market_parquet):
    """The CLI, which owns its process, sets the process-wide malloc options; the library never does."""
    from evstudy import cli as cli_module

    asked: list[bool] = []
    monkeypatch.setattr(cli_module, "_reuse_freed_memory", lambda one_arena=False: asked.append(one_arena))
    events = tmp_path / "events.csv"
    events.write_text("event_id,ticker,date\na,AAA,2024-03-14\n", encoding="utf-8")
    invoke("run", "--events", events, "--prices", market_parquet, "--out", tmp_path / "out")
    assert asked == [True]
