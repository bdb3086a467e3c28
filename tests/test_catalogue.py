"""Event catalogue, stacked CAAR and pre-event drift: config rules, known answers, and the real 2025 stakes.

Independent side: day-0 dates come from the announcement facts in
../shared/EVENTS.md; raw returns from pandas on the market Parquet; drift ARs
from numpy least squares on the estimation window; the stacked tests from
``scipy.stats.ttest_1samp`` on the pooled CARs read back from cars.csv.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from evstudy.catalogue import attach_catalogue, catalogue, drift_summary
from evstudy.cli import cli
from evstudy.config import config_from_dict, load_config
from evstudy.errors import ConfigError
from evstudy.study import compute_study

from helpers import closes_from_returns, nyse_dates, price_data, read_parquet_closes

REPO = Path(__file__).resolve().parents[1]
STAKES = REPO / "configs" / "government-stakes-2025.toml"
PPTA = REPO / "configs" / "jpm-first-investment-2025.toml"
JPM = REPO / "configs" / "jpm-sri-2025.toml"  # one event; its default estimation window overlaps the drift


def invoke(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def _raw(**extra):
    raw = {
        "name": "cat",
        "estimation_window": [-270, -21],
        "events": [
            {"id": "e1", "date": "2025-07-10", "tickers": ["MP"]},
            {"id": "e2", "date": "2025-09-30", "timing": "after_close", "tickers": ["LAC"], "benchmark": "REMX"},
        ],
    }
    raw.update(extra)
    return raw


# --------------------------------------------------------------------------- config


def test_event_tickers_form_an_event_basket_with_its_own_benchmark():
    cfg = config_from_dict(_raw(baskets=[{"name": "peers", "tickers": ["USAR", "ALB"]}]))
    by_name = {b.name: b for b in cfg.baskets}
    assert by_name["e1"].tickers == ("MP",) and by_name["e1"].benchmarks == ("SPY",) and by_name["e1"].event == "e1"
    assert by_name["e2"].benchmarks == ("REMX",)
    events = {e.id: e for e in cfg.events}
    # an event with its own tickers studies those only; the shared basket is not added behind its back
    assert [b.name for b in cfg.baskets_for(events["e1"])] == ["e1"]
    assert "REMX" in cfg.tickers() and cfg.drift_window.label == "[-20,-1]" and cfg.drift_overlap is None


def test_an_event_without_tickers_gets_the_shared_baskets_only():
    raw = _raw(baskets=[{"name": "peers", "tickers": ["USAR", "ALB"]}])
    raw["events"].append({"id": "e3", "date": "2025-10-13"})
    cfg = config_from_dict(raw)
    assert [b.name for b in cfg.baskets_for(cfg.events[2])] == ["peers"]


@pytest.mark.parametrize("change, fragment", [
    ({"events": [{"id": "e1", "date": "2025-07-10", "benchmark": "XME"}],
      "baskets": [{"name": "b", "tickers": ["MP"]}]}, "applies only to the event's own `tickers`"),
    ({"events": [{"id": "b", "date": "2025-07-10", "tickers": ["MP"]}],
      "baskets": [{"name": "b", "tickers": ["LAC"]}]}, "already has that name"),
    ({"events": [{"id": "e1", "date": "2025-07-10", "tickers": ["MP"], "benchmark": "MP"}]}, "its own benchmark"),
    ({"events": [{"id": "e1", "date": "2025-07-10", "tickers": []}]}, "empty ticker list"),
    ({"events": [{"id": "e1", "date": "2025-07-10", "tickers": ["MP"]}, {"id": "e2", "date": "2025-08-22"}]},
     "event 'e2' in cat.toml has no tickers"),
    ({"drift_window": [-5, 0]}, "drift_window [-5,0]"),
    ({"drift_window": [-1, -5]}, "is reversed"),
])
def test_bad_catalogue_configs_are_one_line_errors(change, fragment):
    with pytest.raises(ConfigError) as info:
        config_from_dict(_raw(**change), source="cat.toml")
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_drift_overlap_is_allowed_but_caveated(tmp_path):
    cfg = load_config(JPM)
    assert cfg.estimation_window.label == "[-250,-11]" and cfg.drift_overlap.label == "[-20,-11]"
    assert load_config(STAKES).drift_overlap is None and load_config(PPTA).drift_overlap is None


def test_shipped_catalogue_configs_state_their_timing():
    events = {e.id: e for e in load_config(STAKES).events}
    assert {k: (str(e.date), e.timing) for k, e in events.items()} == {
        "mp-dod": ("2025-07-10", "before_open"),
        "intc-stake": ("2025-08-22", "during"),
        "lac-doe": ("2025-09-30", "after_close"),
        "tmq-stake": ("2025-10-06", "after_close"),
    }
    # the label states the day-0 judgment: the remarks came in trading hours, Intel's own release is day +1
    assert "during the session" in events["intc-stake"].label and "day +1" in events["intc-stake"].label
    (ppta,) = load_config(PPTA).events
    assert (str(ppta.date), ppta.timing, ppta.baskets[0]) == ("2025-10-27", "before_open", "ppta")


# --------------------------------------------------------------------------- drift, known answers

N_DAYS, I0 = 340, 320


@pytest.fixture(scope="module")
def planted():
    """A market-model world with a +30% leak on day -6 of stock LEAK and a gap on day -3 of GAPPY."""
    rng = np.random.default_rng(77)
    dates = nyse_dates(N_DAYS, start="2024-05-01")
    market = rng.normal(0.0005, 0.01, N_DAYS)
    returns = {"MKT": market}
    for name, beta in {"LEAK": 1.3, "CALM": 0.7, "GAPPY": 1.0}.items():
        r = 0.0003 + beta * market + rng.normal(0, 0.008, N_DAYS)
        returns[name] = r
    returns["LEAK"][I0 - 6] += 0.30
    closes = closes_from_returns(returns, dates)
    closes.loc[dates[I0 - 3], "GAPPY"] = np.nan
    return dates, closes


def _planted_results(planted, estimation):
    dates, closes = planted
    cfg = config_from_dict({
        "name": "drift", "benchmark": "MKT", "estimation_window": estimation,
        "windows": [[0, 0], [0, 1]], "ar_span": [0, 5],
        "events": [{"id": "ev", "date": dates[I0].date().isoformat(), "tickers": ["LEAK", "CALM", "GAPPY"]}],
    })
    return compute_study(cfg, price_data(closes))


def test_drift_car_is_the_sum_of_out_of_sample_ars(planted):
    dates, closes = planted
    results = _planted_results(planted, [-270, -21])
    returns = closes / closes.shift(1) - 1.0
    rows = results.drift.set_index("ticker")
    for ticker in ("LEAK", "CALM"):
        y = returns[ticker].to_numpy()[I0 - 270: I0 - 20]
        x = returns["MKT"].to_numpy()[I0 - 270: I0 - 20]
        ok = np.isfinite(y) & np.isfinite(x)
        (alpha, beta), *_ = np.linalg.lstsq(np.column_stack([np.ones(ok.sum()), x[ok]]), y[ok], rcond=None)
        ar = returns[ticker].to_numpy()[I0 - 20: I0] - alpha - beta * returns["MKT"].to_numpy()[I0 - 20: I0]
        assert rows.loc[ticker, "car"] == pytest.approx(ar.sum(), abs=1e-12)
    assert rows.loc["LEAK", "car"] > 0.25 and rows.loc["LEAK", "p_value"] < 0.01
    # a gap in the window: no CAR, and a note naming the day
    assert np.isnan(rows.loc["GAPPY", "car"])
    assert f"{dates[I0 - 3].date()} (day -3)" in rows.loc["GAPPY", "note"]
    assert f"{dates[I0 - 2].date()} (day -2)" in rows.loc["GAPPY", "note"]  # the return after the gap is lost too

    summary = drift_summary(results).series.set_index("ticker")
    assert summary.loc["LEAK", "peak_rel_day"] == -6 and summary.loc["LEAK", "peak_date"] == dates[I0 - 6]
    assert summary.loc["LEAK", "peak_return"] == pytest.approx(returns["LEAK"].iloc[I0 - 6], abs=1e-12)
    assert drift_summary(results).caveat == ""
    doc = attach_catalogue(results).to_dict()["drift"]
    json.dumps(doc, allow_nan=False)
    assert doc["window"] == [-20, -1] and doc["caveat"] is None


def test_overlapping_windows_get_the_caveat(planted):
    results = _planted_results(planted, [-250, -11])
    caveat = drift_summary(results).caveat
    assert "overlaps the estimation window [-250,-11] on days -20 to -11" in caveat
    assert "estimation_window = [-260, -21]" in caveat


def test_a_one_event_study_has_no_catalogue(planted):
    extras = attach_catalogue(_planted_results(planted, [-270, -21])).extras
    assert set(extras) == {"drift"}


def test_event_rows_and_drift_baskets_match_scipy_per_group_without_a_day0_window(planted):
    """Two events, one with three stocks (GAPPY excluded for its gap) and one with one, no [0, 0] window:
    each event's day-0 test and each basket's drift test are scipy's one-sample t on its own stocks (the
    stock's own t when alone), whatever the other groups hold."""
    dates, closes = planted
    cfg = config_from_dict({
        "name": "groups", "benchmark": "MKT", "estimation_window": [-250, -21], "windows": [[0, 1], [-1, 1]],
        "events": [
            {"id": "three", "date": dates[I0].date().isoformat(), "tickers": ["LEAK", "CALM", "GAPPY"]},
            {"id": "one", "date": dates[I0 - 40].date().isoformat(), "tickers": ["CALM"]},
        ],
    })
    results = attach_catalogue(compute_study(cfg, price_data(closes)))
    events = results.extras["catalogue"].events.set_index("event")
    ars = results.abnormal_returns.query("rel_day == 0")
    three = ars.loc[ars["event"] == "three", "abnormal_return"].to_numpy()
    expected = stats.ttest_1samp(three, 0.0)
    assert events.loc["three", "test"] == "cs_t" and events.loc["three", "n"] == len(three) == 2
    assert events.loc["three", "t"] == pytest.approx(expected.statistic, rel=1e-10)
    assert events.loc["three", "p_value"] == pytest.approx(expected.pvalue, rel=1e-10)
    single = results.cars.query("event == 'one' and window_start == 0 and window_end == 0")
    assert single.empty  # no [0, 0] window: the lone stock's row says so instead of a test
    assert events.loc["one", "n"] == 1 and "add the window [0, 0]" in events.loc["one", "note"]

    drift = results.extras["drift"].baskets.set_index("event")
    cars = results.drift.set_index(["event", "ticker"])["car"]
    present = cars.loc["three"].dropna().to_numpy()
    expected = stats.ttest_1samp(present, 0.0)
    assert drift.loc["three", "n"] == len(present) == 2
    assert drift.loc["three", "t"] == pytest.approx(expected.statistic, rel=1e-10)
    assert drift.loc["three", "p_value"] == pytest.approx(expected.pvalue, rel=1e-10)
    own = results.drift.set_index(["event", "ticker"]).loc[("one", "CALM")]
    assert drift.loc["one", "n"] == 1 and drift.loc["one", "t"] == own["t"]
    assert drift.loc["one", "p_value"] == own["p_value"]
    assert drift.loc["one", "note"] == "one stock: its own t-test"


