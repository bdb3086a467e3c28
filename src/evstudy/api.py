"""The library entry point a notebook or the CLI calls: config in, results out."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence

from evstudy.catalogue import attach_catalogue
from evstudy.compare import (
    DEFAULT_PERMUTATIONS, attach_comparison, check_comparable, check_permutations, restrict_baskets,
)
from evstudy.config import MODELS, StudyConfig, Window, load_config
from evstudy.errors import ConfigError, UnknownTickerError
from evstudy.prices import open_source
from evstudy.prices.base import PriceData, PriceSource
from evstudy.prices.factors import FactorData, read_factors
from evstudy.results import StudyResults
from evstudy.study import compute_study, required_dates


def load_study_prices(
    config: StudyConfig,
    *,
    prices: str | os.PathLike[str] | None = None,
    source: PriceSource | None = None,
    offline: bool = False,
    refresh: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    strict: bool = False,
) -> PriceData:
    """Fetch the closes a study needs: every ticker and benchmark, over the dates it uses."""
    source = source or open_source(
        prices, offline=offline, refresh=refresh, cache_dir=cache_dir, progress=progress, strict=strict
    )
    start, end = required_dates(config)
    try:
        return source.load(config.tickers(), start.date(), end.date())
    except UnknownTickerError as exc:
        raise UnknownTickerError(f"{exc}; {_named_in(config, exc.tickers)}", exc.tickers) from None


def _named_in(config: StudyConfig, tickers: list[str]) -> str:
    """Where the study names ``tickers``: the flags of an ad hoc run, else the config file and its tables."""
    if config.source_file is None:
        flags = dict.fromkeys("--benchmark" if t == config.benchmark else "--tickers" for t in tickers)
        return f"named by {' and '.join(flags)}"
    places: dict[str, None] = {}
    for ticker in tickers:
        for basket in config.baskets:
            if ticker in basket.tickers:
                places[f"{ticker} in basket {basket.name!r}"] = None
            elif ticker in basket.benchmarks:
                places[f"{ticker} as a benchmark of basket {basket.name!r}"] = None
        if ticker == config.benchmark:
            places[f"{ticker} as key 'benchmark'"] = None
    return f"named in {config.source_file}: {'; '.join(places)}"


def load_study_factors(config: StudyConfig) -> FactorData | None:
    """The factor file of a model \"factor\" study, in decimals (None for every other model)."""
    if config.model != "factor" or config.factors is None:
        return None
    return read_factors(config.factors)


def run_study(
    config: StudyConfig | str | os.PathLike[str],
    *,
    strict: bool = False,
    prices: str | os.PathLike[str] | None = None,
    source: PriceSource | None = None,
    offline: bool = False,
    refresh: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int | None = None,
) -> StudyResults:
    """Run an event study and return its results.

    ``config`` is a :class:`StudyConfig` or the path of a TOML config.
    Prices come from ``source`` if given, else from ``prices`` (a file or
    folder, see :class:`evstudy.prices.FileSource`), else from Yahoo Finance
    through the local cache; a ticker whose download still fails after its
    retries is excluded with the reason, or with ``strict`` the run stops
    with a :class:`~evstudy.errors.DownloadError`. The results carry the pre-event drift summary,
    the event catalogue (two events or more) and the basket comparison (two
    baskets under one benchmark; ``n_permutations`` label shuffles drawn
    from ``seed``, by default the config's ``seed``) in ``results.extras``.

    >>> import evstudy
    >>> res = evstudy.run_study("configs/jpm-sri-2025.toml",
    ...                         prices="../shared/data/us_equities_daily_2021_2026.parquet")  # doctest: +SKIP
    >>> res.baskets.query("window_start == 0 and window_end == 0")  # doctest: +SKIP
    """
    if not isinstance(config, StudyConfig):
        config = load_config(config)
    data = load_study_prices(
        config, prices=prices, source=source, offline=offline, refresh=refresh, cache_dir=cache_dir,
        progress=progress, strict=strict,
    )
    results = attach_catalogue(compute_study(config, data, factors=load_study_factors(config)))
    return attach_comparison(results, n_permutations=n_permutations, seed=seed)


