"""Run a request file: on this machine, or on a Dask cluster with each worker reading only its slice.

The library call behind ``evstudy run --events FILE`` (and a config with
``events_file``). On one machine the prices are read once — only the
request's tickers, benchmarks and dates, or a view of the file's index
(:func:`evstudy.prices.subset.load_ticker_closes`) — and
:func:`evstudy.firm_events.run_on_closes` does the rest. With a
scheduler, this process reads only the calendar benchmark to place every
firm-event's day 0, cuts the firm-events into the same date blocks, and
each Dask task reads the Parquet slice of its block (its tickers, its
dates) and computes it; the blocks come back in order and are combined
exactly as on one machine, so the outputs are the same. docs/scale.md says
how to point it at a cluster.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from evstudy.errors import ConfigError
from evstudy.firm_events import (
    DEFAULT_BLOCK, BlockResult, RequestResults, block_rows, calendar_days, close_matrix, close_matrix_of, combine,
    compute_block, date_blocks, group_names, place, provenance_of, request_dates, run_on_closes,
)
from evstudy.prices.subset import load_closes, load_ticker_closes
from evstudy.requests import EventRequest, RequestConfig, read_request


def _tickers(config: RequestConfig, rows: pd.DataFrame) -> list[str]:
    """Every ticker and benchmark the rows need, and the calendar benchmark, without repeats."""
    return list(dict.fromkeys([config.benchmark, *rows["benchmark"].unique(), *rows["ticker"].unique()]))


def run_request_file(
    config: RequestConfig,
    prices: str | os.PathLike[str] | None,
    *,
    scheduler: str | None = None,
    block_size: int = DEFAULT_BLOCK,
    request: EventRequest | None = None,
) -> RequestResults:
    """Read ``config.events_file`` and run every firm-event on the prices in ``prices`` (a file or folder).

    ``scheduler`` is a Dask scheduler address (``tcp://host:8786``), or
    ``"local"`` for a LocalCluster of this machine's cores; None runs here.
    """
    if prices is None:
        raise ConfigError(
            "a request file needs --prices FILE (a long Parquet or CSV of date,ticker,close, a wide file or a "
            "folder): thousands of firm-events are not downloaded one by one"
        )
    if request is None:
        request = read_request(config.events_file, config)
    start, end = request_dates(config, request)
    if scheduler is None:
        data = load_ticker_closes(prices, _tickers(config, request.rows), start, end)
        closes = close_matrix(data.tickers, data.dates, data.closes, config.benchmark, source=data.source,
                              location=data.location)
        return run_on_closes(config, request, closes, block_size)
    return _run_distributed(config, request, Path(prices), scheduler, start, end, block_size)


def run_block_slice(
    config: RequestConfig,
    prices: str,
    rows: pd.DataFrame,
    first_day: pd.Timestamp,
    last_day: pd.Timestamp,
    first_row: int,
    groups: Sequence[str],
) -> BlockResult:
    """One Dask task: read the block's tickers over [first_day, last_day] only, and compute the block.

    ``first_row`` is the row of ``first_day`` in the whole request's calendar,
    so the block's windows land on the same days as on one machine.
    """
    data = load_closes(prices, _tickers(config, rows), first_day.date(), last_day.date())
    closes = close_matrix_of(data, config.benchmark, first_row)
    if not len(closes.days) or closes.days[0] != first_day or closes.days[-1] != last_day:
        raise ConfigError(
            f"{prices} changed while the study ran: the benchmark {config.benchmark}'s trading days from "
            f"{first_day.date()} to {last_day.date()} differ between the scheduler and a worker"
        )
    return compute_block(config, rows, closes, groups)


def _client(scheduler: str) -> Any:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(
            "--scheduler needs Dask: pip install 'evstudy[dask]' (dask[distributed])"
        ) from None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=min(os.cpu_count() or 1, 4), threads_per_worker=1, dashboard_address=None)
        return Client(cluster)
    try:
        return Client(scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc}); give tcp://HOST:PORT "
                          f"of a running scheduler, or 'local'") from None


def _run_distributed(
    config: RequestConfig, request: EventRequest, prices: Path, scheduler: str | Any, start: Any, end: Any,
    block_size: int,
) -> RequestResults:
    """Place day 0 here from the benchmark alone; one task per date block, each reading its own slice."""
    calendar = load_closes(prices, [config.benchmark], start, end)
    days = calendar_days(calendar, config.benchmark)
    placed = place(config, request, days)
    groups = group_names(request)
    client = scheduler if not isinstance(scheduler, str) else _client(scheduler)
    try:
        futures = []
        for positions in date_blocks(placed, block_size):
            first, last = block_rows(placed, positions, config)
            rows = placed.rows.iloc[positions]
            futures.append(client.submit(
                run_block_slice, config, str(prices.resolve()), rows, days[first], days[last], first, groups,
                pure=False,
            ))
        blocks = client.gather(futures)
    finally:
        if isinstance(scheduler, str):
            cluster = getattr(client, "cluster", None)
            client.close()
            if scheduler == "local" and cluster is not None:
                cluster.close()
    results = combine(config, request, placed, blocks, groups, provenance_of(calendar, days))
    results.extras["run"] = {"scheduler": scheduler if isinstance(scheduler, str) else "client", "blocks": len(blocks)}
    return results
