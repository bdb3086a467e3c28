"""A local, read-optimised index of a long price file: every close as one (tickers x days) matrix.

A study uses ~91 k of the shared file's 11.7 M rows, but the file's row groups
hold a million rows each, sorted by ticker, so any ticker or date filter still
decodes nearly all of it (~0.6 s). The index stores the file's pivot — the
same ``_Long.pivot`` every read does — once, uncompressed, each ticker's closes
contiguous, and is memory-mapped: a study reads ~100 pages, the whole-market
scan one short slice per ticker.

Rules that keep it safe:

* It answers only what the file itself would: it is built from the file's own
  pivot, and used only where that pivot gives the same frame for any ticker
  subset and date range (no duplicate dates, one spelling per ticker; and for
  whole-market reads (``tickers=None``), no NaN close rows, whose tickers the direct read still
  counts). Otherwise, or when the whole file cannot be read, the build is
  declined for that version of the file and reads go to the file.
* It is keyed by the file's resolved path and checked against the file's size
  and modification time (ns) on every open: a changed file is never answered
  from a stale index.
* It is built on the second read of the same unchanged file (the first leaves
  a small marker), so a one-off read never pays for the build (~1.5 s on the
  shared file), and only for files of at least :data:`MIN_INDEX_BYTES`.
* It is written to a temporary file and renamed into place: a reader sees the
  old index, the new one, or none — never a partial one. Any problem reading or
  writing it falls back to reading the file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from evstudy.errors import ConfigError, DataSourceError
from evstudy.prices.locations import default_cache_dir

if TYPE_CHECKING:
    from evstudy.prices.files import _Long, _Wide

MIN_INDEX_BYTES = 4 * 2**20
"""Files smaller than this are read directly: their read takes milliseconds."""
INDEX_DIR = "price-index"
_MAGIC = b"EVSTIDX1"
_ALIGN = 64
_FORMAT = 1
_EPOCH = dt.date(1970, 1, 1)  # day numbers count from here, as the file reader's


@dataclass(frozen=True)
class PriceIndex:
    """The pivot of one price file: ``closes[t, d]`` is ticker ``tickers[t]`` on day number ``days[d]``."""

    tickers: tuple[str, ...]
    days: np.ndarray
    closes: np.ndarray
    nan_rows: bool
    """True when the file has rows with a missing close (such rows are NaN here, like absent rows)."""

    def day_range(self, first: int, last: int) -> slice:
        """The columns of ``closes`` for day numbers in [first, last]."""
        return slice(int(np.searchsorted(self.days, first)), int(np.searchsorted(self.days, last, side="right")))


def _identity(source: Path) -> dict[str, object]:
    stat = source.stat()
    return {"source": str(source), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _paths(source: Path, cache_dir: Path | None) -> tuple[Path, Path]:
    """The index file and the first-read marker of ``source`` (named by a hash of its resolved path)."""
    key = hashlib.sha256(str(source).encode("utf-8")).hexdigest()[:24]
    folder = (cache_dir or default_cache_dir()) / INDEX_DIR
    return folder / f"{key}.evidx", folder / f"{key}.seen"


def open_index(source: Path, cache_dir: Path | None = None) -> PriceIndex | None:
    """The index of ``source`` if one exists for its current size and mtime, else None."""
    try:
        source = source.resolve()
        identity = _identity(source)
        index_file, _ = _paths(source, cache_dir)
        # Header, size and matrix from one open file: another process may replace the index meanwhile.
        with index_file.open("rb") as handle:
            if handle.read(len(_MAGIC)) != _MAGIC:
                return None
            length = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(length))
            if header.get("format") != _FORMAT or header.get("identity") != identity:
                return None
            tickers, days = tuple(header["tickers"]), np.asarray(header["days"], dtype=np.int64)
            offset = header["offset"]
            if os.fstat(handle.fileno()).st_size != offset + len(tickers) * len(days) * 8:
                return None
            closes = np.memmap(handle, dtype=np.float64, mode="r", offset=offset, shape=(len(tickers), len(days)))
        return PriceIndex(tickers, days, closes, bool(header["nan_rows"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def should_build(source: Path, cache_dir: Path | None = None) -> bool:
    """True on the second read of an unchanged, large enough file; the first read leaves a marker.

    False for good once a build declined this version of the file (:func:`decline`).
    """
    try:
        source = source.resolve()
        identity = _identity(source)
        if identity["size"] < MIN_INDEX_BYTES:
            return False
        _, marker = _paths(source, cache_dir)
        try:
            seen = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            seen = None
        if seen == identity:
            return True
        if seen != {**identity, "declined": True}:
            marker.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(marker, json.dumps(identity).encode("utf-8"))
    except OSError:
        pass
    return False


def decline(source: Path, cache_dir: Path | None = None) -> None:
    """Remember that this version of ``source`` gets no index, so no later read tries again."""
    try:
        source = source.resolve()
        _, marker = _paths(source, cache_dir)
        marker.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(marker, json.dumps({**_identity(source), "declined": True}).encode("utf-8"))
    except OSError:
        pass


def build_index(
    source: Path,
    tickers: list[str],
    days: np.ndarray,
    closes_by_day: np.ndarray,
    nan_rows: bool,
    cache_dir: Path | None = None,
) -> PriceIndex | None:
    """Write the pivot of ``source`` (``closes_by_day`` is days x tickers) as its index; None if it cannot."""
    try:
        source = source.resolve()
        identity = _identity(source)
        index_file, marker = _paths(source, cache_dir)
        header = {
            "format": _FORMAT, "identity": identity, "tickers": list(tickers),
            "days": [int(d) for d in days], "nan_rows": bool(nan_rows), "offset": 0,
        }
        # The header's own length fixes the offset; pad so the matrix starts aligned.
        body = json.dumps(header).encode("utf-8")
        offset = -(-(len(_MAGIC) + 8 + len(body) + 32) // _ALIGN) * _ALIGN
        header["offset"] = offset
        body = json.dumps(header).encode("utf-8")
        prefix = _MAGIC + len(body).to_bytes(8, "little") + body
        prefix += b" " * (offset - len(prefix))
        matrix = np.ascontiguousarray(closes_by_day.T, dtype=np.float64)
        index_file.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(index_file, prefix, matrix)
        marker.unlink(missing_ok=True)
    except OSError:
        return None
    return open_index(source, cache_dir)


def _write_atomic(path: Path, prefix: bytes, matrix: np.ndarray | None = None) -> None:
    """Write to a temporary file in the same folder, then rename it over ``path``."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(prefix)
            if matrix is not None:
                matrix.tofile(out)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------
