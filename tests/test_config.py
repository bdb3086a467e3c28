"""The TOML loader and ``parse_event``: good configs load, bad ones say exactly what is wrong."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from evstudy.config import (
    DEFAULT_WINDOWS, Basket, StudyConfig, Window, ad_hoc_config, load_config, parse_event,
)
from evstudy.errors import ConfigError

GOOD = """
name = "jpm-sri"
title = "JPMorgan Security and Resiliency Initiative"
benchmark = "SPY"
model = "market"
estimation_window = [-250, -11]
windows = [[0, 0], [-1, 1], [0, 5]]
ar_span = [-5, 5]
min_estimation_returns = 150
max_zero_share = 0.4

[[confounders]]
date = 2025-10-10
label = "tariff threat"

[[baskets]]
name = "minerals"
label = "Critical minerals"
tickers = ["mp", "USAR", "LAC"]
benchmarks = ["SPY", "REMX"]

[[baskets]]
name = "defense"
tickers = ["LMT", "RTX"]
benchmark = "ITA"

[[baskets]]
name = "broad"
tickers = ["JPM"]

[[events]]
id = "jpm"
label = "JPMorgan SRI"
date = "2025-10-13"
timing = "before_open"
baskets = ["minerals", "defense"]
[[events.confounders]]
date = "2025-10-09"
label = "China export controls"

[[events]]
id = "lac"
timestamp = "2025-09-30T16:05:00-04:00"