def compare_study(
    config: StudyConfig | str | os.PathLike[str],
    *,
    baskets: Sequence[str] | None = None,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int | None = None,
    prices: str | os.PathLike[str] | None = None,
    source: PriceSource | None = None,
    offline: bool = False,
    refresh: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> StudyResults:
    """Run a study of ``baskets`` (default: all) and compare them pairwise (``results.extras["comparisons"]``).

    Raises :class:`~evstudy.errors.ConfigError` before loading any price when
    no event has two of the baskets under a common benchmark.
    """
    if not isinstance(config, StudyConfig):
        config = load_config(config)
    if baskets:
        config = restrict_baskets(config, baskets)
    check_permutations(n_permutations, config.seed if seed is None else seed)
    check_comparable(config, " (--baskets)" if baskets else "")
    return run_study(
        config, prices=prices, source=source, offline=offline, refresh=refresh, cache_dir=cache_dir,
        progress=progress, n_permutations=n_permutations, seed=seed,
    )


TIMING_WORDS = {"before_open": "before the open", "during": "during the session", "after_close": "after the close"}


LABEL_TICKERS = 10  # tickers named in an ad hoc basket's label before "and N more"


def _listed(tickers: Sequence[str], shown: int) -> str:
    """"MP, USAR, LAC" or, beyond ``shown`` tickers, "MP, USAR, LAC and 5 more"."""
    more = len(tickers) - shown
    return ", ".join(tickers[:shown]) + (f" and {more:,} more" if more > 0 else "")


def name_ad_hoc(config: StudyConfig, *, shown: int = 3) -> StudyConfig:
    """An ad hoc study named and titled from its event and tickers, not "adhoc"/"event"/"all".

    The name (the default output folder, ``reports/<name>/``) reads e.g.
    ``2025-10-13-MP-USAR-LAC`` (more than ``shown`` tickers: ``...-LAC-and-5-more``);
    the title "MP, USAR, LAC around 2025-10-13 (before the open)"; the basket is
    labelled with its tickers (up to 10, then "and N more": the label is repeated
    in every table row and chart hover, so it must not grow with the basket). Ids
    stay as they were, so outputs keep their keys.
    """
    event = config.events[0]
    tickers = [t for b in config.baskets for t in b.tickers]
    more = len(tickers) - shown
    slug_tickers = "-".join(re.sub(r"[^A-Za-z0-9.]+", "_", t) for t in tickers[:shown])
    name = f"{event.date:%Y-%m-%d}-{slug_tickers}" + (f"-and-{more}-more" if more > 0 else "")
    listed = _listed(tickers, shown)
    when = event.timestamp.isoformat() if event.timestamp else f"{event.date:%Y-%m-%d}"
    timing = f" ({TIMING_WORDS[event.timing]})" if event.timing in TIMING_WORDS else ""
    baskets = tuple(dataclasses.replace(b, label=b.label or _listed(b.tickers, LABEL_TICKERS)) for b in config.baskets)
    events = (dataclasses.replace(event, label=event.label or f"news of {when}{timing}"), *config.events[1:])
    return dataclasses.replace(
        config, name=name, title=config.title or f"{listed} around {when}{timing}", baskets=baskets, events=events,
    )


def with_overrides(
    config: StudyConfig,
    *,
    title: str | None = None,
    benchmark: str | None = None,
    model: str | None = None,
    windows: Sequence[Window] = (),
    estimation_window: Window | None = None,
) -> StudyConfig:
    """``config`` with the command line's --title, --benchmark, --model, --window and --estimation-window.

    A benchmark replaces every basket's benchmarks; a model other than
    "factor" or "two_index" drops the config's factor file or sector indexes,
    which only those models use; windows replace the config's list. The result
    is checked like a config, and an error names the flags as well as the file.
    """
    from evstudy.config import normalize_ticker

    changes: dict[str, object] = {}
    if title is not None:
        changes["title"] = title
    if benchmark is not None:
        bench = normalize_ticker(benchmark, " (--benchmark)")
        changes["benchmark"] = bench
        changes["baskets"] = tuple(dataclasses.replace(b, benchmarks=(bench,)) for b in config.baskets)
    if model is not None:
        if model not in MODELS:
            raise ConfigError(f"--model {model!r} is not one of {', '.join(MODELS)}")
        changes["model"] = model
        if model != "factor":
            changes["factors"] = None
        if model != "two_index":
            baskets = changes.get("baskets", config.baskets)
            changes["baskets"] = tuple(dataclasses.replace(b, sector="") for b in baskets)  # type: ignore[attr-defined]
    if windows:
        changes["windows"] = tuple(windows)
    if estimation_window is not None:
        changes["estimation_window"] = estimation_window
    if not changes:
        return config
    try:
        return dataclasses.replace(config, **changes)  # type: ignore[arg-type]
    except ConfigError as exc:
        flag = {"windows": "window"}
        flags = ", ".join(f"--{flag.get(k, k).replace('_', '-')}" for k in changes if k not in ("baskets", "factors"))
        raise ConfigError(f"{exc} (with {flags} given on the command line)") from None