# --------------------------------------------------------------------------- the 2025 stakes on real data


@pytest.fixture(scope="module")
def stakes(market_parquet, tmp_path_factory):
    out = tmp_path_factory.mktemp("stakes")
    code, stdout, stderr = invoke("run", STAKES, "--prices", market_parquet, "--out", out)
    assert code == 0, stderr
    return out, stdout, json.loads((out / "results.json").read_text())


@pytest.mark.shared_data
def test_each_event_day0_from_its_stated_timing(stakes):
    out, stdout, doc = stakes
    day0 = {e["event"]: e["day0"] for e in doc["events"]}
    assert day0 == {"mp-dod": "2025-07-10", "intc-stake": "2025-08-22", "lac-doe": "2025-10-01",
                    "tmq-stake": "2025-10-07"}
    assert "announced Tue 2025-09-30 after the close → day 0 Wed 2025-10-01" in stdout
    assert "announced Mon 2025-10-06 after the close → day 0 Tue 2025-10-07" in stdout
    ars = pd.read_csv(out / "abnormal_returns.csv")
    day0_ar = ars[ars.rel_day == 0].set_index("event")
    rows = {r["event"]: r for r in doc["catalogue"]["events"]}
    for event, date in day0.items():
        assert day0_ar.loc[event, "date"] == date
        assert rows[event]["aar"] == pytest.approx(day0_ar.loc[event, "abnormal_return"], abs=1e-12)
        assert rows[event]["day0"] == date and "→ day 0" in rows[event]["mapping"]
    assert rows["tmq-stake"]["aar"] > 1.5 and rows["mp-dod"]["aar"] > 0.4  # TMQ +211%, MP +50.6% raw
    html = (out / "report.html").read_text()
    assert 'id="catalogue"' in html and "announced Tue 2025-09-30 after the close → day 0 Wed 2025-10-01" in html