[[events]]
id = "mp"
date = 2025-07-10
"""


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> tuple[str, Path]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value), path


MINIMAL = """
[[events]]
date = "2025-10-13"
[[baskets]]
name = "b"
tickers = ["MP"]
"""


# --------------------------------------------------------------------------- a good config


def test_good_multi_basket_config(tmp_path):
    path = write(tmp_path, GOOD)
    cfg = load_config(path)
    assert isinstance(cfg, StudyConfig)
    assert cfg.name == "jpm-sri" and cfg.source_file == str(path)
    assert cfg.model == "market" and cfg.benchmark == "SPY"
    assert cfg.estimation_window == Window(-250, -11)
    assert cfg.windows == (Window(0, 0), Window(-1, 1), Window(0, 5))
    assert cfg.ar_span == Window(-5, 5)
    assert cfg.event_span == Window(-5, 5)
    assert cfg.min_estimation_returns == 150 and cfg.max_zero_share == 0.4
    assert cfg.baskets == (
        Basket("minerals", ("MP", "USAR", "LAC"), ("SPY", "REMX"), "Critical minerals"),  # tickers upper-cased
        Basket("defense", ("LMT", "RTX"), ("ITA",)),
        Basket("broad", ("JPM",), ("SPY",)),  # inherits the study benchmark
    )
    jpm, lac, mp = cfg.events
    assert (jpm.id, jpm.date, jpm.timing, jpm.timestamp) == ("jpm", dt.date(2025, 10, 13), "before_open", None)
    assert jpm.baskets == ("minerals", "defense")
    assert [c.label for c in jpm.confounders] == ["tariff threat", "China export controls"]  # shared first
    assert [c.date for c in jpm.confounders] == [dt.date(2025, 10, 10), dt.date(2025, 10, 9)]
    assert lac.timestamp == dt.datetime(2025, 9, 30, 16, 5, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    assert lac.date == dt.date(2025, 9, 30) and lac.timing is None
    assert mp.date == dt.date(2025, 7, 10)  # a native TOML date works as well as a string
    assert [b.name for b in cfg.baskets_for(jpm)] == ["minerals", "defense"]
    assert [b.name for b in cfg.baskets_for(mp)] == ["minerals", "defense", "broad"]  # no list: every basket
    assert cfg.tickers() == ["SPY", "MP", "USAR", "LAC", "REMX", "LMT", "RTX", "ITA", "JPM"]


def test_defaults_fill_in_a_minimal_config(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL, "minimal.toml"))
    assert cfg.name == "minimal"  # from the file name
    assert cfg.model == "market" and cfg.benchmark == "SPY"
    assert cfg.estimation_window == Window(-250, -11)
    assert cfg.windows == tuple(Window(*w) for w in DEFAULT_WINDOWS)
    assert cfg.events[0].id == "event" and cfg.events[0].timing is None
    assert cfg.baskets[0].benchmarks == ("SPY",)


def test_to_dict_echoes_parameters(tmp_path):
    d = load_config(write(tmp_path, GOOD)).to_dict()
    assert d["estimation_window"] == [-250, -11]
    assert d["windows"] == [[0, 0], [-1, 1], [0, 5]]
    assert d["events"][1]["timestamp"] == "2025-09-30T16:05:00-04:00"
    assert d["baskets"][0]["benchmarks"] == ["SPY", "REMX"]


# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("text", "bad", "suggestion"),
    [
        ('benchmrk = "SPY"\n' + MINIMAL, "benchmrk", "benchmark"),
        ('estimation_windw = [-250, -11]\n' + MINIMAL, "estimation_windw", "estimation_window"),
        (MINIMAL + 'tickrs = ["LAC"]\n', "tickrs", "tickers"),  # inside the basket table
        (MINIMAL.replace('date = "2025-10-13"', 'date = "2025-10-13"\ntimming = "during"'), "timming", "timing"),
    ],
)
def test_unknown_key_names_key_file_and_suggestion(tmp_path, text, bad, suggestion):
    message, path = error_for(tmp_path, text)
    assert f"unknown key {bad!r}" in message
    assert str(path) in message
    assert f"did you mean {suggestion!r}" in message


def test_unknown_key_without_a_close_match_lists_the_allowed_keys(tmp_path):
    message, path = error_for(tmp_path, 'zzzzzz = 1\n' + MINIMAL)
    assert "'zzzzzz'" in message and str(path) in message
    assert "did you mean" not in message
    assert "allowed keys:" in message and "estimation_window" in message


# --------------------------------------------------------------------------- wrong types and values


@pytest.mark.parametrize(
    ("line", "key", "shown", "expected"),
    [
        ('min_estimation_returns = "120"', "min_estimation_returns", "'120'", "a whole number"),
        ("min_estimation_returns = 120.5", "min_estimation_returns", "120.5", "a whole number"),
        ("min_estimation_returns = true", "min_estimation_returns", "True", "a whole number"),
        ('max_zero_share = "half"', "max_zero_share", "'half'", "a number"),
        ("benchmark = 5", "benchmark", "5", "a string"),
        ('windows = "0,0"', "windows", "'0,0'", "a list"),
    ],
)
def test_wrong_types_name_key_value_and_expected_type(tmp_path, line, key, shown, expected):
    message, path = error_for(tmp_path, line + "\n" + MINIMAL)
    assert f"key {key!r}" in message
    assert shown in message
    assert f"expected {expected}" in message
    assert str(path) in message


def test_basket_tickers_must_be_a_list(tmp_path):
    message, _ = error_for(tmp_path, MINIMAL.replace('tickers = ["MP"]', 'tickers = "MP"'))
    assert "key 'tickers'" in message and "expected a list" in message


def test_bad_model_lists_the_models(tmp_path):
    message, path = error_for(tmp_path, 'model = "capm"\n' + MINIMAL)
    assert "'capm'" in message and str(path) in message
    for allowed in ("market", "market_adjusted", "constant_mean"):
        assert allowed in message


@pytest.mark.parametrize("share", ["0", "1.5", "-0.1"])
def test_max_zero_share_out_of_range(tmp_path, share):
    message, path = error_for(tmp_path, f"max_zero_share = {share}\n" + MINIMAL)
    assert "max_zero_share" in message and "(0, 1]" in message and str(path) in message


def test_invalid_ticker_symbol(tmp_path):
    message, _ = error_for(tmp_path, MINIMAL.replace('["MP"]', '["MP", "no way!"]'))
    assert "'no way!'" in message and "not a valid symbol" in message


# --------------------------------------------------------------------------- windows


def test_reversed_estimation_window(tmp_path):
    message, path = error_for(tmp_path, "estimation_window = [-11, -250]\n" + MINIMAL)
    assert "[-11,-250]" in message and "reversed" in message
    assert "estimation_window" in message and str(path) in message


def test_reversed_event_window(tmp_path):
    message, _ = error_for(tmp_path, "windows = [[0, 0], [3, -3]]\n" + MINIMAL)
    assert "[3,-3]" in message and "reversed" in message and "'windows'" in message


@pytest.mark.parametrize("raw", ["[1, 2, 3]", "[0.5, 1]", '["a", "b"]', "[]"])
def test_malformed_window(tmp_path, raw):
    message, _ = error_for(tmp_path, f"windows = [{raw}]\n" + MINIMAL)
    assert "not a pair of whole trading-day offsets" in message


def test_empty_window_list(tmp_path):
    message, _ = error_for(tmp_path, "windows = []\n" + MINIMAL)
    assert "'windows'" in message and "empty" in message


@pytest.mark.parametrize(
    ("lines", "earliest"),
    [
        ("estimation_window = [-250, -5]", -10),  # default ar_span [-10, 10] starts at -10
        ("estimation_window = [-250, -3]\nwindows = [[-3, 3]]\nar_span = [0, 5]", -3),  # touches day -3
        ("estimation_window = [-120, -21]\nwindows = [[-30, 0]]", -30),
    ],
)
def test_estimation_window_overlapping_event_windows(tmp_path, lines, earliest):
    message, path = error_for(tmp_path, lines + "\n" + MINIMAL)
    assert "overlaps the event windows" in message
    assert f"earliest day {earliest:+d}" in message
    assert str(path) in message


def test_min_estimation_returns_larger_than_the_window(tmp_path):
    message, _ = error_for(tmp_path, "estimation_window = [-100, -11]\nmin_estimation_returns = 120\n" + MINIMAL)
    assert "120" in message and "90 days" in message


# --------------------------------------------------------------------------- tickers and baskets


def test_duplicate_ticker(tmp_path):
    message, path = error_for(tmp_path, MINIMAL.replace('["MP"]', '["MP", "LAC", "mp"]'))
    assert "MP is listed twice" in message and "'b'" in message and str(path) in message


def test_ticker_that_is_also_its_benchmark(tmp_path):
    message, _ = error_for(tmp_path, MINIMAL.replace('["MP"]', '["MP", "SPY"]'))
    assert "SPY is both a ticker and a benchmark" in message


def test_duplicate_basket_name(tmp_path):
    message, _ = error_for(tmp_path, MINIMAL + '[[baskets]]\nname = "b"\ntickers = ["LAC"]\n')
    assert "basket name 'b' is used twice" in message


def test_benchmark_and_benchmarks_together(tmp_path):
    message, _ = error_for(tmp_path, MINIMAL + 'benchmark = "SPY"\nbenchmarks = ["REMX"]\n')
    assert "either 'benchmark' or 'benchmarks'" in message


def test_event_naming_an_undefined_basket(tmp_path):
    text = MINIMAL.replace('date = "2025-10-13"', 'date = "2025-10-13"\nbaskets = ["b", "nope"]')
    message, path = error_for(tmp_path, text)
    assert "'nope'" in message and "not defined" in message
    assert "defined baskets: b" in message and str(path) in message


def test_no_events_and_no_baskets(tmp_path):
    message, path = error_for(tmp_path, '[[baskets]]\nname = "b"\ntickers = ["MP"]\n')
    assert "no event" in message and str(path) in message
    message, _ = error_for(tmp_path, '[[events]]\ndate = "2025-10-13"\n')
    assert "no tickers" in message


# --------------------------------------------------------------------------- events


def test_bad_timing_lists_the_timings(tmp_path):
    text = MINIMAL.replace('date = "2025-10-13"', 'date = "2025-10-13"\ntiming = "lunch"')
    message, path = error_for(tmp_path, text)
    assert "'lunch'" in message and str(path) in message
    for allowed in ("before_open", "during", "after_close"):
        assert allowed in message


def test_bad_date(tmp_path):
    message, path = error_for(tmp_path, MINIMAL.replace("2025-10-13", "2025-13-45"))
    assert "'2025-13-45'" in message and "YYYY-MM-DD" in message and str(path) in message


def test_timestamp_without_zone_in_toml(tmp_path):
    text = MINIMAL.replace('date = "2025-10-13"', "timestamp = 2025-10-13T08:00:00")  # TOML local datetime
    message, _ = error_for(tmp_path, text)
    assert "no time zone" in message


def test_timestamp_and_timing_together(tmp_path):
    text = MINIMAL.replace('date = "2025-10-13"', 'timestamp = "2025-10-13T08:00:00-04:00"\ntiming = "during"')
    message, _ = error_for(tmp_path, text)
    assert "either 'timestamp' or 'date' with 'timing'" in message


def test_event_without_a_date(tmp_path):
    message, _ = error_for(tmp_path, MINIMAL.replace('date = "2025-10-13"', 'label = "x"'))
    assert "missing key 'date'" in message


def test_duplicate_event_ids(tmp_path):
    second = '[[events]]\nid = "x"\ndate = "2025-10-14"\n'
    text = MINIMAL.replace('date = "2025-10-13"', 'id = "x"\ndate = "2025-10-13"') + second
    message, path = error_for(tmp_path, text)
    assert "event id 'x' is used twice" in message and str(path) in message


# --------------------------------------------------------------------------- files


def test_malformed_toml_names_the_file(tmp_path):
    message, path = error_for(tmp_path, 'name = "x\n[[baskets]\n')
    assert str(path) in message and "not valid TOML" in message


def test_missing_file(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "does not exist" in str(info.value)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('title = "Société"\n'.encode("latin-1") + MINIMAL.encode())
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "UTF-8" in str(info.value)


# --------------------------------------------------------------------------- parse_event


def test_parse_event_plain_date():
    e = parse_event("2025-10-13")
    assert (e.date, e.timing, e.timestamp) == (dt.date(2025, 10, 13), None, None)


@pytest.mark.parametrize("timing", ["before_open", "during", "after_close"])
def test_parse_event_date_with_timing(timing):
    e = parse_event(f"2025-10-13:{timing}")
    assert (e.date, e.timing, e.timestamp) == (dt.date(2025, 10, 13), timing, None)


def test_parse_event_zoned_timestamp():
    e = parse_event("2025-10-13T08:00:00-04:00")
    assert e.timestamp == dt.datetime(2025, 10, 13, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    assert e.date == dt.date(2025, 10, 13) and e.timing is None
    assert parse_event("2025-10-13T12:00:00Z").timestamp.utcoffset() == dt.timedelta(0)


def test_parse_event_timestamp_without_zone():
    with pytest.raises(ConfigError) as info:
        parse_event("2025-10-13T08:00:00")
    message = str(info.value)
    assert "'2025-10-13T08:00:00'" in message and "no time zone" in message
    assert "-04:00" in message  # shows how to add one


def test_parse_event_bad_timing():
    with pytest.raises(ConfigError) as info:
        parse_event("2025-10-13:lunch")
    message = str(info.value)
    assert "'lunch'" in message
    for allowed in ("before_open", "during", "after_close"):
        assert allowed in message


@pytest.mark.parametrize("text", ["2025-02-30", "13/10/2025", "yesterday", ""])
def test_parse_event_garbage(text):
    with pytest.raises(ConfigError) as info:
        parse_event(text)
    message = str(info.value)
    assert repr(text) in message
    assert "YYYY-MM-DD" in message


# --------------------------------------------------------------------------- ad hoc


def test_ad_hoc_config():
    cfg = ad_hoc_config(event="2025-09-30:after_close", tickers=["lac"], benchmark="spy")
    assert cfg.baskets == (Basket("all", ("LAC",), ("SPY",)),)
    assert cfg.events[0].timing == "after_close"


def test_ad_hoc_ticker_equal_to_benchmark():
    with pytest.raises(ConfigError) as info:
        ad_hoc_config(event="2025-10-13", tickers=["SPY", "MP"], benchmark="SPY")
    assert "SPY" in str(info.value) and "its own benchmark" in str(info.value)
