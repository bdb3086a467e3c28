"""Tickers as data: validation, safe cache file names, and the per-ticker Parquet cache.

A ticker comes from users and config files, so it is never trusted as a path:
:func:`cache_file_name` percent-encodes everything outside ``[A-Za-z0-9_-]``.
The cache stores one Parquet file per ticker with the closes and, in the
schema metadata, the calendar range the file covers. That range is what was
*asked for* (a ticker that IPO'd mid-range still covers the pre-IPO days), so
a gap with no trading is not refetched on every run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import filelock
import numpy as np
import pandas as pd
import platformdirs
import pyarrow as pa
import pyarrow.parquet as pq

from evstudy.errors import ConfigError

CACHE_ENV = "EVSTUDY_CACHE"
MAX_TICKER_LEN = 32
_SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_MAX_STEM = 120
_HASH_CHARS = 16
# Names Windows refuses whatever the extension; their first letter gets encoded.
_RESERVED_STEMS = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{dev}{n}" for dev in ("COM", "LPT") for n in range(1, 10)]
)
_META_KEY = b"evstudy"
_FORMAT = 1
_LOCK_TIMEOUT_S = 120.0


def normalize_ticker(raw: str) -> str:
    """Strip and uppercase a ticker; reject what cannot be one (ConfigError naming it)."""
    if not isinstance(raw, str):
        raise ConfigError(f"ticker must be a string, got {raw!r} ({type(raw).__name__})")
    ticker = raw.strip()
    if not ticker:
        raise ConfigError(f"empty ticker {raw!r}: expected a symbol such as 'SPY' or 'BRK-B'")
    for char in ticker:
        if char.isspace():
            raise ConfigError(f"invalid ticker {raw!r}: contains whitespace")
        if unicodedata.category(char).startswith("C"):
            raise ConfigError(f"invalid ticker {raw!r}: contains a control character {char!r}")
    if len(ticker) > MAX_TICKER_LEN:
        raise ConfigError(
            f"invalid ticker {raw!r}: {len(ticker)} characters, at most {MAX_TICKER_LEN} allowed"
        )
    return ticker.upper()


def default_cache_dir() -> Path:
    """Where downloaded prices are kept: $EVSTUDY_CACHE if set, else the user cache dir."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("evstudy"))


def cache_file_name(ticker: str) -> str:
    """A file name for ``ticker`` that stays inside its directory and is distinct per ticker.

    ``[A-Za-z0-9_-]`` are kept; every other character is percent-encoded from
    its UTF-8 bytes (so ``BRK.B`` -> ``BRK%2EB``, ``../x`` -> ``%2E%2E%2Fx``).
    Names longer than 120 characters are cut and suffixed with ``~`` and a
    sha256 prefix of the ticker; ``~`` never appears otherwise, so a cut name
    cannot equal another ticker's name.
    """
    if not ticker:
        raise ConfigError("empty ticker has no cache file name")
    stem = "".join(
        char if char in _SAFE_CHARS else "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
        for char in ticker
    )
    if stem.upper() in _RESERVED_STEMS:
        stem = f"%{ord(stem[0]):02X}{stem[1:]}"
    if len(stem) > _MAX_STEM:
        cut = stem[: _MAX_STEM - _HASH_CHARS - 1]
        escape = cut.rfind("%", len(cut) - 2)
        if escape != -1:
            cut = cut[:escape]
        digest = hashlib.sha256(ticker.encode("utf-8")).hexdigest()[:_HASH_CHARS]
        stem = f"{cut}~{digest}"
    return f"{stem}.parquet"


class CorruptCacheError(Exception):
    """A cache file exists but cannot be trusted; the caller refetches it."""


class CacheWriteError(Exception):
    """A cache file could not be written; the data is still usable for this run."""


@dataclass(frozen=True)
class CacheEntry:
    """Closes of one ticker and the inclusive calendar range they cover."""

    closes: pd.Series
    first: dt.date
    last: dt.date