# Answering FileSource reads from the index.

_ALL_DAYS = (-719_162, 2_932_800)  # day numbers of 0001-01-01 and 9999-09-27: every date a file can hold
_NS_DAYS = (-106_751, 106_750)  # 1677-09-22 .. 2262-04-11: every date a timestamp[ns] column can hold


def ensure_index(path: str | os.PathLike[str]) -> PriceIndex | None:
    """Build the index of a long price file now, whatever its size or read count (None where it cannot have one).

    For benchmarks and batch jobs that know they will read the same file many times.
    """
    from evstudy.prices.files import FileSource, _Long

    source = FileSource(path)
    if not isinstance(source._shape, _Long):
        return None
    return open_index(source.path) or _build_from(source.path, source._shape)


def _index_for(path: Path, shape: _Long | object) -> PriceIndex | None:
    """The usable index of a long file, building it on the file's second read; None to read the file."""
    from evstudy.prices.files import _Long

    if not isinstance(shape, _Long):
        return None
    index = open_index(path)
    if index is None and should_build(path):
        index = _build_from(path, shape)
    return index


def _every_day(shape: _Long) -> tuple[int, int]:
    """The widest day range the file's date column can hold (a timestamp[ns] column stops at 1677..2262)."""
    metadata = shape.file.parquet
    if metadata is not None:
        kind = metadata.schema.to_arrow_schema().field(shape.date).type
        if pa.types.is_timestamp(kind) and kind.unit == "ns":
            return _NS_DAYS
    return _ALL_DAYS


