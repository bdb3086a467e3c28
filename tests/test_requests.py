"""Request files: one row per firm-event, every firm-event measured at once.

Known answers: each request row equals the single-event study of the same
firm and date; a firm in three events counts three times, with N, the BMP t,
the Kolari-Pynnönen t and the day-0-clustered t checked against a plain
per-firm-event computation (numpy least squares, MacKinlay's variance, a
double loop over pairs); bad rows land in excluded.csv with their reason.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from scipy import stats
from scipy.stats import rankdata

from evstudy.cli import cli
from evstudy.abnormal import window_selectors
from evstudy.config import Window, ad_hoc_config, load_config
from evstudy.errors import ConfigError, InsufficientDataError
from evstudy.firm_events import (
    GroupSums, corrado_from_sums, rank_sums, run_request,
)
from evstudy.inference import corrado_rank, generalized_sign, generalized_sign_from_shares
from evstudy.requests import RequestConfig, read_request
from evstudy.study import compute_study

from helpers import closes_from_returns, nyse_dates, price_data
from market_fakes import market

WINDOWS = tuple(Window(*w) for w in ((0, 0), (-1, 1), (0, 5)))


def _request(tmp_path, rows: list[dict], name: str = "request.csv", **settings) -> tuple[RequestConfig, object]:
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    config = RequestConfig(events_file=str(path), **settings)
    return config, read_request(path, config)


def _cars_equal_the_single_run(results, event_id: str, single) -> pd.DataFrame:
    """Assert one firm-event's CAR rows equal the single-event run's to 1e-10; return its rows."""
    ours = results.cars[results.cars["event_id"] == event_id]
    theirs = single.cars.set_index(["window_start", "window_end"]).loc[list(zip(ours["window_start"], ours["window_end"]))]
    for column in ("car", "se", "t", "p_value"):
        np.testing.assert_allclose(ours[column].to_numpy(), theirs[column].to_numpy(), rtol=0, atol=1e-10)
    return ours


def _long_parquet(closes: pd.DataFrame, path) -> str:
    long = closes.rename_axis("date").reset_index().melt(id_vars="date", var_name="ticker", value_name="close")
    long.dropna(subset=["close"]).to_parquet(path, index=False)
    return str(path)


def test_each_request_row_equals_the_single_event_run(tmp_path):
    closes = market()
    rows = [
        {"event_id": "a", "ticker": "AAA", "date": "2024-03-13", "timing": "", "benchmark": ""},
        {"event_id": "b", "ticker": "BBB", "date": "2024-03-13", "timing": "during", "benchmark": "QQQ"},
        {"event_id": "c", "ticker": "CCC", "date": "2024-03-16", "timing": "", "benchmark": ""},  # a Saturday
        {"event_id": "d", "ticker": "AAA", "date": "2024-04-05", "timing": "after_close", "benchmark": ""},
        {"event_id": "e", "ticker": "EXT", "date": "2024-02-01", "timing": "", "benchmark": ""},
    ]
    config, request = _request(tmp_path, rows, windows=WINDOWS)
    results = run_request(config, request, price_data(closes))
    # EXT's estimation window holds a bad tick (x5, undone the next day): the single-event run excludes it
    # as a price glitch, and so must the request (issue 11: no number explained by a glitch without a flag).
    assert list(results.excluded["event_id"]) == ["e"]
    assert "price glitch" in results.excluded["reason"].iat[0]
    for row in rows[:-1]:
        event = row["date"] + (f":{row['timing']}" if row["timing"] else "")
        single = compute_study(ad_hoc_config(event=event, tickers=[row["ticker"]], benchmark=row["benchmark"] or "SPY",
                                             windows=WINDOWS), price_data(closes))
        ours = _cars_equal_the_single_run(results, row["event_id"], single)
        fit = single.fits.iloc[0]
        assert abs(ours["alpha"].iat[0] - fit["alpha"]) < 1e-10 and abs(ours["beta"].iat[0] - fit["beta"]) < 1e-10
        assert int(ours["n_obs"].iat[0]) == int(fit["n_obs"])
        assert ours["day0"].iat[0] == single.timelines[0].day0


@pytest.mark.parametrize("model", ["constant_mean", "market_adjusted"])
def test_each_request_row_equals_the_single_event_run_of_every_model(tmp_path, model):
    """The compiled kernel's constant-mean and market-adjusted branches: the single-event run's numbers."""
    closes = market()
    rows = [{"event_id": "a", "ticker": "AAA", "date": "2024-03-13"}, {"event_id": "b", "ticker": "BBB",
                                                                       "date": "2024-04-05"}]
    config, request = _request(tmp_path, rows, windows=WINDOWS, model=model)
    results = run_request(config, request, price_data(closes))
    assert results.excluded.empty
    for row in rows:
        single = compute_study(ad_hoc_config(event=row["date"], tickers=[row["ticker"]], model=model, windows=WINDOWS),
                               price_data(closes))
        ours = _cars_equal_the_single_run(results, row["event_id"], single)
        fit = single.fits.iloc[0]
        np.testing.assert_allclose([ours["alpha"].iat[0], ours["sigma"].iat[0]], [fit["alpha"], fit["sigma"]],
                                   rtol=0, atol=1e-10)
        assert int(ours["n_obs"].iat[0]) == int(fit["n_obs"])


def _clean_market(seed: int = 3) -> pd.DataFrame:
    """Complete data (no gaps): market model stocks with a common shock on some days."""
    rng = np.random.default_rng(seed)
    days = nyse_dates(420)
    m = rng.normal(0.0004, 0.01, 420)
    shock = rng.normal(0, 0.01, 420)  # a same-day shock shared by the stocks: correlated residuals
    returns = {"SPY": m}
    for i, name in enumerate(("AAA", "BBB", "CCC", "DDD")):
        returns[name] = 0.0002 + (0.8 + 0.2 * i) * m + shock + rng.normal(0, 0.012, 420)
    return closes_from_returns(returns, days)


def _independent(closes: pd.DataFrame, ticker: str, day0: pd.Timestamp, window: Window) -> tuple[float, float, np.ndarray]:
    """CAR, its MacKinlay SE and the estimation residuals of one firm-event, by numpy least squares."""
    r = closes.pct_change()
    i0 = closes.index.get_loc(day0)
    est = slice(i0 - 250, i0 - 10)
    y, x = r[ticker].to_numpy()[est], r["SPY"].to_numpy()[est]
    X = np.column_stack([np.ones_like(x), x])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    s2 = resid @ resid / (len(y) - 2)
    ev = slice(i0 + window.start, i0 + window.end + 1)
    Xe = np.column_stack([np.ones(window.length), r["SPY"].to_numpy()[ev]])
    car = float((r[ticker].to_numpy()[ev] - Xe @ beta).sum())
    v = Xe.sum(axis=0)
    se = float(np.sqrt(s2 * (window.length + v @ np.linalg.inv(X.T @ X) @ v)))
    return car, se, resid


def test_a_firm_in_three_events_counts_three_times(tmp_path):
    closes = _clean_market()
    days = closes.index
    d1, d2, d3 = days[300], days[330], days[360]
    rows = [
        {"event_id": "q1", "ticker": "AAA", "date": f"{d1:%Y-%m-%d}"},
        {"event_id": "q2", "ticker": "AAA", "date": f"{d2:%Y-%m-%d}"},
        {"event_id": "q3", "ticker": "AAA", "date": f"{d3:%Y-%m-%d}"},
        {"event_id": "q1", "ticker": "BBB", "date": f"{d1:%Y-%m-%d}"},
        {"event_id": "q1", "ticker": "CCC", "date": f"{d1:%Y-%m-%d}"},
        {"event_id": "q2", "ticker": "DDD", "date": f"{d2:%Y-%m-%d}"},
    ]
    window = Window(-1, 1)
    config, request = _request(tmp_path, rows, windows=(window,))
    results = run_request(config, request, price_data(closes))
    group = results.groups.iloc[0]
    assert group["n"] == 6 and group["n_firms"] == 4 and group["n_days"] == 3

    picks = [(r["ticker"], pd.Timestamp(r["date"])) for r in rows]
    measured = [_independent(closes, t, d, window) for t, d in picks]
    scar = np.array([car / se for car, se, _ in measured])
    n = len(scar)
    bmp = scar.mean() / (scar.std(ddof=1) / np.sqrt(n))
    tests = results.tests.set_index("test")
    assert tests.loc["bmp_t", "n"] == 6
    assert tests.loc["bmp_t", "statistic"] == pytest.approx(bmp, abs=1e-9)
    assert tests.loc["bmp_t", "p_value"] == pytest.approx(2 * stats.t.sf(abs(bmp), n - 1), abs=1e-9)
    # Kolari-Pynnönen: pairs sharing day 0 correlated over their common estimation days, other pairs 0.
    total = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            if picks[i][1] == picks[j][1]:
                total += np.corrcoef(measured[i][2], measured[j][2])[0, 1]
    rbar = total / (n * (n - 1) / 2)
    kp = bmp * np.sqrt((1 - rbar) / (1 + (n - 1) * rbar))
    assert rbar > 0.05  # the shared shock makes same-day residuals correlated
    assert tests.loc["kp_bmp_t", "statistic"] == pytest.approx(kp, abs=1e-9)
    # Clustered by day 0: CR1 variance of the mean with G = 3 clusters, t with G - 1 df.
    cars = np.array([car for car, _, _ in measured])
    dev = cars - cars.mean()
    sums = {}
    for (_, day), d in zip(picks, dev):
        sums[day] = sums.get(day, 0.0) + d
    var = 3 / 2 * sum(u**2 for u in sums.values()) / n**2
    clustered = cars.mean() / np.sqrt(var)
    assert tests.loc["clustered_cs_t", "statistic"] == pytest.approx(clustered, abs=1e-9)
    assert tests.loc["clustered_cs_t", "p_value"] == pytest.approx(2 * stats.t.sf(abs(clustered), 2), abs=1e-9)
    assert tests.loc["cs_t", "statistic"] == pytest.approx(cars.mean() / (cars.std(ddof=1) / np.sqrt(n)), abs=1e-9)
    # An earlier event of the same firm inside a firm-event's estimation window is flagged; a later one,
    # after its event window, is not: q1 has none, q2 has q1, q3 has q1 and q2 (30 sessions apart).
    overlaps = results.firm_events.set_index(["event_id", "ticker"])["overlaps"]
    assert overlaps[("q1", "AAA")] == 0 and overlaps[("q2", "AAA")] == 1 and overlaps[("q3", "AAA")] == 2
    assert overlaps[("q1", "BBB")] == 0


def test_drop_overlaps_moves_them_to_excluded(tmp_path):
    closes = _clean_market()
    days = closes.index
    rows = [{"event_id": f"e{i}", "ticker": t, "date": f"{days[d]:%Y-%m-%d}"}
            for i, (t, d) in enumerate((("AAA", 300), ("AAA", 305), ("CCC", 400)))]
    rows.append({"event_id": "e9", "ticker": "BBB", "date": f"{days[300]:%Y-%m-%d}"})
    config, request = _request(tmp_path, rows, windows=(Window(0, 1),), drop_overlaps=True)
    results = run_request(config, request, price_data(closes))
    assert sorted(results.firm_events["event_id"]) == ["e2", "e9"]
    reasons = results.excluded.set_index("event_id")["reason"]
    assert "overlaps 1 other event(s) of AAA" in reasons["e0"]


def test_bad_rows_are_listed_with_their_reason_and_the_rest_is_measured(tmp_path):
    rows = [
        {"event_id": "ok", "ticker": "AAA", "date": "2024-03-13", "timing": ""},
        {"event_id": "nope", "ticker": "ZZZZ", "date": "2024-03-13", "timing": ""},
        {"event_id": "early", "ticker": "BBB", "date": "2019-05-01", "timing": ""},
        {"event_id": "late", "ticker": "LATE", "date": "2024-03-13", "timing": ""},
        {"event_id": "noon", "ticker": "CCC", "date": "2024-03-13", "timing": "noon"},
        {"event_id": "when", "ticker": "CCC", "date": "13/03/2024", "timing": ""},
        {"event_id": "ok", "ticker": "AAA", "date": "2024-03-14", "timing": ""},
        {"event_id": "end", "ticker": "BBB", "date": "2024-09-03", "timing": ""},
    ]
    config, request = _request(tmp_path, rows)
    results = run_request(config, request, price_data(market()))
    assert results.firm_events["event_id"].tolist() == ["ok"]
    reasons = dict(zip(results.excluded["row"], results.excluded["reason"]))
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8]
    assert "ticker ZZZZ has no prices" in reasons[2]
    assert "date 2019-05-01 is outside the price data" in reasons[3]
    assert "only 0 valid returns in the estimation window" in reasons[4]
    assert "timing 'noon' is not one of" in reasons[5]
    assert "'13/03/2024' is not a date" in reasons[6]
    assert "duplicate of row 1" in reasons[7]
    assert "the event window runs to day +10" in reasons[8]


def test_a_malformed_request_file_is_one_clear_error(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("event,ticker,date\nx,AAA,2024-03-13\n")
    with pytest.raises(ConfigError, match="has no column 'event_id'"):
        read_request(path, RequestConfig(events_file=str(path)))
    with pytest.raises(ConfigError, match="cannot be used with a request file"):
        RequestConfig(events_file=str(path), model="two_index")


@pytest.mark.parametrize("text, by_arrow", [
    ("\ufeffevent_id,ticker,date,group\ne1,aaa,2024-03-13,up\n\ne2, BBB ,2024-03-14,\n", True),  # BOM, blank line
    ('event_id,ticker,date,label\r\ne1,AAA,2024-03-13,"a ""q""\nb"\r\ne2,NA,2024-03-14,nan', True),  # quotes, NA words
    ("event_id,ticker,date\n", True),  # no data row
    ("event_id,ticker,date,label\ne1,AAA,2024-03-13\ne2,BBB,2024-03-14,x\n", False),  # a short row: pandas pads it
    ("event_id,ticker,date,date\ne1,AAA,2024-03-13,2024-03-14\n", False),  # a repeated column: pandas renames it
])
def test_a_request_csv_reads_as_pandas_reads_it(tmp_path, text, by_arrow):
    from evstudy.requests import _read_plain_csv, _read_table

    path = tmp_path / "r.csv"
    path.write_text(text, encoding="utf-8")
    expected = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    expected.columns = [c.strip().lower() for c in expected.columns]
    if "date.1" in expected.columns:
        with pytest.raises(ConfigError, match="unknown column 'date.1'"):
            _read_table(path)
    else:
        pd.testing.assert_frame_equal(_read_table(path), expected)
    assert (_read_plain_csv(path) is not None) == by_arrow  # Arrow reads the rectangular files, pandas the others


def test_rank_sums_average_ties_like_scipy():
    rng = np.random.default_rng(5)
    values = rng.standard_normal((40, 30))
    values[::3] = rng.integers(0, 6, (14, 30))  # many ties in every third row
    values[rng.random(values.shape) < 0.1] = np.nan
    codes = np.arange(40) % 3  # three groups
    selectors = np.array([[1.0] * 5, [0.0, 1.0, 1.0, 0.0, 0.0]])  # the whole span; a window of two days
    total, count = rank_sums(values[:, :25], values[:, 25:], codes, 3, selectors)
    for w, pool in enumerate((np.ones(30, dtype=bool), np.r_[np.ones(25, dtype=bool), selectors[1] > 0])):
        pooled = np.where(pool, values, np.nan)
        expected = rankdata(pooled, axis=1, nan_policy="omit") / (np.isfinite(pooled).sum(axis=1, keepdims=True) + 1)
        for g in range(3):
            member = codes == g
            np.testing.assert_allclose(total[g, w], np.nansum(expected[member], axis=0), atol=1e-12)
            np.testing.assert_array_equal(count[g, w], np.isfinite(pooled[member]).sum(axis=0))


def test_rank_sums_of_rows_with_and_without_ties_need_no_scipy_stats():
    """The request engine's rank sums run without scipy.stats (a second of start-up), ties included."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from evstudy.firm_events import rank_sums\n"
        "rng = np.random.default_rng(1)\n"
        "est, event = rng.standard_normal((30, 40)), rng.standard_normal((30, 5))\n"
        "est[::4, :3] = 0.5  # ties\n"
        "est[::5, 7] = np.nan\n"
        "rank_sums(est, event, np.arange(30) % 2, 2, np.ones((2, 5)))\n"
        "assert 'scipy.stats' not in sys.modules, 'scipy.stats was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_corrado_and_sign_from_block_sums_equal_the_inference_battery():
    rng = np.random.default_rng(9)
    est = rng.standard_normal((50, 120))  # (firm-events x L)
    event = rng.standard_normal((50, 7)) + 0.3
    est[rng.random(est.shape) < 0.05] = np.nan
    rel = np.arange(-3, 4)
    windows = [Window(0, 0), Window(-1, 1), Window(0, 3)]
    selectors = window_selectors(rel, windows)
    total, count = rank_sums(est, event, np.zeros(50, dtype=np.int64), 1, selectors)
    ours = corrado_from_sums(GroupSums(total[0], count[0], np.zeros(0), np.zeros((0, 0))), 50, 7, selectors)
    theirs = corrado_rank(est.T, event.T, selectors)
    np.testing.assert_allclose(ours.statistic, theirs.statistic, atol=1e-12)
    cars = selectors @ event.T
    valid = np.isfinite(est)
    share = (valid & (est > 0)).sum(axis=1) / valid.sum(axis=1)
    np.testing.assert_allclose(generalized_sign_from_shares(cars, share[None, :], "none").statistic,
                               generalized_sign(cars, est.T).statistic, atol=1e-12)


