"""Property-based tests (hypothesis): identities of the statistics, and fuzzing of everything that parses input.

Statistics, through the real engine (:func:`evstudy.study.compute_study`) on
synthetic markets drawn by hypothesis: a CAR is the sum of its ARs; adding a
constant to a stock's returns moves its market-model (or constant-mean)
intercept by that constant and leaves its ARs alone; the order of tickers
does not change basket results; scaling every return by k scales every AR and
CAR by k (OLS is homogeneous of degree one); a stock that follows the market
model exactly has zero ARs.

Fuzzing: the config loader on arbitrary text, bytes and TOML structures, and
the price-file reader on arbitrary CSV bytes and on CSVs assembled from
plausible and hostile cells. Nothing may raise anything but an EvstudyError.

Bounded in CI by the ``ci`` hypothesis profile (tests/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from evstudy.config import StudyConfig, config_from_dict, load_config
from evstudy.errors import EvstudyError
from evstudy.models import fit
from evstudy.abnormal import abnormal_returns
from evstudy.prices import FileSource
from evstudy.study import compute_study
from helpers import closes_from_returns, nyse_dates, price_data

SESSIONS = 290
EVENT_INDEX = 265
DAYS = nyse_dates(SESSIONS)
EVENT = DAYS[EVENT_INDEX].date().isoformat()
TMP_OK = [HealthCheck.function_scoped_fixture]
# Each engine example runs a whole study (~0.1-0.3 s): fewer of them than the profile's default.
ENGINE = settings(max_examples=max(5, settings.default.max_examples * 3 // 5))


# --------------------------------------------------------------------------- synthetic markets


@st.composite
def markets(draw) -> dict:
    """A market-model world: returns of SPY and 2-5 stocks, plus a model and 1-3 event windows."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(2, 5))
    rng = np.random.default_rng(seed)
    m = rng.normal(draw(st.floats(-0.001, 0.001)), draw(st.floats(0.003, 0.02)), SESSIONS)
    betas = draw(st.lists(st.floats(-1.0, 2.0), min_size=n, max_size=n))
    alphas = draw(st.lists(st.floats(-0.002, 0.002), min_size=n, max_size=n))
    noise = draw(st.lists(st.floats(0.002, 0.03), min_size=n, max_size=n))
    returns = {"SPY": m}
    for i in range(n):
        returns[f"S{i}"] = alphas[i] + betas[i] * m + rng.normal(0.0, noise[i], SESSIONS)
    bounds = st.integers(-10, 10)
    windows = draw(st.lists(st.tuples(bounds, bounds).map(sorted), min_size=1, max_size=3, unique_by=tuple))
    return {
        "returns": {k: np.clip(v, -0.3, 0.3) for k, v in returns.items()},
        "model": draw(st.sampled_from(["market", "constant_mean", "market_adjusted"])),
        "windows": [list(w) for w in windows],
    }


def study(world: dict, tickers: list[str] | None = None, model: str | None = None) -> StudyConfig:
    stocks = tickers or [t for t in world["returns"] if t != "SPY"]
    return config_from_dict({
        "model": model or world["model"],
        "windows": world["windows"],
        "placebo_dates": 0,
        "events": [{"id": "ev", "date": EVENT}],
        "baskets": [{"name": "b", "tickers": stocks}],
    })


def run(world: dict, returns: dict[str, np.ndarray] | None = None, **kwargs):
    closes = closes_from_returns(returns or world["returns"], DAYS)
    return compute_study(study(world, **kwargs), price_data(closes))


def keyed(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys).reset_index(drop=True)


# --------------------------------------------------------------------------- statistics


@ENGINE
@given(markets())
def test_a_car_is_the_sum_of_its_ars(world):
    results = run(world)
    ars = results.abnormal_returns
    assert len(results.cars) == len(world["windows"]) * (len(world["returns"]) - 1)
    for row in results.cars.itertuples():
        days = ars[(ars.ticker == row.ticker) & (ars.benchmark == row.benchmark)
                   & (ars.rel_day >= row.window_start) & (ars.rel_day <= row.window_end)]
        assert len(days) == row.window_end - row.window_start + 1
        assert row.car == pytest.approx(days.abnormal_return.sum(), abs=1e-12)


@ENGINE
@given(markets(), st.floats(-0.01, 0.01).filter(lambda c: abs(c) > 1e-6), st.sampled_from(["market", "constant_mean"]))
def test_a_constant_added_to_returns_moves_the_intercept_not_the_ars(world, c, model):
    shifted = dict(world["returns"], S0=world["returns"]["S0"] + c)
    base, moved = run(world, model=model), run(world, shifted, model=model)
    fits = {r.ticker: r for r in base.fits.itertuples()}, {r.ticker: r for r in moved.fits.itertuples()}
    assert fits[1]["S0"].alpha == pytest.approx(fits[0]["S0"].alpha + c, abs=1e-10)
    if model == "market":
        assert fits[1]["S0"].beta == pytest.approx(fits[0]["S0"].beta, abs=1e-9)
    a, b = keyed(base.abnormal_returns, ["ticker", "rel_day"]), keyed(moved.abnormal_returns, ["ticker", "rel_day"])
    np.testing.assert_allclose(b.abnormal_return, a.abnormal_return, atol=1e-10)
    pd.testing.assert_frame_equal(keyed(base.cars, ["ticker", "window_start", "window_end"]),
                                  keyed(moved.cars, ["ticker", "window_start", "window_end"]), atol=1e-9, rtol=0)