@pytest.mark.shared_data
def test_stacked_caar_and_its_tests_match_an_independent_computation(stakes):
    out, stdout, doc = stakes
    cars = pd.read_csv(out / "cars.csv")
    stacked = pd.DataFrame(doc["catalogue"]["stacked"])
    tests = pd.DataFrame(doc["catalogue"]["tests"])
    assert set(stacked["n_events"]) == {4} and set(stacked["n"]) == {4}
    assert stacked["events"].iloc[0] == "mp-dod, intc-stake, lac-doe, tmq-stake"
    for row in stacked.itertuples(index=False):
        part = cars[(cars.window_start == row.window_start) & (cars.window_end == row.window_end)]
        assert row.caar == pytest.approx(part["car"].mean(), abs=1e-12)
        found = tests[(tests.window_start == row.window_start) & (tests.window_end == row.window_end)]
        found = found.set_index("test")
        ref = stats.ttest_1samp(part["car"], 0.0)
        assert found.loc["cs_t", "statistic"] == pytest.approx(ref.statistic, rel=1e-10)
        assert found.loc["cs_t", "p_value"] == pytest.approx(ref.pvalue, rel=1e-8)
        bmp = stats.ttest_1samp(part["car"] / part["se"], 0.0)
        assert found.loc["bmp_t", "statistic"] == pytest.approx(bmp.statistic, rel=1e-10)
        assert found.loc["bmp_t", "p_value"] == pytest.approx(bmp.pvalue, rel=1e-8)
        assert "event_t" not in found.index  # one stock per event: it would repeat cs_t
    notes = doc["catalogue"]["notes"]
    assert any("lac-doe" in n and "tmq-stake" in n for n in notes)  # 4 trading days apart: windows overlap
    assert "Stacked CAAR over the events" in stdout