def test_cli_events_writes_every_output(tmp_path):
    closes = market()
    prices = _long_parquet(closes, tmp_path / "prices.parquet")
    rows = [{"event_id": f"e{i}", "ticker": t, "date": "2024-03-13", "group": g}
            for i, (t, g) in enumerate((("AAA", "up"), ("BBB", "up"), ("CCC", "down"), ("QQQ", "down"), ("NOPE", "up")))]
    request = tmp_path / "firm events.csv"
    pd.DataFrame(rows).to_csv(request, index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--events", str(request), "--prices", prices, "--out", str(out),
                                      "--window", "0,0", "--window", "-1,1"])
    assert result.exit_code == 0, result.output
    for name in ("cars.parquet", "cars.csv", "groups.csv", "tests.csv", "excluded.csv", "results.json", "report.html"):
        assert (out / name).is_file(), name
    cars = pq.read_table(out / "cars.parquet").to_pandas()
    assert cars.columns[0] == "event_id" and len(cars) == 4 * 2
    assert set(pd.read_csv(out / "groups.csv")["group"]) == {"up", "down", "(all)"}
    excluded = pd.read_csv(out / "excluded.csv")
    assert excluded["ticker"].tolist() == ["NOPE"]
    summary = json.loads((out / "results.json").read_text())
    assert summary["counts"] == {**summary["counts"], "rows": 5, "included": 4, "excluded": 1}
    tests = pd.read_csv(out / "tests.csv")
    row = tests[(tests["group"] == "up") & (tests["test"] == "bmp_t") & (tests["window_start"] == 0)].iloc[0]
    assert summary["tests"][[t["group"] == "up" and t["test"] == "bmp_t" and t["window_start"] == 0
                             for t in summary["tests"]].index(True)]["p_value"] == pytest.approx(row["p_value"], abs=1e-15)


