"""Analyst conveniences: titles, named ad hoc folders that are never silently replaced, CLI overrides of a config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evstudy.api import name_ad_hoc, with_overrides
from evstudy.cli import cli
from evstudy.config import Window, ad_hoc_config, config_from_dict
from evstudy.errors import ConfigError
from evstudy.report.writing import MANIFEST

from market_fakes import EVENT, market, write_wide_csv

CONFIG = f"""
name = "small"
title = "A small study"
benchmark = "SPY"
placebo_dates = 0
[[events]]
id = "e"
date = {EVENT}
[[baskets]]
name = "a"
tickers = ["AAA", "BBB"]
[[baskets]]
name = "b"
tickers = ["CCC"]
benchmarks = ["SPY", "QQQ"]
"""


@pytest.fixture(scope="module")
def prices(tmp_path_factory) -> Path:
    return write_wide_csv(market(), tmp_path_factory.mktemp("prices") / "wide.csv")


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_ad_hoc_runs_are_named_and_titled_from_event_and_tickers(prices, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ("run", "--event", f"{EVENT}:after_close", "--tickers", "AAA,BBB,CCC,FLAT", "--prices", prices,
            "--placebo", "0", "--quiet")
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    folder = tmp_path / "reports" / f"{EVENT}-AAA-BBB-CCC-and-1-more"
    doc = json.loads((folder / "results.json").read_text())
    assert doc["parameters"]["title"] == f"AAA, BBB, CCC and 1 more around {EVENT} (after the close)"
    assert "<title>AAA, BBB, CCC and 1 more around" in (folder / "report.html").read_text()
    assert "Note: replacing" not in first.stderr
    again = invoke(*args, "--title", "Three stocks after the close")
    assert again.exit_code == 0
    assert f"Note: replacing the earlier run in reports/{folder.name}/" in again.stderr  # never silently
    assert json.loads((folder / "results.json").read_text())["parameters"]["title"] == "Three stocks after the close"


def test_a_config_takes_title_benchmark_model_and_windows_from_the_command_line(prices, tmp_path):
    config = tmp_path / "small.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    result = invoke("run", config, "--prices", prices, "--out", out, "--quiet", "--title", "Retitled",
                    "--benchmark", "QQQ", "--model", "market_adjusted", "--window", "0,0", "--window", "0,2",
                    "--estimation-window=-200,-20")
    assert result.exit_code == 0, result.output
    params = json.loads((out / "results.json").read_text())["parameters"]
    assert params["title"] == "Retitled" and params["benchmark"] == "QQQ" and params["model"] == "market_adjusted"
    assert params["windows"] == [[0, 0], [0, 2]] and params["estimation_window"] == [-200, -20]
    cars = (out / "cars.csv").read_text()
    assert ",SPY," not in cars and ",QQQ," in cars  # every basket measured against the override only


def test_a_bad_override_names_the_flag_and_the_file(prices, tmp_path):
    config = tmp_path / "small.toml"
    config.write_text(CONFIG)
    result = invoke("run", config, "--prices", prices, "--out", tmp_path / "out", "--window=-300,0")
    assert result.exit_code == 2
    assert "overlaps the event windows" in result.stderr and "(with --window given on the command line)" in result.stderr
    assert str(config) in result.stderr


def test_overrides_in_the_library():
    cfg = config_from_dict({
        "name": "s", "model": "two_index", "events": [{"id": "e", "date": "2025-10-13"}],
        "baskets": [{"name": "a", "tickers": ["MP"], "sector": "REMX"}],
    })
    plain = with_overrides(cfg, model="market", windows=[Window(0, 1)])
    assert plain.model == "market" and plain.baskets[0].sector == "" and plain.windows == (Window(0, 1),)
    assert with_overrides(cfg) is cfg
    with pytest.raises(ConfigError, match="--model 'nope'"):
        with_overrides(cfg, model="nope")


def test_ad_hoc_name_for_a_timestamp_and_few_tickers():
    cfg = name_ad_hoc(ad_hoc_config(event="2025-10-13T08:00:00-04:00", tickers=["MP", "USAR"]))
    assert cfg.name == "2025-10-13-MP-USAR" and cfg.title == "MP, USAR around 2025-10-13T08:00:00-04:00"
    assert cfg.baskets[0].title == "MP, USAR" and cfg.baskets[0].name == "all"


def test_results_xlsx_holds_every_table_with_the_csv_numbers(prices, tmp_path):
    import openpyxl
    import pandas as pd

    config = tmp_path / "small.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    result = invoke("run", config, "--prices", prices, "--out", out, "--quiet", "--xlsx")
    assert result.exit_code == 0, result.output
    assert "results.xlsx" in result.stdout
    book = openpyxl.load_workbook(out / "results.xlsx", read_only=True)
    assert book.sheetnames[:5] == ["about", "baskets", "tests", "cars", "abnormal_returns"]
    about = pd.read_excel(out / "results.xlsx", sheet_name="about")["note"].tolist()
    assert about[0].startswith("Returns, abnormal returns, CARs") and "0.05 = 5%" in about[0]
    assert "comparisons" in book.sheetnames  # two baskets under SPY
    cars = pd.read_excel(out / "results.xlsx", sheet_name="cars")
    csv = pd.read_csv(out / "cars.csv")
    pd.testing.assert_frame_equal(cars, csv, check_dtype=False)
    assert dict(zip(csv.ticker, csv.baskets)) == {"AAA": "a", "BBB": "a", "CCC": "b"}  # the basket of each row
    assert set(pd.read_csv(out / "abnormal_returns.csv").baskets) == {"a", "b"}
    ars = pd.read_excel(out / "results.xlsx", sheet_name="abnormal_returns")
    assert pd.api.types.is_datetime64_any_dtype(ars["date"])  # real dates, not text
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != MANIFEST]  # no temporary file left


def test_a_notebook_writes_the_files_and_gets_the_html(prices, tmp_path):
    import evstudy

    config = tmp_path / "small.toml"
    config.write_text(CONFIG)
    res = evstudy.run_study(config, prices=prices)
    paths = res.write(tmp_path / "nb", xlsx=True)
    assert {p.name for p in paths.values()} >= {"report.html", "results.json", "cars.csv", "results.xlsx"}
    html = res.to_html()
    assert html.startswith("<!DOCTYPE html>") and "A small study" in html
    assert json.loads((tmp_path / "nb" / "results.json").read_text())["parameters"]["name"] == "small"


def test_the_package_namespace_is_clean():
    import evstudy

    assert dir(evstudy) == sorted(evstudy.__all__)
    assert not {"Any", "TYPE_CHECKING", "importlib", "annotations"} & set(dir(evstudy))
    for name in evstudy.__all__:
        assert getattr(evstudy, name) is not None


def test_the_jpm_config_lists_the_confounders_of_the_events_file():
    """../shared/EVENTS.md: TMQ's government stake (day -4), LAC's DoE stake (day -8) and its leak, PPTA (day +10)."""
    from evstudy.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "jpm-sri-2025.toml")
    listed = {c.date.isoformat(): c.label for c in cfg.events[0].confounders}
    assert "Trilogy Metals" in listed["2025-10-07"] and "Lithium Americas" in listed["2025-10-01"]
    assert "Leak" in listed["2025-09-24"] and "Perpetua" in listed["2025-10-27"]
    assert {"2025-10-09", "2025-10-10", "2025-10-12", "2025-10-14"} <= set(listed)


def test_scan_columns_have_readable_window_names():
    from evstudy.scan import DAY0_KEY, window_key

    assert [window_key(Window(*w)) for w in [(0, 0), (-1, 1), (0, 5), (1, 1)]] == [
        "day0", "days_-1_to_+1", "days_0_to_+5", "day+1",
    ]
    assert window_key(Window(0, 0)) == DAY0_KEY  # the day-0 columns the scan report reads: q_day0, t_day0


def test_an_ad_hoc_basket_label_stays_short_however_many_tickers():
    """The label is repeated in every per-stock row and chart hover: 5,000 tickers must not make it 23 KB
    (it made the 5,000-ticker report 19 MB, issue 9)."""
    many = [f"T{i:04d}" for i in range(5000)]
    named = name_ad_hoc(ad_hoc_config(event=EVENT, tickers=many, benchmark="SPY"))
    assert named.baskets[0].label == "T0000, T0001, T0002, T0003, T0004, T0005, T0006, T0007, T0008, T0009 and 4,990 more"
    few = name_ad_hoc(ad_hoc_config(event=EVENT, tickers=["AAA", "BBB"], benchmark="SPY"))
    assert few.baskets[0].label == "AAA, BBB"