def _build_from(path: Path, shape: _Long) -> PriceIndex | None:
    """Pivot the whole file with its own reader and store it, unless a subset read could differ.

    A file the whole-file read rejects (a bad row the requested range may not
    touch), that has duplicate dates or several spellings of a ticker (whose
    notes and rows depend on what is asked), or names that are not ticker
    symbols (whose note the reader must repeat) is declined and read directly.
    """
    try:
        wide, columns = shape.pivot(None, *_every_day(shape))
        respelled = any(len(raw) > 1 for raw in shape.universe().values()) or bool(shape.notes)
    except (DataSourceError, ConfigError, ValueError, MemoryError):
        wide, respelled = None, True
    if wide is None or respelled or wide.duplicates.any():
        decline(path)
        return None
    metadata = shape.file.parquet
    cells = int(np.count_nonzero(~np.isnan(wide.values)))
    nan_rows = metadata is None or cells != metadata.num_rows
    index = build_index(path, columns, wide.days, wide.values, nan_rows)
    if index is None:  # could not write it (disk full, read-only cache): do not retry on every read
        decline(path)
    return index


def indexed_pivot(
    path: Path, shape: _Long | object, tickers: list[str] | None, first: int, last: int
) -> tuple[_Wide, list[str]] | None:
    """``shape.pivot(tickers, first, last)`` answered from the index, or None where it cannot be.

    With ``tickers=None`` the columns are the tickers with a close in the range
    (what the file's own pivot returns when it has no rows with a missing close).
    """
    from evstudy.prices.files import _unknown_error, _Wide

    index = _index_for(path, shape)
    if index is None or (tickers is None and index.nan_rows):
        return None
    days = index.day_range(first, last)
    if tickers is None:
        present = _with_closes(index, days)
        columns = [index.tickers[i] for i in present]
    else:
        position = {name: i for i, name in enumerate(index.tickers)}
        absent = [t for t in tickers if t not in position]
        if absent:
            raise _unknown_error(absent, sorted(index.tickers), shape.where)
        present, columns = np.array([position[t] for t in tickers], dtype=np.int64), tickers
    values = index.closes[present, days].T if len(present) else np.empty((days.stop - days.start, 0))
    return _Wide(index.days[days].copy(), values, np.zeros(len(columns), np.int64)), columns


def _with_closes(index: PriceIndex, days: slice) -> np.ndarray:
    """Rows of ``index.closes`` (tickers) with at least one close in the columns ``days``."""
    return np.flatnonzero((~np.isnan(index.closes[:, days])).any(axis=1))


@dataclass(frozen=True)
class IndexedMarket:
    """Every ticker with a close in a date range, straight from a price index, without pandas.

    What ``FileSource.load_all`` returns for the same range before it becomes a
    frame: ``closes[:, columns]`` (days x tickers) holds ``tickers``' closes,
    sorted by name. ``closes`` is a view of the memory-mapped index, so a
    caller copies only the rows and columns it uses.
    """

    days: np.ndarray  # datetime64[D], ascending
    closes: np.ndarray  # (days x every ticker of the index), a view
    columns: np.ndarray  # positions in closes' second axis of the tickers with a close in the range
    tickers: list[str]


def indexed_market(path: str | os.PathLike[str], start: dt.date, end: dt.date) -> IndexedMarket | None:
    """The whole market in [start, end] from the index of ``path``, if one is built and usable.

    None means "read the file" (no index yet, a changed file, or rows with a
    missing close, which the file's reader counts differently): the caller then
    goes through ``FileSource.load_all``, which also builds the index on the
    file's second read.
    """
    index = open_index(Path(path).expanduser())
    if index is None or index.nan_rows:
        return None
    days = index.day_range((start - _EPOCH).days, (end - _EPOCH).days)
    present = _with_closes(index, days)
    return IndexedMarket(
        index.days[days].astype("datetime64[D]"), index.closes[:, days].T, present,
        [index.tickers[i] for i in present],
    )