def test_config_with_events_file(tmp_path):
    closes = market()
    prices = _long_parquet(closes, tmp_path / "prices.parquet")
    pd.DataFrame([{"event_id": "a", "ticker": "AAA", "date": "2024-03-13"},
                  {"event_id": "b", "ticker": "BBB", "date": "2024-03-13"}]).to_csv(tmp_path / "events.csv", index=False)
    config = tmp_path / "study.toml"
    config.write_text('name = "req"\nevents_file = "events.csv"\nwindows = [[0, 0]]\ndrop_overlaps = true\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(config), "--prices", prices, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out / "cars.csv")) == 2
    assert json.loads((out / "results.json").read_text())["parameters"]["drop_overlaps"] is True
    with pytest.raises(ConfigError, match="names an events_file"):
        load_config(config)
    config.write_text('events_file = "events.csv"\n[[baskets]]\nname = "x"\ntickers = ["AAA"]\n')
    result = CliRunner().invoke(cli, ["run", str(config), "--prices", prices, "--out", str(out)])
    assert result.exit_code == 2 and "key 'baskets'" in result.output


def test_request_without_prices_is_a_clear_error(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame([{"event_id": "a", "ticker": "AAA", "date": "2024-03-13"}]).to_csv(path, index=False)
    result = CliRunner().invoke(cli, ["run", "--events", str(path)])
    assert result.exit_code == 2 and "needs --prices" in result.output


def test_a_request_with_no_usable_row_says_why(tmp_path):
    prices = _long_parquet(market(), tmp_path / "prices.parquet")
    path = tmp_path / "r.csv"
    pd.DataFrame([{"event_id": "a", "ticker": "ZZZZ", "date": "2024-03-13"},
                  {"event_id": "b", "ticker": "AAA", "date": "13.03.2024"}]).to_csv(path, index=False)
    result = CliRunner().invoke(cli, ["run", "--events", str(path), "--prices", prices, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "row 1: ticker ZZZZ has no prices" in result.output and "row 2: date '13.03.2024'" in result.output


def test_parquet_request_with_dates_labels_and_benchmarks(tmp_path):
    path = tmp_path / "r.parquet"
    pd.DataFrame({
        "event_id": ["a", "b", "c"],
        "ticker": ["aaa", "BBB", "CCC"],
        "date": pd.to_datetime(["2024-03-13", "2024-03-13", "2024-03-13 15:30"], format="ISO8601"),
        "benchmark": ["QQQ", None, ""],
        "label": ["guidance up", "", ""],
    }).to_parquet(path, index=False)
    config = RequestConfig(events_file=str(path), windows=(Window(0, 0),))
    request = read_request(path, config)
    assert request.rows["ticker"].tolist() == ["AAA", "BBB"]
    assert request.rows["benchmark"].tolist() == ["QQQ", "SPY"]
    assert "has a time of day" in request.excluded["reason"].iat[0]
    results = run_request(config, request, price_data(market()))
    assert results.cars.set_index("event_id").loc["a", "label"] == "guidance up"
    assert results.cars.set_index("event_id").loc["a", "benchmark"] == "QQQ"


def test_a_group_whose_every_row_is_excluded_is_named_not_a_crash(tmp_path):
    rows = [{"event_id": "a", "ticker": "AAA", "date": "2024-03-13", "group": "fine"},
            {"event_id": "b", "ticker": "BBB", "date": "2024-03-13", "group": "fine"},
            {"event_id": "c", "ticker": "ZZZZ", "date": "2024-03-13", "group": "ghost"}]
    config, request = _request(tmp_path, rows, windows=(Window(0, 0),))
    results = run_request(config, request, price_data(market()))
    assert set(results.groups["group"]) == {"fine", "(all)"}
    assert any("group(s) 'ghost'" in note for note in results.notes)


def test_request_only_and_study_only_options_are_not_mixed(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame([{"event_id": "a", "ticker": "AAA", "date": "2024-03-13"}]).to_csv(path, index=False)
    result = CliRunner().invoke(cli, ["run", "--events", str(path), "--event", "2024-03-13"])
    assert result.exit_code == 2 and "--event cannot be used with a request file" in result.output
    result = CliRunner().invoke(cli, ["run", "--event", "2024-03-13", "--tickers", "AAA", "--scheduler", "local"])
    assert result.exit_code == 2 and "--scheduler applies to request files only" in result.output


def test_the_run_screens_exclude_the_same_firm_events_with_the_same_words(tmp_path):
    """A glitch in the estimation window, an exact multiple of the benchmark, a flat benchmark: as `evstudy run`."""
    closes = _clean_market()
    day0 = closes.index[330]
    glitch = closes["BBB"].copy()
    glitch.iloc[200] *= 6.0  # a bad tick inside the estimation window, undone the next day
    closes["GLT"] = glitch
    closes["MUL"] = 3.7 * closes["SPY"]  # an exact multiple: residual sigma is rounding error
    flat = closes["SPY"].copy()
    flat.iloc[60:330] = flat.iloc[60]  # flat on every estimation day
    closes["FLT"] = flat
    rows = [
        {"event_id": "ok", "ticker": "AAA", "date": str(day0.date()), "benchmark": ""},
        {"event_id": "glitch", "ticker": "GLT", "date": str(day0.date()), "benchmark": ""},
        {"event_id": "multiple", "ticker": "MUL", "date": str(day0.date()), "benchmark": ""},
        {"event_id": "flat", "ticker": "CCC", "date": str(day0.date()), "benchmark": "FLT"},
    ]
    config, request = _request(tmp_path, rows, windows=WINDOWS)
    results = run_request(config, request, price_data(closes))
    reasons = dict(zip(results.excluded["event_id"], results.excluded["reason"]))
    assert set(reasons) == {"glitch", "multiple", "flat"}
    assert set(results.cars["event_id"]) == {"ok"}
    for row in rows[1:3]:  # the single-event run gives the same reason, word for word
        single = compute_study(ad_hoc_config(event=row["date"], tickers=[row["ticker"], "AAA"], benchmark="SPY",
                                             windows=WINDOWS), price_data(closes))
        fit = single.fits.set_index("ticker").loc[row["ticker"]]
        assert fit["status"] == "excluded" and fit["reason"] == reasons[row["event_id"]]
    assert reasons["glitch"].startswith("price glitch")
    assert reasons["multiple"].startswith("the model fits exactly")
    with pytest.raises(InsufficientDataError) as refused:  # run refuses the whole event; the request, that row
        compute_study(ad_hoc_config(event=rows[3]["date"], tickers=["CCC"], benchmark="FLT", windows=WINDOWS),
                      price_data(closes))
    assert reasons["flat"].startswith("benchmark FLT is flat on 100% of the estimation window")
    assert reasons["flat"] in str(refused.value)


def test_load_closes_answers_from_the_price_index_with_the_same_frame(tmp_path, monkeypatch):
    import evstudy.prices.subset as subset
    from evstudy.prices.dataset import ensure_index

    closes = _clean_market()
    closes["LATE"] = closes["AAA"].where(closes.index > closes.index[300])  # known, without a close in the range
    long = closes.rename_axis("date").reset_index().melt(id_vars="date", var_name="ticker", value_name="close")
    long["date"] = long["date"].astype("datetime64[us]")  # as the shared market file stores it
    path = tmp_path / "prices.parquet"
    long.dropna(subset=["close"]).to_parquet(path, index=False)
    wanted = ["AAA", "LATE", "SPY", "NOTINFILE"]
    start, end = closes.index[20].date(), closes.index[250].date()
    direct = subset.load_closes(path, wanted, start, end)  # a small file: no index, read directly
    assert ensure_index(path) is not None

    def no_file_read(*args, **kwargs):
        raise AssertionError("the file was read although it has an index")

    monkeypatch.setattr(subset, "_pivot", no_file_read)
    indexed = subset.load_closes(path, wanted, start, end)
    assert sorted(indexed.closes.columns) == sorted(direct.closes.columns) == ["AAA", "LATE", "SPY"]
    pd.testing.assert_frame_equal(indexed.closes[direct.closes.columns], direct.closes)
    assert indexed.location == direct.location and indexed.notes == direct.notes


def test_a_request_answered_from_the_price_index_view_equals_the_direct_read(tmp_path, monkeypatch):
    import evstudy.prices.subset as subset
    from evstudy.prices.dataset import ensure_index
    from evstudy.scale import run_request_file

    closes = _clean_market()
    closes.loc[closes.index[200], "BBB"] = -1.0  # an invalid close: a gap in both reads
    long = closes.rename_axis("date").reset_index().melt(id_vars="date", var_name="ticker", value_name="close")
    long["date"] = long["date"].astype("datetime64[us]")
    path = tmp_path / "prices.parquet"
    long.dropna(subset=["close"]).to_parquet(path, index=False)
    days = closes.index
    rows = [{"event_id": f"e{i}", "ticker": t, "date": str(days[d].date()), "group": g}
            for i, (t, d, g) in enumerate([("AAA", 300, "x"), ("BBB", 301, "x"), ("CCC", 300, "y"), ("AAA", 320, "y"),
                                           ("BBB", 380, "x"), ("DDD", 150, "y"), ("NOPE", 300, "x")])]
    config, _ = _request(tmp_path, rows, windows=WINDOWS)
    direct = run_request_file(config, path)  # a small file: read and pivoted
    assert ensure_index(path) is not None

    def no_file_read(*args, **kwargs):
        raise AssertionError("the file was read although it has an index")

    monkeypatch.setattr(subset, "_pivot", no_file_read)
    indexed = run_request_file(config, path)
    pd.testing.assert_frame_equal(indexed.cars, direct.cars)
    pd.testing.assert_frame_equal(indexed.tests, direct.tests)
    pd.testing.assert_frame_equal(indexed.excluded, direct.excluded)
    assert len(direct.cars) == 6 * len(WINDOWS) and direct.excluded["ticker"].tolist() == ["NOPE"]


def test_cars_csv_formatted_in_slices_is_the_one_pass_file(tmp_path, monkeypatch):
    import evstudy.report.request_files as request_files

    closes = market()
    prices = _long_parquet(closes, tmp_path / "prices.parquet")
    rows = [{"event_id": f"e{i}", "ticker": t, "date": d, "label": "=1+1" if i == 2 else f"row {i}"}
            for i, (t, d) in enumerate([("AAA", "2024-03-13"), ("BBB", "2024-03-13"), ("CCC", "2024-04-05")])]
    request = tmp_path / "events.csv"
    pd.DataFrame(rows).to_csv(request, index=False)
    written = {}
    for parts in (1, 4):
        monkeypatch.setattr(request_files, "CSV_PARTS", parts)
        out = tmp_path / f"out{parts}"
        result = CliRunner().invoke(cli, ["run", "--events", str(request), "--prices", prices, "--out", str(out)])
        assert result.exit_code == 0, result.output
        written[parts] = (out / "cars.csv").read_bytes()
    assert written[4] == written[1] and written[1].count(b"\n") == 1 + 3 * 6


def test_cars_csv_neutralizes_formula_labels_and_reads_back_as_the_parquet(tmp_path):
    closes = market()
    prices = _long_parquet(closes, tmp_path / "prices.parquet")
    rows = [{"event_id": "a", "ticker": "AAA", "date": "2024-03-13", "label": "=HYPERLINK(\"x\")", "group": "-up"},
            {"event_id": "b", "ticker": "BBB", "date": "2024-03-13", "label": "plain, \"quoted\"", "group": "-up"}]
    request = tmp_path / "events.csv"
    pd.DataFrame(rows).to_csv(request, index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--events", str(request), "--prices", prices, "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = pd.read_csv(out / "cars.csv", keep_default_na=False, na_values=[""])
    parquet = pq.read_table(out / "cars.parquet").to_pandas()
    assert set(text["label"]) == {"'=HYPERLINK(\"x\")", "plain, \"quoted\""}
    assert set(text["group"]) == {"'-up"} and set(parquet["group"]) == {"-up"}
    for column in ("car", "se", "t", "p_value", "alpha", "beta", "sigma"):
        np.testing.assert_array_equal(text[column].to_numpy(), parquet[column].to_numpy())  # shortest round-trip text
    assert text["date"].tolist() == [str(d) for d in parquet["date"]]


def test_cars_parquet_keeps_dictionaries_for_repeating_columns_only_and_reads_back_the_table(tmp_path):
    import pyarrow as pa

    from evstudy.report.request_files import _cars_table, _parquet

    closes = market()
    config, request = _request(tmp_path, [{"event_id": f"e{i}", "ticker": t, "date": "2024-03-13"}
                                          for i, t in enumerate(("AAA", "BBB", "CCC"))], windows=WINDOWS)
    table = _cars_table(run_request(config, request, price_data(closes)))
    written = pq.ParquetFile(pa.BufferReader(_parquet(table)))
    assert written.read().equals(table)
    chunks = written.metadata.row_group(0)
    dictionary = {chunks.column(i).path_in_schema: chunks.column(i).has_dictionary_page
                  for i in range(chunks.num_columns)}
    floats = {f.name for f in table.schema if pa.types.is_floating(f.type)}
    assert floats == {"car", "se", "t", "p_value", "alpha", "beta", "sigma"}
    assert not any(dictionary[name] for name in floats)
    assert all(dictionary[name] for name in dictionary if name not in floats)


def test_cars_built_block_by_block_do_not_depend_on_the_block_size(tmp_path):
    closes = market()
    rows = [{"event_id": f"e{i}", "ticker": t, "date": d, "label": f"row {i}"}
            for i, (t, d) in enumerate([("AAA", "2024-03-13"), ("NOPE", "2024-03-14"), ("BBB", "2024-03-13"),
                                        ("CCC", "2024-04-05"), ("QQQ", "2024-04-08")])]
    config, request = _request(tmp_path, rows, windows=WINDOWS)
    whole = run_request(config, request, price_data(closes))
    single = run_request(config, request, price_data(closes), block_size=1)  # some blocks keep no firm-event
    assert single.excluded["ticker"].tolist() == ["NOPE"] and single.car_table.num_rows == 4 * len(WINDOWS)
    assert single.car_table.column_names == whole.car_table.column_names
    assert single.car_table.equals(whole.car_table)
    assert single.cars["cluster_size"].tolist() == [2] * 6 + [1] * 6
    # Text columns of object dtype (pandas 2): an empty block's text columns have Arrow's null type.
    text = ["event_id", "ticker", "timing", "benchmark", "group", "label"]
    as_objects = dataclasses.replace(request, rows=request.rows.astype({c: object for c in text}))
    objects = run_request(config, as_objects, price_data(closes), block_size=1)
    pd.testing.assert_frame_equal(objects.cars, whole.cars)


def test_group_statistics_computed_when_asked_ignore_later_changes_to_the_tables(tmp_path):
    """groups/tests are computed on first use, from the run's own copy: editing firm_events first changes nothing."""
    closes = market()
    rows = [{"event_id": f"e{i}", "ticker": t, "date": d, "group": g} for i, (t, d, g) in enumerate(
        [("AAA", "2024-03-13", "up"), ("BBB", "2024-03-13", "up"), ("AAA", "2024-04-05", "down"),
         ("CCC", "2024-04-05", "down")])]
    config, request = _request(tmp_path, rows, windows=WINDOWS)
    reference = run_request(config, request, price_data(closes))
    edited = run_request(config, request, price_data(closes))
    edited.firm_events["group"] = "up"
    edited.firm_events["df"] = 1.0
    pd.testing.assert_frame_equal(edited.groups, reference.groups)
    pd.testing.assert_frame_equal(edited.tests, reference.tests)
    pd.testing.assert_frame_equal(edited.group_paths, reference.group_paths)
    assert set(reference.groups["group"]) == {"up", "down", "(all)"}


def test_compiled_kernels_are_kept_in_the_evstudy_cache_without_touching_numba_settings(tmp_path):
    """The kernels' compiled code goes to $EVSTUDY_CACHE/numba; the process's numba settings and env stay as they were."""
    import os
    import subprocess
    import sys

    code = (
        "import os, numpy as np, numba\n"
        "from evstudy import kernels\n"
        "z = np.zeros((1, 5))\n"
        "kernels.unit_cluster_sums(z, 5, np.zeros(1, np.int64), np.zeros(1, np.int64), np.full(1, -1), z.copy(),"
        " np.zeros(1))\n"
        "assert 'NUMBA_CACHE_DIR' not in os.environ and numba.config.CACHE_DIR == ''\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    subprocess.run([sys.executable, "-c", code], check=True, env={**env, "EVSTUDY_CACHE": str(tmp_path)})
    assert any(path.name.startswith("kernels.unit_cluster_sums") for path in (tmp_path / "numba").rglob("*.nbi"))


def test_a_benchmark_with_only_zero_closes_is_no_calendar_on_either_path():
    """The scheduler's calendar (calendar_days) and one machine's (close_matrix) refuse the same benchmark alike."""
    from evstudy.errors import DataSourceError
    from evstudy.firm_events import calendar_days, close_matrix_of

    closes = market()
    closes["SPY"] = 0.0
    data = price_data(closes)
    for calendar in (calendar_days, close_matrix_of):
        with pytest.raises(DataSourceError, match="benchmark SPY has no prices in .*choose a benchmark"):
            calendar(data, "SPY")
