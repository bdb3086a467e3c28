"""Every command in the README's bash blocks runs as written after the two set-up commands.

The commands are read from README.md itself, so the README cannot drift from
the CLI. The set-up block installs and runs the main study, then runs the tests;
Usage activates the venv first (so a bare ``evstudy`` works). Commands that read prices from a file (``--prices``) run
for real, in a folder laid out like the repository (``configs/`` and
``../shared/data``); the ones that need Yahoo Finance are checked with
``--help`` appended (their options must exist), since tests never touch the
network: the fetch-then-offline recipe itself is exercised with a stand-in
Yahoo in tests/test_offline.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yfinance
from click.testing import CliRunner

from evstudy.cli import cli

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```bash\n(.*?)```", README, re.S)


def _commands() -> list[list[str]]:
    commands = []
    for block in BLOCKS[1:]:  # the first block is the set-up
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] != ".":  # `. .venv/bin/activate`: the shell's, not a command to test
                commands.append(words)
    return commands


COMMANDS = _commands()
OFFLINE = [c for c in COMMANDS if "--prices" in c]
NETWORK = [c for c in COMMANDS if "--prices" not in c]


def test_the_readme_opens_with_install_and_run_then_the_tests():
    setup = [line for line in BLOCKS[0].splitlines() if line.strip()]
    assert setup == [
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/evstudy run configs/jpm-sri-2025.toml",
        ".venv/bin/pytest",
    ]
    assert BLOCKS[1].splitlines()[0].startswith(". .venv/bin/activate"), "Usage activates the venv first"
    assert all(c[0] == "evstudy" for c in COMMANDS), "every README command is an evstudy command"
    assert len(OFFLINE) >= 6 and len(NETWORK) >= 4
    # the Usage shows every kind of run: config, ad hoc, compare, scan, request file, fetch CONFIG then offline
    shown = {tuple(c[1:3]) for c in COMMANDS}
    for head in (("run", "configs/jpm-sri-2025.toml"), ("run", "--event"), ("compare", "configs/jpm-sri-2025.toml"),
                 ("scan", "--event"), ("run", "--events"), ("fetch", "configs/jpm-sri-2025.toml")):
        assert head in shown, head
    assert any(c[1] == "run" and "--offline" in c for c in COMMANDS)


@pytest.fixture(scope="module")
def repo_like(shared_data, tmp_path_factory) -> Path:
    """A folder laid out like a checkout: configs/ here, the market data at ../shared/data."""
    root = tmp_path_factory.mktemp("readme")
    (root / "repo").mkdir()
    (root / "repo" / "configs").symlink_to(REPO / "configs")
    (root / "repo" / "examples").symlink_to(REPO / "examples")
    (root / "shared").mkdir()
    (root / "shared" / "data").symlink_to(shared_data)
    return root / "repo"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a README command with --prices reached for Yahoo")

    monkeypatch.setattr(yfinance, "download", refuse)


@pytest.mark.shared_data
@pytest.mark.parametrize("words", OFFLINE, ids=lambda words: " ".join(words[1:])[:90])
def test_readme_commands_that_read_files_run_as_written(words, repo_like, monkeypatch, no_network):
    monkeypatch.chdir(repo_like)
    result = CliRunner().invoke(cli, words[1:])
    assert result.exit_code == 0, (words, result.output)
    assert "Open the report: file://" in result.stdout
    if "--xlsx" in words:
        out = Path(words[words.index("--out") + 1])
        assert (repo_like / out / "results.xlsx").is_file()


@pytest.mark.parametrize("words", NETWORK, ids=lambda words: " ".join(words[1:])[:90])
def test_readme_commands_that_need_yahoo_have_valid_options(words):
    result = CliRunner().invoke(cli, [*words[1:], "--help"])
    assert result.exit_code == 0, (words, result.output)
    assert "Usage: " in result.stdout


def test_ci_runs_the_readmes_install_and_test_commands():
    """.ci/run does what a reader of the README does: the same venv, the same install, the README's `pytest`."""
    ci = [line.split("#")[0].strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert "python3 -m venv .venv" in ci
    assert any(re.fullmatch(r"\.venv/bin/pip install( -q)? -e '\.\[test\]'", line) for line in ci)
    assert ".venv/bin/pytest" in ci
    assert ".venv/bin/pytest" in BLOCKS[0]
