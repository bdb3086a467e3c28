"""The estimation-window hygiene and glitch screen run for several events at once equal each event's alone.

Independent side: the same study with ``study.HYGIENE_BATCH = 1``, so every
event's :func:`evstudy.diagnostics.estimation_hygiene` and
:func:`evstudy.returns.price_glitches` see only its own series, as before batching. Every results frame must be equal exactly (not to a
tolerance), with flagged, trimmed, excluded and lone series in the mix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import evstudy.study as study
from evstudy.config import config_from_dict
from evstudy.errors import InsufficientDataError
from evstudy.study import compute_study

from helpers import closes_from_returns, four_events, market_model_returns, nyse_dates, price_data

N_DAYS = 700
FRAMES = ("fits", "abnormal_returns", "cars", "car_paths", "baskets", "basket_paths", "tests", "diagnostics",
          "fit_comparison", "robustness", "bhars", "parameters", "placebo", "drift", "drift_returns", "prices")


def _world(accept_breaks: bool, extra_events: list[dict] | None = None):
    """Four events: three 3-stock baskets (one stock with a variance break, one with an outlier) and one lone stock."""
    rng = np.random.default_rng(9)
    dates = nyse_dates(N_DAYS, start="2022-01-03")
    returns = market_model_returns(rng, N_DAYS, first_beta=0.5)
    returns["S04"][450:] *= 4.0  # a variance break inside e2's estimation window
    returns["S07"][420] += 0.4  # an outlier in e3's
    returns["S01"][400] = 5.5  # a glitch: the close jumps 6.5-fold before e1's event window
    closes = closes_from_returns(returns, dates)
    closes.loc[dates[380:392], "S08"] = np.nan  # a gap in e3's estimation window
    events = [*four_events(dates, ["S09"]), *(extra_events or [])]
    config = config_from_dict({
        "name": "batches", "benchmark": "MKT", "placebo_dates": 30, "windows": [[0, 0], [-1, 1], [0, 5]],
        "accept_breaks": accept_breaks, "events": events,
    })
    return config, price_data(closes), dates


def _count_hygiene_widths(monkeypatch) -> list[int]:
    """Record how many series each ``estimation_hygiene`` call gets (one call per block of events)."""
    widths: list[int] = []
    hygiene = study.estimation_hygiene

    def counted(config, tickers, *args):
        widths.append(len(tickers))
        return hygiene(config, tickers, *args)

    monkeypatch.setattr(study, "estimation_hygiene", counted)
    return widths


@pytest.mark.parametrize("accept_breaks", [False, True])
def test_batched_hygiene_equals_the_hygiene_of_each_event_alone(monkeypatch, accept_breaks):
    config, data, _ = _world(accept_breaks)
    widths = _count_hygiene_widths(monkeypatch)
    screened = []
    glitches = study.price_glitches

    def counted_glitches(closes, jump_rows):
        screened.append(closes.shape[1])
        return glitches(closes, jump_rows)

    monkeypatch.setattr(study, "price_glitches", counted_glitches)
    batched = compute_study(config, data)
    assert sorted(widths) == [1, 9]  # e1-e3 in one call, the lone stock of e4 alone
    assert screened == [10]  # every event's closes screened for glitches at once
    reasons = batched.fits.set_index(["event", "ticker"])["reason"]
    assert reasons[("e1", "S01")].startswith("price glitch")
    assert (batched.diagnostics["flag"] == "variance_break").any()
    assert not batched.fit_comparison.empty

    widths.clear()
    monkeypatch.setattr(study, "HYGIENE_BATCH", 1)
    alone = compute_study(config, data)
    assert sorted(widths) == [1, 3, 3, 3]
    assert sorted(screened[1:]) == [1, 3, 3, 3]
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(batched, name), getattr(alone, name), check_exact=True, obj=name)


def test_a_block_of_events_stops_at_its_series_cap(monkeypatch):
    """Events are held together only up to HYGIENE_SERIES series: e1 + e2 (6), then e3 + e4."""
    config, data, _ = _world(False)
    widths = _count_hygiene_widths(monkeypatch)
    monkeypatch.setattr(study, "HYGIENE_SERIES", 6)
    capped = compute_study(config, data)
    assert sorted(widths) == [1, 3, 6]  # the second block: e3's three series, and e4's lone one alone
    monkeypatch.setattr(study, "HYGIENE_SERIES", 1024)
    pd.testing.assert_frame_equal(capped.fits, compute_study(config, data).fits, check_exact=True)


def test_an_event_that_fails_early_is_reported_after_the_events_before_it():
    """e5 lies beyond the data (refused while its inputs are gathered); e2's error, found later per event, comes first."""
    config, data, dates = _world(False, [{"id": "e5", "date": "2026-06-01", "tickers": ["S10"]}])
    data.closes.loc[data.closes.index <= dates[500], ["S03", "S04", "S05"]] = np.nan  # e2: too few returns
    with pytest.raises(InsufficientDataError, match="event 'e2': every ticker was excluded"):
        compute_study(config, data)