@pytest.mark.shared_data
def test_lac_leak_shows_as_pre_event_drift(stakes, market_parquet):
    out, stdout, doc = stakes
    drift = doc["drift"]
    assert drift["window"] == [-20, -1] and drift["caveat"] is None
    lac = next(r for r in drift["series"] if r["ticker"] == "LAC")
    assert lac["car"] > 0.8 and lac["p_value"] < 0.001
    closes = read_parquet_closes(market_parquet, ["LAC"])
    raw = closes["LAC"].pct_change().loc["2025-09-24"]
    assert raw == pytest.approx(0.9577, abs=5e-4)
    assert lac["peak_date"] == "2025-09-24" and lac["peak_rel_day"] == -5
    assert lac["peak_return"] == pytest.approx(raw, abs=1e-12)
    others = [r for r in drift["series"] if r["ticker"] != "LAC"]
    assert all(abs(r["car"]) < lac["car"] / 3 for r in others)
    html = (out / "report.html").read_text()
    assert 'id="drift"' in html and "+95.77%" in html
    assert "LAC vs SPY [lac-doe]: +" in stdout and "Wed 2025-09-24 (day -5): return +95.77%" in stdout


@pytest.mark.shared_data
def test_jpm_first_investment_runs_with_a_peer_comparison(market_parquet, tmp_path):
    code, stdout, stderr = invoke("run", PPTA, "--prices", market_parquet, "--out", tmp_path, "--quiet")
    assert code == 0, stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["events"][0]["day0"] == "2025-10-27" and "catalogue" not in doc
    pairs = pd.read_csv(tmp_path / "comparisons.csv")
    assert set(zip(pairs.basket_a, pairs.basket_b)) == {("ppta", "critical_minerals")}
    assert pairs["p_welch"].isna().all() and pairs["p_permutation"].between(0, 1).all()
    ars = pd.read_csv(tmp_path / "abnormal_returns.csv")
    ppta = ars[(ars.ticker == "PPTA") & (ars.rel_day == 0)].iloc[0]
    assert ppta["return"] == pytest.approx(0.0661, abs=5e-4)  # EVENTS.md: PPTA +6.6%


