"""Tickers as data: validation, safe cache file names, and the per-ticker Parquet cache.

A ticker comes from users and config files, so it is never trusted as a path:
:func:`cache_file_name` percent-encodes everything outside ``[A-Za-z0-9_-]``.
The cache stores one Parquet file per ticker with the closes and, in the
schema metadata, the calendar range the file covers. That range is what was
*asked for* (a ticker that IPO'd mid-range still covers the pre-IPO days), so
a gap with no trading is not refetched on every run.

Writers merge: under a per-ticker lock the file is re-read, the new closes
replace the old ones in the range they cover and the old ones elsewhere stay.
Two runs that cached disjoint ranges at once (each read the file before the
other wrote) leave both, with the days between them recorded as ``holes``
(format 2), which the next load fills.
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
import pyarrow as pa
import pyarrow.parquet as pq

from evstudy.errors import ConfigError
from evstudy.prices.locations import CACHE_ENV, default_cache_dir  # noqa: F401  (re-exported)

MAX_TICKER_LEN = 32
_SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_MAX_STEM = 120
_HASH_CHARS = 16
# Names Windows refuses whatever the extension; their first letter gets encoded.
_RESERVED_STEMS = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{dev}{n}" for dev in ("COM", "LPT") for n in range(1, 10)]
)
_META_KEY = b"evstudy"
_FORMAT = 2
_READABLE_FORMATS = (1, 2)  # format 1: one covered range, no holes
_LOCK_TIMEOUT_S = 120.0
_ONE_DAY = dt.timedelta(days=1)


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


Span = tuple[dt.date, dt.date]


@dataclass(frozen=True)
class CacheEntry:
    """Closes of one ticker and the inclusive calendar range they cover, less any ``holes`` in it."""

    closes: pd.Series
    first: dt.date
    last: dt.date
    holes: tuple[Span, ...] = ()

    def spans(self) -> list[Span]:
        """The covered ranges, in order."""
        spans, start = [], self.first
        for low, high in self.holes:
            spans.append((start, low - _ONE_DAY))
            start = high + _ONE_DAY
        return [*spans, (start, self.last)]


class PriceCache:
    """One Parquet file per ticker under ``<root>/yahoo/``, written atomically under a lock."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.dir = self.root / "yahoo"

    def check_folder(self) -> None:
        """ConfigError if the cache cannot be a folder (say $EVSTUDY_CACHE names a file); nothing is created.

        Called only when prices come from Yahoo: a run reading --prices never
        touches the cache, whatever $EVSTUDY_CACHE says.
        """
        for place in (self.dir, *self.dir.parents):
            if place.exists():
                if not place.is_dir():
                    raise ConfigError(
                        f"the price cache {self.root} cannot be a folder: {place} is a file; point --cache-dir "
                        "or EVSTUDY_CACHE at a folder"
                    )
                return

    def ensure_writable(self) -> None:
        """Create the cache folder; ConfigError naming it if that fails or it cannot be written."""
        self.check_folder()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the price cache folder {self.dir} ({exc.strerror or exc}); point --cache-dir or "
                "EVSTUDY_CACHE at a folder you can write"
            ) from None
        if not os.access(self.dir, os.W_OK | os.X_OK):
            raise ConfigError(
                f"the price cache folder {self.dir} is not writable; point --cache-dir or EVSTUDY_CACHE at a "
                "folder you can write"
            )

    def covers(self, ticker: str, first: dt.date, last: dt.date) -> bool:
        """Does the cache file of ``ticker`` cover every day of [first, last]?"""
        try:
            entry = self.read(ticker)
        except CorruptCacheError:
            return False
        return entry is not None and any(low <= first and last <= high for low, high in entry.spans())

    def path(self, ticker: str) -> Path:
        """The cache file of ``ticker`` (always directly inside :attr:`dir`)."""
        return self.dir / cache_file_name(ticker)

    def read(self, ticker: str) -> CacheEntry | None:
        """The cached entry, None if there is none; CorruptCacheError if it is unreadable."""
        path = self.path(ticker)
        if not path.exists():
            return None
        try:
            # From one open file: given the path, pyarrow can take the footer and the pages from two versions
            # when a writer replaces the file meanwhile, and a whole file would read as a corrupt one. Arrow's
            # own file, not a Python one: its reader threads would call back into Python.
            with pa.OSFile(str(path)) as stream:
                table = pq.read_table(stream)
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise CorruptCacheError(f"not a readable Parquet file ({exc})") from exc
        return _entry_from_table(table, ticker)

    def write(self, ticker: str, entry: CacheEntry, *, merge: bool) -> None:
        """Store ``entry``; with ``merge``, combine it with what the file holds now.

        The current file is re-read under the lock (read, merge and write all
        inside it), so an update another process made meanwhile is merged
        rather than lost: ``entry``'s closes replace the file's inside
        ``entry``'s range, the file's outside it stay. Without ``merge`` the
        file is replaced (a whole history refetched after a split). Rows
        outside the covered range are not stored. Temp files of this ticker
        left by a writer that was killed are removed: only the lock holder
        writes them, so under the lock none is live.
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
    """``new``'s closes over its range, ``current``'s elsewhere; covered = the union of both (holes between)."""
    if current is None:
        return new
    low, high = pd.Timestamp(new.first), pd.Timestamp(new.last)
    kept = current.closes[(current.closes.index < low) | (current.closes.index > high)]
    fresh = new.closes[(new.closes.index >= low) & (new.closes.index <= high)]
    closes = pd.concat([kept, fresh]).sort_index()
    spans = sorted([*current.spans(), *new.spans()])
    union = [spans[0]]
    for first, last in spans[1:]:
        if first <= union[-1][1] + _ONE_DAY:
            union[-1] = (union[-1][0], max(union[-1][1], last))
        else:
            union.append((first, last))
    holes = tuple((a[1] + _ONE_DAY, b[0] - _ONE_DAY) for a, b in zip(union, union[1:]))
    return CacheEntry(closes, union[0][0], union[-1][1], holes)


def _table_from_entry(ticker: str, entry: CacheEntry) -> pa.Table:
    closes = entry.closes.dropna()
    inside = np.zeros(len(closes), dtype=bool)
    for first, last in entry.spans():
        inside |= (closes.index >= pd.Timestamp(first)) & (closes.index <= pd.Timestamp(last))
    closes = closes[inside]
    days = closes.index.to_numpy().astype("datetime64[D]")
    meta = {
        "format": _FORMAT,
        "ticker": ticker,
        "first": entry.first.isoformat(),
        "last": entry.last.isoformat(),
        "holes": [[low.isoformat(), high.isoformat()] for low, high in entry.holes],
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
        holes = tuple(
            (dt.date.fromisoformat(low), dt.date.fromisoformat(high)) for low, high in meta.get("holes", [])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptCacheError(f"bad metadata ({exc})") from exc
    if version not in _READABLE_FORMATS:
        raise CorruptCacheError(f"cache format {version!r}, expected one of {_READABLE_FORMATS}")
    covered_from = first
    for low, high in holes:
        if not covered_from < low <= high < last:
            raise CorruptCacheError(f"holes {holes} do not lie in order inside {first}..{last}")
        covered_from = high + _ONE_DAY
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
    return CacheEntry(closes, first, last, holes)


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
