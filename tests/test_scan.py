"""The whole-market scan: ranks, filters, q-values, agreement with the study engine, the report.

A small synthetic market (real NYSE sessions, one planted dirty ticker per
filter) checks each filter and the statistics against independent numpy OLS;
the real Parquet is scanned once per module through the CLI, as a user would.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from statsmodels.stats.multitest import multipletests

from evstudy.api import run_study
from evstudy.cli import cli
from evstudy.config import Window, ad_hoc_config, parse_event
from evstudy.errors import CalendarError, ConfigError, DataSourceError
from evstudy.report.scan_html import plotly_js, render_scan_html
from evstudy.scan import FILTERS, ScanConfig, bh_qvalues, run_scan, window_key

from helpers import closes_from_returns, nyse_dates, price_data

COVERED = ("MP", "USAR", "LAC")
WINDOWS = tuple(Window(*w) for w in ((0, 0), (-1, 1), (0, 1), (0, 5), (-5, 5), (-10, 10)))


def invoke(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


# --------------------------------------------------------------------------- a synthetic market

N_DAYS, DAY0 = 300, 270
BENCH = "SPY"


@pytest.fixture(scope="module")
def synthetic():
    """Six clean tickers (one with a planted +30% day-0 jump) and one dirty ticker per filter."""
    rng = np.random.default_rng(7)
    dates = nyse_dates(N_DAYS)
    market = rng.normal(0.0004, 0.01, N_DAYS)
    returns = {BENCH: market}
    for i in range(6):
        returns[f"OK{i}"] = 0.0002 * i + (0.5 + 0.2 * i) * market + rng.normal(0, 0.015, N_DAYS)
    returns["OK0"][DAY0] += 0.30
    returns["OK5"][DAY0] -= 0.20
    returns["INV"] = 0.9 * market + rng.normal(0, 0.02, N_DAYS)
    returns["FEW"] = 1.1 * market + rng.normal(0, 0.02, N_DAYS)
    returns["PENNY"] = 1.0 * market + rng.normal(0, 0.03, N_DAYS)
    flat = 0.8 * market + rng.normal(0, 0.02, N_DAYS)
    flat[rng.random(N_DAYS) < 0.7] = 0.0
    returns["FLAT"] = flat
    returns["GAP"] = 1.2 * market + rng.normal(0, 0.02, N_DAYS)
    returns["GLITCH"] = 1.0 * market + rng.normal(0, 0.02, N_DAYS)
    closes = closes_from_returns(returns, dates)
    closes.loc[dates[150], "GLITCH"] *= 5.0  # a bad tick: x5 for one day, undone the next
    closes["MULTIPLE"] = 3.0 * closes[BENCH]  # an exact multiple of the benchmark: R² = 1
    closes["PENNY"] = closes["PENNY"] / 250.0  # about $0.40
    closes.loc[dates[100], "INV"] = -1.0  # a vendor's negative close inside the estimation window
    closes.loc[dates[: DAY0 - 120], "FEW"] = np.nan  # listed 120 sessions before day 0: < 120 estimation returns
    closes.loc[dates[DAY0 + 3], "GAP"] = np.nan  # no close on day +3
    event = parse_event(dates[DAY0].date().isoformat())
    config = ScanConfig(event=event, highlight=("OK0", "PENNY", "NOPE"))
    return closes, config, run_scan(config, price_data(closes))


def test_each_filter_removes_its_planted_ticker(synthetic):
    _, _, res = synthetic
    removed = dict(zip(res.funnel["filter"], res.funnel["removed"]))
    assert removed == {
        "benchmark": 1, "invalid_price": 1, "price_glitch": 1, "min_returns": 1, "min_price": 1,
        "max_zero_share": 1, "unfittable": 1, "event_gap": 1,
    }
    assert list(res.funnel["filter"]) == [name for name, _ in FILTERS]
    assert sorted(res.table["ticker"]) == [f"OK{i}" for i in range(6)]
    assert (res.funnel["start"] - res.funnel["removed"].cumsum() == res.funnel["remaining"]).all()


def test_rank_follows_day0_ar_and_highlights_say_why(synthetic):
    _, _, res = synthetic
    table = res.table
    assert list(table["rank"]) == list(range(1, 7))
    assert (np.diff(table["ar_day0"]) <= 0).all()
    assert table["ticker"].iloc[0] == "OK0" and table["ticker"].iloc[-1] == "OK5"
    assert table.loc[table.ticker == "OK0", "highlighted"].item()
    hl = res.highlights.set_index("ticker")
    assert hl.loc["OK0", "status"] == "ranked" and hl.loc["OK0", "rank"] == 1
    assert hl.loc["OK0", "percentile"] == pytest.approx(100 / 6)
    assert hl.loc["PENNY", "status"] == "filtered" and hl.loc["PENNY", "reason"].startswith("min_price")
    assert hl.loc["NOPE", "status"] == "missing"


def _independent(closes: pd.DataFrame, ticker: str, windows) -> dict[str, float]:
    """Market-model AR and MacKinlay CAR stats for one ticker with numpy lstsq (no evstudy code)."""
    from scipy import stats

    r = closes[ticker] / closes[ticker].shift(1) - 1
    m = closes[BENCH] / closes[BENCH].shift(1) - 1
    est = slice(DAY0 - 250, DAY0 - 10)
    y, x = r.iloc[est].to_numpy(), m.iloc[est].to_numpy()
    ok = np.isfinite(y) & np.isfinite(x)
    X = np.column_stack([np.ones(ok.sum()), x[ok]])
    beta, *_ = np.linalg.lstsq(X, y[ok], rcond=None)
    resid = y[ok] - X @ beta
    df = ok.sum() - 2
    s2 = resid @ resid / df
    out = {"ar_day0": r.iloc[DAY0] - beta[0] - beta[1] * m.iloc[DAY0]}
    for w in windows:
        rows = slice(DAY0 + w.start, DAY0 + w.end + 1)
        ars = r.iloc[rows].to_numpy() - beta[0] - beta[1] * m.iloc[rows].to_numpy()
        v = np.array([w.length, m.iloc[rows].sum()])
        se = np.sqrt(s2 * (w.length + v @ np.linalg.inv(X.T @ X) @ v))
        car = ars.sum()
        out[f"car_{window_key(w)}"] = car
        out[f"t_{window_key(w)}"] = car / se
        out[f"p_{window_key(w)}"] = 2 * stats.t.sf(abs(car / se), df)
    return out


@pytest.mark.parametrize("ticker", ["OK0", "OK3", "OK5"])
def test_statistics_equal_independent_ols(synthetic, ticker):
    closes, config, res = synthetic
    row = res.table.set_index("ticker").loc[ticker]
    for key, value in _independent(closes, ticker, config.windows).items():
        assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_q_values_are_benjamini_hochberg_per_window(synthetic):
    _, config, res = synthetic
    for w in config.windows:
        key = window_key(w)
        expected = multipletests(res.table[f"p_{key}"], method="fdr_bh")[1]
        np.testing.assert_allclose(res.table[f"q_{key}"], expected, rtol=1e-12, atol=0)


def test_bh_matches_statsmodels_with_ties_nans_and_rows():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=(4, 500)) ** 3
    p[:, :40] = p[:, [40]]  # ties
    p[1, rng.choice(500, 60, replace=False)] = np.nan
    q = bh_qvalues(p)
    for row_p, row_q in zip(p, q):
        finite = np.isfinite(row_p)
        np.testing.assert_allclose(row_q[finite], multipletests(row_p[finite], method="fdr_bh")[1], rtol=1e-12)
        assert np.isnan(row_q[~finite]).all()
    assert bh_qvalues(np.array([0.01])).tolist() == [0.01]
    assert np.isnan(bh_qvalues(np.array([np.nan, np.nan]))).all()


def test_bad_parameters_are_typed_errors(synthetic):
    closes, config, _ = synthetic
    event = config.event
    with pytest.raises(ConfigError, match="--model 'factor'"):
        ScanConfig(event=event, model="factor")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--min-price -1"):
        ScanConfig(event=event, min_price=-1)
    with pytest.raises(ConfigError, match="--min-returns 500"):
        ScanConfig(event=event, min_returns=500)
    with pytest.raises(ConfigError, match="--max-zero-share 0"):
        ScanConfig(event=event, max_zero_share=0)
    with pytest.raises(ConfigError, match="overlaps"):
        ScanConfig(event=event, windows=(Window(-20, 0),))
    with pytest.raises(ConfigError, match="given twice"):
        ScanConfig(event=event, windows=(Window(0, 1), Window(0, 1)))
    with pytest.raises(DataSourceError, match="--benchmark QQQ"):
        run_scan(ScanConfig(event=event, benchmark="QQQ"), price_data(closes))
    late = parse_event(closes.index[-3].date().isoformat())
    with pytest.raises(CalendarError, match="data ends"):
        run_scan(ScanConfig(event=late), price_data(closes))


def test_scan_html_is_self_contained_and_escaped(synthetic):
    _, _, res = synthetic
    document = render_scan_html(res)
    bundle = plotly_js()
    assert document.count(bundle) == 1
    rest = document.replace(bundle, "")
    for needle in ('src="http', "src='http", 'href="http', "href='http", "@import", "url(http", "url(//"):
        assert needle not in rest.lower(), needle
    page = _Page(document)
    for tag, attrs in page.elements:
        assert tag != "link"
        for key in ("src", "href", "action", "data", "poster"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "ftp:")), (tag, attrs)
    specs = [json.loads(text) for attrs, text in page.scripts if attrs.get("type") == "application/json"]
    assert len(specs) == 3 and all(spec["data"] for spec in specs)
    assert len(rest) < 200_000, "the report beyond plotly.js should stay small"


class _Page(HTMLParser):
    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._script: dict[str, str | None] | None = None
        self._buffer: list[str] = []
        self.feed(document)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag == "script":
            self._script, self._buffer = dict(attrs), []

    def handle_data(self, data):
        if self._script is not None:
            self._buffer.append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._buffer)))
            self._script = None


def test_scan_html_template_is_compiled_once_into_the_cache(synthetic, tmp_path, monkeypatch):
    """The compiled template is kept in the evstudy cache and gives the same page; no usable cache, same page."""
    import datetime as dt
    import os

    _, _, res = synthetic
    when = dt.datetime(2026, 1, 2, 9, 30, tzinfo=dt.timezone.utc)
    first = render_scan_html(res, generated_at=when)
    folder = os.path.join(os.environ["EVSTUDY_CACHE"], "report-templates")
    assert len(os.listdir(folder)) == 1
    assert render_scan_html(res, generated_at=when) == first
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x", encoding="utf-8")
    monkeypatch.setenv("EVSTUDY_CACHE", str(blocked))
    assert render_scan_html(res, generated_at=when) == first


def test_trading_days_place_dated_events_like_the_nyse_calendar():
    """The scan places day 0 on the data's trading days; on the NYSE sessions that is the calendar's rule."""
    from evstudy.calendar import TradingDays, locate_day_zero, nyse_calendar

    sessions = nyse_calendar().sessions
    days = TradingDays(sessions[(sessions >= "2024-11-01") & (sessions <= "2026-02-27")])
    dates = pd.date_range("2024-11-01", "2026-02-20", freq="D")  # weekends, holidays, early closes
    for date in dates[::3]:
        for timing in ("", ":before_open", ":during", ":after_close"):
            event = parse_event(f"{date.date()}{timing}")
            assert locate_day_zero(event, days) == locate_day_zero(event), (date, timing)
    with pytest.raises(CalendarError, match="outside the trading days given"):
        locate_day_zero(parse_event("2026-06-01"), days)


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_column_blocks_in_threads_give_the_same_scan(synthetic, workers):
    """The tickers are screened in column blocks, one thread each: any split gives the same bits."""
    from evstudy.scan import scan_closes

    closes, config, _ = synthetic
    args = (config, closes.to_numpy(), closes.index.to_numpy().astype("datetime64[D]"), list(closes.columns))
    one = scan_closes(*args, location="synthetic", provenance={}, workers=1)
    split = scan_closes(*args, location="synthetic", provenance={}, workers=workers)
    assert one.columns.keys() == split.columns.keys()
    for name, values in one.columns.items():
        assert np.array_equal(values, split.columns[name]), name
    assert (one.removed, one.highlight_rows) == (split.removed, split.highlight_rows)


def _long_parquet(closes: pd.DataFrame, path) -> None:
    """``closes`` as a long (date, ticker, close) Parquet file without missing-close rows."""
    long = closes.rename_axis(index="date", columns="ticker").stack().dropna().rename("close").reset_index()
    long.to_parquet(path, index=False)


def test_scan_from_the_price_index_writes_the_same_files_without_pandas(synthetic, tmp_path):
    """Once a file has its local index, scan_market reads it without pandas or scipy.stats: the same scan.csv, scan.json and
    scan.html as run_scan on the frame the file's reader gives (one planted ticker per filter, highlights
    ranked, filtered and missing)."""
    import subprocess
    import sys

    from evstudy.prices import dataset
    from evstudy.prices.files import FileSource
    from evstudy.report.scan_files import scan_csv, scan_json
    from evstudy.scan import scan_dates, scan_market

    closes, config, _ = synthetic
    path = tmp_path / "market.parquet"
    _long_parquet(closes, path)
    when = pd.Timestamp("2026-01-02 09:30", tz="UTC").to_pydatetime()
    direct = run_scan(config, FileSource(path).load_all(*scan_dates(config)))
    assert dataset.indexed_market(path, *scan_dates(config)) is None  # no index yet: the file is read
    assert dataset.ensure_index(path) is not None
    assert dataset.indexed_market(path, *scan_dates(config)) is not None
    indexed = scan_market(config, path)
    assert scan_csv(indexed) == scan_csv(direct)
    assert scan_json(indexed) == scan_json(direct)
    assert render_scan_html(indexed, generated_at=when) == render_scan_html(direct, generated_at=when)
    pd.testing.assert_frame_equal(indexed.table, direct.table)
    pd.testing.assert_frame_equal(indexed.highlights, direct.highlights)

    out = tmp_path / "out"
    script = (
        "import sys; from evstudy.cli import main; "
        f"sys.argv = ['evstudy', 'scan', '--event', {config.event.date.isoformat()!r}, '--prices', {str(path)!r}, "
        f"'--out', {str(out)!r}, '--highlight', 'OK0,PENNY,NOPE']\n"
        "try:\n    main()\nexcept SystemExit as done:\n    assert not done.code, done.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pandas' or m.startswith('scipy.stats')))"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout.splitlines()[-1] == "[]", run.stdout  # neither pandas nor scipy.stats
    assert (out / "scan.csv").read_bytes() == scan_csv(direct)
    assert (out / "scan.json").read_text(encoding="utf-8") == scan_json(direct)


# --------------------------------------------------------------------------- the real market


@pytest.fixture(scope="module")
def real_scan(market_parquet, tmp_path_factory):
    """One CLI scan of 2025-10-13 over the whole real file: $1 floor, >= 120 returns, <= 50% zeros."""
    out = tmp_path_factory.mktemp("scan")
    code, stdout, stderr = invoke(
        "scan", "--event", "2025-10-13", "--prices", market_parquet, "--out", out,
        "--min-price", "1", "--min-returns", "120", "--max-zero-share", "0.5",
        "--highlight", ",".join(COVERED),
    )
    assert code == 0, stderr
    table = pd.read_csv(out / "scan.csv")
    meta = json.loads((out / "scan.json").read_text(encoding="utf-8"))
    return out, stdout, table, meta


@pytest.mark.shared_data
def test_covered_tickers_rank_in_the_top_2_percent(real_scan):
    _, stdout, table, meta = real_scan
    n = len(table)
    assert 8_500 <= n <= 10_000, n  # "roughly 9,000 qualifying tickers"
    assert meta["n_ranked"] == n
    # The rank column is the order of day-0 AR, largest first.
    assert list(table["rank"]) == list(range(1, n + 1))
    assert (np.diff(table["ar_day0"].to_numpy()) <= 0).all()
    ranks = table.set_index("ticker")["rank"]
    for ticker in COVERED:
        assert ranks[ticker] <= 0.02 * n, (ticker, ranks[ticker], n)
        assert f"{ticker:<8} rank" in stdout
    placed = {h["ticker"]: h for h in meta["highlights"]}
    assert {t: placed[t]["rank"] for t in COVERED} == {t: int(ranks[t]) for t in COVERED}


@pytest.mark.shared_data
def test_filter_counts_add_up(real_scan):
    _, _, table, meta = real_scan
    filters = meta["filters"]
    assert [f["filter"] for f in filters] == [name for name, _ in FILTERS]
    start = filters[0]["start"]
    left = start
    for f in filters:
        assert f["removed"] >= 0
        left -= f["removed"]
        assert f["remaining"] == left
    assert left == len(table)
    assert filters[0]["removed"] == 1  # SPY, the benchmark
    assert start > 10_000 and sum(f["removed"] for f in filters) > 1_000
    assert meta["parameters"]["min_price"] == 1 and meta["parameters"]["min_returns"] == 120
    assert (table["n_obs"] >= 120).all() and (table["zero_share"] <= 0.5).all() and (table["close_before"] >= 1).all()


@pytest.mark.shared_data
def test_csv_q_values_match_statsmodels(real_scan):
    _, _, table, _ = real_scan
    for w in WINDOWS:
        key = window_key(w)
        expected = multipletests(table[f"p_{key}"].to_numpy(), method="fdr_bh")[1]
        np.testing.assert_allclose(table[f"q_{key}"], expected, rtol=1e-12, atol=0)


@pytest.mark.shared_data
def test_scan_equals_the_study_engine(real_scan, market_parquet):
    _, _, table, _ = real_scan
    rows = table.set_index("ticker")
    others = [t for t in rows.index[[0, 777, 4321, len(rows) - 1]] if t not in COVERED]
    tickers = [*COVERED, *others]
    study = run_study(ad_hoc_config(event="2025-10-13", tickers=tickers), prices=market_parquet)
    cars = study.cars.set_index(["ticker", "window_start", "window_end"])
    ars = study.abnormal_returns.query("rel_day == 0").set_index("ticker")["abnormal_return"]
    for ticker in tickers:
        assert rows.at[ticker, "ar_day0"] == pytest.approx(ars[ticker], abs=1e-10)
        for w in WINDOWS:
            key, study_row = window_key(w), cars.loc[(ticker, w.start, w.end)]
            assert rows.at[ticker, f"car_{key}"] == pytest.approx(study_row["car"], abs=1e-10)
            assert rows.at[ticker, f"t_{key}"] == pytest.approx(study_row["t"], rel=1e-10)
            assert rows.at[ticker, f"p_{key}"] == pytest.approx(study_row["p_value"], rel=1e-9, abs=1e-15)


@pytest.mark.shared_data
def test_real_report_has_no_external_url_and_marks_the_covered_tickers(real_scan):
    out, _, _, _ = real_scan
    document = (out / "scan.html").read_text(encoding="utf-8")
    rest = document.replace(plotly_js(), "")
    assert len(rest) < 300_000
    for needle in ('src="http', "src='http", 'href="http', "href='http", "@import", "url(http", "url(//"):
        assert needle not in rest.lower(), needle
    for ticker in COVERED:
        assert f"<strong>{ticker}</strong>" in rest


@pytest.mark.shared_data
def test_cli_errors_are_one_line(tmp_path, market_parquet):
    code, _, stderr = invoke("scan", "--event", "2025-10-13", "--prices", market_parquet, "--model", "dimson",
                             "--out", tmp_path)
    assert code == 2 and stderr.strip().count("\n") == 0 and "--model 'dimson'" in stderr
    code, _, stderr = invoke("scan", "--event", "2015-06-01", "--prices", market_parquet, "--out", tmp_path)
    assert code == 2 and stderr.startswith("Error: ") and "Traceback" not in stderr
    code, _, stderr = invoke("scan", "--event", "2025-10-13", "--prices", market_parquet, "--benchmark", "NOSUCH",
                             "--out", tmp_path)
    assert code == 2 and "--benchmark NOSUCH" in stderr
