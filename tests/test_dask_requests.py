"""A request file on a 2-worker Dask LocalCluster gives the single-machine outputs.

Each worker reads only its block's slice of the Parquet file; the blocks are
the same date blocks the single-machine run processes, so every table must
agree to 1e-12.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evstudy.config import Window
from evstudy.requests import RequestConfig
from evstudy.scale import run_request_file

from market_fakes import market

pytest.importorskip("distributed")


def _assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for column in a.columns:
        if pd.api.types.is_float_dtype(a[column]):
            np.testing.assert_allclose(a[column].to_numpy(), b[column].to_numpy(), rtol=0, atol=1e-12, equal_nan=True)
        else:
            assert a[column].tolist() == b[column].tolist(), column


def test_local_cluster_matches_one_machine(tmp_path):
    closes = market()
    long = closes.rename_axis("date").reset_index().melt(id_vars="date", var_name="ticker", value_name="close")
    prices = tmp_path / "prices.parquet"
    long.dropna(subset=["close"]).to_parquet(prices, index=False)
    days = closes.index
    rows = []
    for i, (ticker, day, group) in enumerate([
        ("AAA", 299, "up"), ("BBB", 299, "up"), ("CCC", 299, "down"), ("AAA", 320, "down"), ("BBB", 330, "up"),
        ("CCC", 340, "down"), ("EXT", 350, "up"), ("FLAT", 360, "down"), ("QQQ", 370, "up"), ("NONE", 300, "up"),
        ("AAA", 380, "up"), ("BBB", 30, "down"),
    ]):
        rows.append({"event_id": f"e{i}", "ticker": ticker, "date": f"{days[day]:%Y-%m-%d}", "group": group})
    request = tmp_path / "request.csv"
    pd.DataFrame(rows).to_csv(request, index=False)
    config = RequestConfig(events_file=str(request), windows=(Window(0, 0), Window(-1, 1), Window(0, 5)))

    here = run_request_file(config, prices, block_size=4)
    there = run_request_file(config, prices, block_size=4, scheduler="local")
    assert there.extras["run"]["blocks"] == 3 and len(here.firm_events) >= 8
    for name in ("firm_events", "cars", "groups", "group_paths", "tests", "excluded"):
        _assert_same(getattr(here, name), getattr(there, name))
    assert here.provenance == there.provenance