class PriceCache:
    """One Parquet file per ticker under ``<root>/yahoo/``, written atomically under a lock."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.dir = self.root / "yahoo"

    def path(self, ticker: str) -> Path:
        """The cache file of ``ticker`` (always directly inside :attr:`dir`)."""
        return self.dir / cache_file_name(ticker)

    def read(self, ticker: str) -> CacheEntry | None:
        """The cached entry, None if there is none; CorruptCacheError if it is unreadable."""
        path = self.path(ticker)
        if not path.exists():
            return None
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise CorruptCacheError(f"not a readable Parquet file ({exc})") from exc
        return _entry_from_table(table, ticker)

    def write(self, ticker: str, entry: CacheEntry, *, merge: bool) -> None:
        """Store ``entry``; with ``merge``, combine it with what the file holds now.

        The current file is re-read under the lock, so an update another
        process made meanwhile is merged rather than lost. Rows outside the
        covered range are not stored. New closes win on overlapping dates.
        Temp files of this ticker left by a writer that was killed are removed:
        only the lock holder writes them, so under the lock none is live.
        """
        path = self.path(ticker)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with filelock.FileLock(str(path.with_suffix(".lock")), timeout=_LOCK_TIMEOUT_S):
                for orphan in self.dir.glob(f".{path.stem}.*.tmp"):
                    orphan.unlink(missing_ok=True)
                if merge:
                    entry = _merged(self._read_quietly(ticker), entry)
                _atomic_write(path, _table_from_entry(ticker, entry))
        except (OSError, pa.ArrowException, filelock.Timeout) as exc:
            raise CacheWriteError(f"cannot write cache file {path}: {exc}") from exc

    def _read_quietly(self, ticker: str) -> CacheEntry | None:
        try:
            return self.read(ticker)
        except CorruptCacheError:
            return None


def _merged(current: CacheEntry | None, new: CacheEntry) -> CacheEntry:
    """``new`` on top of ``current`` when their ranges touch; otherwise ``new`` alone."""
    one_day = dt.timedelta(days=1)
    if current is None or new.first > current.last + one_day or current.first > new.last + one_day:
        return new
    closes = pd.concat([current.closes, new.closes])
    closes = closes[~closes.index.duplicated(keep="last")].sort_index()
    return CacheEntry(closes, min(current.first, new.first), max(current.last, new.last))


def _table_from_entry(ticker: str, entry: CacheEntry) -> pa.Table:
    closes = entry.closes.dropna()
    closes = closes[
        (closes.index >= pd.Timestamp(entry.first)) & (closes.index <= pd.Timestamp(entry.last))
    ]
    days = closes.index.to_numpy().astype("datetime64[D]")
    meta = {
        "format": _FORMAT,
        "ticker": ticker,
        "first": entry.first.isoformat(),
        "last": entry.last.isoformat(),
        "source": "yahoo",
        "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    schema = pa.schema([("date", pa.date32()), ("close", pa.float64())]).with_metadata(
        {_META_KEY: json.dumps(meta).encode("utf-8")}
    )
    return pa.table(
        [pa.array(days, type=pa.date32()), pa.array(closes.to_numpy(dtype=np.float64))],
        schema=schema,
    )


def _entry_from_table(table: pa.Table, ticker: str) -> CacheEntry:
    raw_meta = (table.schema.metadata or {}).get(_META_KEY)
    if raw_meta is None:
        raise CorruptCacheError("no evstudy metadata (not written by evstudy)")
    try:
        meta = json.loads(raw_meta)
        first = dt.date.fromisoformat(meta["first"])
        last = dt.date.fromisoformat(meta["last"])
        stored_ticker = meta["ticker"]
        version = meta["format"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptCacheError(f"bad metadata ({exc})") from exc
    if version != _FORMAT:
        raise CorruptCacheError(f"cache format {version!r}, expected {_FORMAT}")
    if stored_ticker != ticker:
        raise CorruptCacheError(f"holds ticker {stored_ticker!r}, not {ticker!r}")
    if first > last:
        raise CorruptCacheError(f"covered range {first}..{last} is empty")
    if table.schema.names != ["date", "close"] or table.schema.types != [pa.date32(), pa.float64()]:
        raise CorruptCacheError(f"unexpected columns {table.schema}")
    if table.column("date").null_count:
        raise CorruptCacheError("missing dates")
    days = table.column("date").to_numpy().astype("datetime64[ns]")
    closes = pd.Series(
        table.column("close").to_numpy(),
        index=pd.DatetimeIndex(days, name="date"),
        name=ticker,
        dtype=np.float64,
    )
    closes = closes[~closes.index.duplicated(keep="last")].sort_index()
    return CacheEntry(closes, first, last)


def _atomic_write(path: Path, table: pa.Table) -> None:
    """Write to a temp file beside ``path`` then rename: readers never see half a file."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
