"""The test battery run for every event at once equals the battery run event by event.

Independent side: the same study with :func:`evstudy.battery.battery_tables`
called once per event, so every basket goes through
:func:`evstudy.inference.cross_section_tests` alone, unstacked (and the portfolio t
stacks only that event's baskets).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import evstudy.battery as battery
import evstudy.study as study
from evstudy.config import config_from_dict
from evstudy.inference import cross_section_tests, portfolio_t
from evstudy.study import compute_study

from helpers import closes_from_returns, four_events, market_model_returns, nyse_dates, price_data

N_DAYS = 700


@pytest.fixture(scope="module")
def catalogue_world():
    """A market-model world of 12 stocks; four events, three with 3-stock baskets, one with 2 (another shape)."""
    rng = np.random.default_rng(2026)
    dates = nyse_dates(N_DAYS, start="2022-01-03")
    returns = market_model_returns(rng, N_DAYS, first_beta=0.6)
    returns["S05"][560] += 0.08  # an effect in event e2
    closes = closes_from_returns(returns, dates)
    closes.loc[dates[400:405], "S07"] = np.nan  # a gap in e3's estimation window
    events = four_events(dates, ["S09", "S10"])
    config = config_from_dict({
        "name": "battery", "benchmark": "MKT", "placebo_dates": 40, "windows": [[0, 0], [-1, 1], [0, 5]],
        "events": events,
    })
    return config, price_data(closes)


def test_blocked_rows_are_sorted_once_each_whatever_the_order_of_events_and_confounders(catalogue_world):
    """Events listed late-first, a confounder on another event's day 0 and one between: each row once, in order."""
    config, data = catalogue_world
    days = data.closes.index
    events = [
        {"id": "late", "date": days[640].date().isoformat(), "tickers": ["S09"],
         "confounders": [{"date": days[520].date().isoformat(), "label": "on e1's day"},
                         {"date": days[580].date().isoformat(), "label": "between"}]},
        {"id": "early", "date": days[520].date().isoformat(), "tickers": ["S00"]},
    ]
    shuffled = config_from_dict({"name": "order", "benchmark": "MKT", "placebo_dates": 40, "events": events})
    assert battery.blocked_rows(shuffled, days) == [520, 580, 640]


@pytest.mark.parametrize("batch, stacked", [(32, [(3, 2), (3, 3, 3)]), (2, [(1, 3, 3), (2, 3, 3), (3, 2)])])
def test_batched_battery_equals_the_battery_of_each_event_alone(catalogue_world, monkeypatch, batch, stacked):
    config, data = catalogue_world
    monkeypatch.setattr(battery, "BATCH_BASKETS", batch)
    calls = []

    def counted(section):
        calls.append(section.car.shape)
        return cross_section_tests(section)

    monkeypatch.setattr(battery, "cross_section_tests", counted)
    portfolios = []

    def counted_portfolio(model, basket_est, *args):
        portfolios.append(basket_est.shape[1])
        return portfolio_t(model, basket_est, *args)

    monkeypatch.setattr(battery, "portfolio_t", counted_portfolio)
    batched = compute_study(config, data)
    # the three 3-stock baskets stacked (in blocks of at most `batch`), the lone 2-stock basket unstacked
    assert sorted(calls) == stacked
    assert portfolios == [4]  # every event's basket in one portfolio fit

    calls.clear()
    monkeypatch.setattr(study, "battery_tables",
                        lambda cfg, events: [battery.battery_tables(cfg, [event])[0] for event in events])
    alone = compute_study(config, data)
    assert sorted(calls) == [(3, 2), (3, 3), (3, 3), (3, 3)]

    a, b = batched.tests, alone.tests
    assert len(a) == 4 * 3 * 14
    pd.testing.assert_frame_equal(a.drop(columns=["statistic", "p_value"]), b.drop(columns=["statistic", "p_value"]))
    for column in ("statistic", "p_value"):
        x, y = a[column].to_numpy(float), b[column].to_numpy(float)
        assert np.array_equal(np.isnan(x), np.isnan(y))
        # summation order of stacked arrays: Corrado's rank statistic and the portfolio t (every event's
        # baskets in one fit) may differ in their last bits
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=0)
        exact = ~np.isin(a["test"].to_numpy(), ["corrado_rank", "portfolio_t"])
        assert np.array_equal(x[exact], y[exact], equal_nan=True)
    pd.testing.assert_frame_equal(batched.placebo, alone.placebo)
    # each event's rows stay its own: e2's planted +8% is its day-0 CAAR, not another event's
    day0 = batched.baskets.query("window_start == 0 and window_end == 0").set_index("event")["caar"]
    assert day0["e2"] > 0.02 and abs(day0["e1"]) < 0.02