@ENGINE
@given(markets(), st.randoms(use_true_random=False))
def test_the_order_of_tickers_does_not_change_basket_results(world, random):
    stocks = [t for t in world["returns"] if t != "SPY"]
    shuffled = random.sample(stocks, len(stocks))
    reordered = {t: world["returns"][t] for t in ["SPY", *random.sample(stocks, len(stocks))]}
    base, other = run(world), run(world, reordered, tickers=shuffled)
    keys = ["basket", "benchmark", "window_start", "window_end"]
    pd.testing.assert_frame_equal(keyed(base.baskets, keys), keyed(other.baskets, keys), rtol=1e-12, atol=1e-15)
    pd.testing.assert_frame_equal(keyed(base.tests, [*keys, "test"]), keyed(other.tests, [*keys, "test"]),
                                  rtol=1e-12, atol=1e-15)
    cars = ["ticker", "window_start", "window_end"]
    pd.testing.assert_frame_equal(keyed(base.cars, cars), keyed(other.cars, cars), rtol=1e-12, atol=1e-15)


@ENGINE
@given(markets(), st.floats(0.2, 3.0))
def test_scaling_every_return_scales_ars_and_cars(world, k):
    scaled = {t: r * k for t, r in world["returns"].items()}
    base, big = run(world), run(world, scaled)
    a, b = keyed(base.abnormal_returns, ["ticker", "rel_day"]), keyed(big.abnormal_returns, ["ticker", "rel_day"])
    np.testing.assert_allclose(b.abnormal_return, k * a.abnormal_return, rtol=1e-7, atol=1e-12)
    cars = ["ticker", "window_start", "window_end"]
    c, d = keyed(base.cars, cars), keyed(big.cars, cars)
    np.testing.assert_allclose(d.car, k * c.car, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(d.t, c.t, rtol=1e-6, atol=1e-9)  # SE scales by k too
    np.testing.assert_allclose(keyed(big.baskets, ["window_start", "window_end"]).caar,
                               k * keyed(base.baskets, ["window_start", "window_end"]).caar, rtol=1e-7, atol=1e-12)


@given(st.integers(0, 2**32 - 1), st.lists(st.tuples(st.floats(-0.01, 0.01), st.floats(-2, 3)), min_size=1, max_size=6))
def test_a_stock_that_follows_the_market_model_exactly_has_zero_ars(seed, params):
    rng = np.random.default_rng(seed)
    est_m = rng.normal(0, 0.01, (240, len(params)))
    ev_m = rng.normal(0, 0.01, (21, len(params)))
    alpha, beta = (np.array(p) for p in zip(*params))
    fitted = fit("market", alpha + beta * est_m, est_m)
    np.testing.assert_allclose(fitted.params[:, 0], alpha, atol=1e-12)
    np.testing.assert_allclose(fitted.params[:, 1], beta, atol=1e-9)
    ar = abnormal_returns(fitted, alpha + beta * ev_m, ev_m, np.arange(-10, 11))
    np.testing.assert_allclose(ar.abnormal, 0.0, atol=1e-12)


# --------------------------------------------------------------------------- fuzzing the config loader

KEYS = ["name", "title", "description", "benchmark", "model", "estimation_window", "windows", "ar_span",
        "min_estimation_returns", "max_zero_share", "drift_window", "events", "baskets", "confounders",
        "placebo_dates", "seed", "factors", "active_from", "accept_breaks", "id", "label", "date", "timing",
        "timestamp", "tickers", "benchmarks", "file", "units", "rf", "columns"]
scalars = st.one_of(
    st.text(max_size=12), st.sampled_from(["SPY", "MP", "market", "before_open", "2025-10-13", "percent", "a"]),
    st.integers(-300, 300), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.dates(), st.datetimes(), st.datetimes(timezones=st.timezones()), st.times(),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=25,
)
VALID = {
    "name": "s", "model": "market", "estimation_window": [-250, -11], "windows": [[0, 0], [-1, 1]],
    "events": [{"id": "e", "date": dt.date(2025, 10, 13), "timing": "before_open",
                "confounders": [{"date": dt.date(2025, 10, 10), "label": "x"}]}],
    "baskets": [{"name": "b", "label": "B", "tickers": ["MP", "LAC"], "benchmarks": ["SPY", "REMX"]}],
}


def only_evstudy_errors(call) -> object:
    try:
        return call()
    except EvstudyError as exc:
        assert str(exc) and "\n" not in str(exc).strip(), repr(exc)
        return exc


@given(st.dictionaries(st.sampled_from(KEYS), toml_values, max_size=8))
def test_config_from_dict_raises_only_evstudy_errors(raw):
    only_evstudy_errors(lambda: config_from_dict(raw))


@given(st.lists(st.sampled_from(["events", "baskets", "windows", "estimation_window", "model", "name", 0, "date",
                                 "tickers", "benchmarks", "confounders", "timing", 1, "label"]), min_size=1, max_size=4),
       toml_values)
def test_a_valid_config_with_one_value_swapped_raises_only_evstudy_errors(path, value):
    import copy

    raw = copy.deepcopy(VALID)
    node = raw
    for step in path[:-1]:
        child = node[step] if isinstance(node, dict) and step in node else (
            node[step] if isinstance(node, list) and isinstance(step, int) and step < len(node) else None)
        if not isinstance(child, (dict, list)):
            break
        node = child
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
    else:
        assume(False)
    result = only_evstudy_errors(lambda: config_from_dict(raw))
    assert isinstance(result, (StudyConfig, EvstudyError))


TOML_PIECES = ["[[events]]\n", "[[baskets]]\n", "[factors]\n", "[active_from]\n", 'date = 2025-10-13\n',
               'tickers = ["MP", "LAC"]\n', 'name = "b"\n', "windows = [[0, 0], [-1, 1]]\n", 'model = "market"\n',
               "estimation_window = [-250, -11]\n", "timestamp = 2025-10-13T08:00:00-04:00\n", 'timing = "x"\n',
               "[[events.confounders]]\n", "min_estimation_returns = 1e400\n", "= =\n", '"\n', "[\n", "\\u0000",
               "ä", "\r\n", "#", "\x00", "benchmarks = []\n", "units = \"percent\"\nfile = \"/nonexistent\"\n"]


@settings(suppress_health_check=TMP_OK)
@given(st.one_of(st.text(max_size=300), st.lists(st.sampled_from(TOML_PIECES), max_size=14).map("".join)))
def test_load_config_on_arbitrary_text_raises_only_evstudy_errors(tmp_path, text):
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    only_evstudy_errors(lambda: load_config(path))


@settings(suppress_health_check=TMP_OK)
@given(st.binary(max_size=300))
def test_load_config_on_arbitrary_bytes_raises_only_evstudy_errors(tmp_path, data):
    path = tmp_path / "fuzz.toml"
    path.write_bytes(data)
    only_evstudy_errors(lambda: load_config(path))


# --------------------------------------------------------------------------- fuzzing the price-file readers

HEADERS = ["Date", "date", "ticker", "Ticker", "close", "Close", "Adj Close", "adj_close", "AAA", "aaa", "SPY",
           "Open", "Price", "symbol", "", " ", "AAA ", "x\"y", "timestamp"]
CELLS = ["2024-01-02", "2024-01-03", "20240104", "01/05/2024", "2024-13-01", "0001-01-01", "9999-12-31",
         "2024-01-02T10:00:00-05:00", "", "nan", "NA", "-", "1.5", "0", "-3", "1e309", "abc", "AAA", "SPY", "aaa",
         "Ticker", "\"", "\"\"", "1,5", "  7 ", "inf", "-inf", "1e-320", "9" * 40, "é", "\x00"]


@st.composite
def csv_text(draw) -> str:
    header = draw(st.lists(st.one_of(st.sampled_from(HEADERS), st.text(string.printable, max_size=6)),
                           min_size=1, max_size=5))
    width = len(header)
    rows = draw(st.lists(st.lists(st.one_of(st.sampled_from(CELLS), st.text(max_size=5)), min_size=max(width - 1, 0),
                                  max_size=width + 1), max_size=12))
    lines = [",".join(header), *(",".join(row) for row in rows)]
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n"]))


def check_price_file(path: Path) -> None:
    def load():
        data = FileSource(path).load(["AAA"], dt.date(2023, 12, 1), dt.date(2024, 2, 1))
        frame = data.closes
        assert list(frame.columns) == ["AAA"] and frame.index.is_monotonic_increasing and frame.index.is_unique
        assert frame.index.tz is None and all(frame.dtypes == np.float64)
        return data

    only_evstudy_errors(load)
    only_evstudy_errors(lambda: FileSource(path).load_all(dt.date(2023, 12, 1), dt.date(2024, 2, 1)))


@settings(suppress_health_check=TMP_OK)
@given(st.binary(max_size=400))
def test_price_reader_on_arbitrary_bytes_raises_only_evstudy_errors(tmp_path, data):
    path = tmp_path / "prices.csv"
    path.write_bytes(data)
    check_price_file(path)


@settings(suppress_health_check=TMP_OK)
@given(csv_text(), st.sampled_from(["prices.csv", "AAA.csv"]))
def test_price_reader_on_hostile_csvs_raises_only_evstudy_errors(tmp_path, text, name):
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    path = folder / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    check_price_file(folder if name == "AAA.csv" else path)  # AAA.csv: the one-file-per-ticker folder shape
