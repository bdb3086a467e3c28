"""The prices stage: adjusted daily closes from local files or from Yahoo Finance.

This is the only stage that reads price files or touches the network; every
other stage receives a :class:`PriceData`.
"""

from __future__ import annotations

import os
import typing as _typing
from pathlib import Path

from evstudy.errors import DataSourceError

if _typing.TYPE_CHECKING:
    from evstudy.prices.base import PriceData, PriceSource
    from evstudy.prices.cache import cache_file_name, normalize_ticker
    from evstudy.prices.files import FileSource
    from evstudy.prices.locations import default_cache_dir
    from evstudy.prices.yahoo import YahooSource

__all__ = [
    "FileSource",
    "PriceData",
    "PriceSource",
    "YahooSource",
    "cache_file_name",
    "default_cache_dir",
    "normalize_ticker",
    "open_source",
]

# Exported names load their module on first use (PEP 562): the whole-market scan reads the price
# index (evstudy.prices.dataset) without pandas, which the readers below import.
_LAZY = {
    "FileSource": "evstudy.prices.files",
    "PriceData": "evstudy.prices.base",
    "PriceSource": "evstudy.prices.base",
    "YahooSource": "evstudy.prices.yahoo",
    "cache_file_name": "evstudy.prices.cache",
    "default_cache_dir": "evstudy.prices.locations",
    "normalize_ticker": "evstudy.prices.cache",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'evstudy.prices' has no attribute {name!r}")


def open_source(
    prices: str | os.PathLike | None = None,
    *,
    offline: bool = False,
    refresh: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    strict: bool = False,
) -> PriceSource:
    """The price source the user chose: Yahoo (cached) when ``prices`` is None, else a local path.

    ``offline``, ``refresh``, ``cache_dir``, ``progress`` and ``strict`` (stop
    when a download still fails after its retries) only concern Yahoo; a local
    path is read as it is, and names every ticker it lacks anyway.
    """
    from evstudy.prices.files import SHAPES_HELP, FileSource
    from evstudy.prices.yahoo import YahooSource

    if prices is None:
        return YahooSource(cache_dir=cache_dir, offline=offline, refresh=refresh, progress=progress, strict=strict)
    if not os.fspath(prices):
        raise DataSourceError(f"--prices is an empty path; {SHAPES_HELP}")
    path = Path(prices).expanduser()
    if not path.exists():
        raise DataSourceError(f"--prices {str(path)!r} does not exist; {SHAPES_HELP}")
    return FileSource(path)