def test_a_shared_basket_on_two_dates_stacks_by_basket_with_an_event_level_t(planted):
    """Two events, one shared basket of three stocks: stacked N = 6, and a t across the two event means."""
    dates, closes = planted
    cfg = config_from_dict({
        "name": "two-dates", "benchmark": "MKT", "estimation_window": [-270, -21],
        "windows": [[0, 0], [0, 1], [-10, 10]], "ar_span": [-10, 10],
        "events": [{"id": "a", "date": dates[I0].date().isoformat()},
                   {"id": "b", "date": dates[I0 - 12].date().isoformat()}],
        "baskets": [{"name": "trio", "tickers": ["LEAK", "CALM", "GAPPY"]}],
    })
    results = compute_study(cfg, price_data(closes.ffill()))
    cat = catalogue(results)
    assert set(cat.stacked["stack"]) == {"trio"} and set(cat.stacked["n"]) == {6}
    cars = results.cars[(results.cars.window_start == 0) & (results.cars.window_end == 1)]
    row = cat.stacked[(cat.stacked.window_start == 0) & (cat.stacked.window_end == 1)].iloc[0]
    assert row.caar == pytest.approx(cars["car"].mean(), abs=1e-14) and row.events == "a, b"
    tests = cat.tests[(cat.tests.window_start == 0) & (cat.tests.window_end == 1)].set_index("test")
    means = cars.groupby("event")["car"].mean()
    ref = stats.ttest_1samp(means, 0.0)
    assert tests.loc["event_t", "statistic"] == pytest.approx(ref.statistic, rel=1e-10)
    assert tests.loc["event_t", "p_value"] == pytest.approx(ref.pvalue, rel=1e-8)
    assert tests.loc["cs_t", "statistic"] == pytest.approx(stats.ttest_1samp(cars["car"], 0.0).statistic, rel=1e-10)
    (note,) = cat.notes  # 12 sessions apart: only [-10,+10] shares calendar days
    assert "share calendar days in the window(s) [-10,+10]:" in note
