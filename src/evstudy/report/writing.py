"""Writing a command's outputs as one set, and tables a spreadsheet can open safely.

An output folder (``--out``) only ever holds one complete run. The whole set
is written into a fresh hidden sibling folder, ``.<name>.evstudy-new-<random>``,
which is then swapped in with one atomic ``renameat2(RENAME_EXCHANGE)``; the
previous set, now under the sibling's name, is removed. Interrupted at any
moment (Ctrl-C, SIGTERM, SIGKILL, a full disk), ``--out`` holds either the
complete previous set or the complete new one. Where the file system cannot
exchange two folders, the previous folder is renamed aside first; a run killed
between those two renames leaves ``--out`` missing and the previous set in
``.<name>.evstudy-old-<random>``, which the next run moves back. Every run
removes such leftovers of killed runs first: a live run holds an ``flock`` on
its folders, so only dead runs' leftovers are touched.

Since the folder is replaced as a whole, evstudy only writes into a folder that
is new, empty, or holds nothing but an earlier run's outputs (the files named in
its manifest ``.evstudy-outputs.json``, or evstudy's output names). A folder
holding anything else is refused, so no file evstudy did not write is deleted.

It imports nothing heavy (pandas only for the table helper), so the scan's
writer stays free of plotly and the study report's imports.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import stat
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evstudy._version import __version__
from evstudy.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd  # imported where a frame is written: the scan writes its set without pandas
    import pyarrow as pa

MANIFEST = ".evstudy-outputs.json"
# Every file name any evstudy command writes: a folder holding only these is an earlier run's
# (also when it predates the manifest), so it may be replaced.
EVSTUDY_OUTPUT_NAMES = frozenset({
    "report.html", "results.json", "abnormal_returns.csv", "cars.csv", "tests.csv", "comparisons.csv",
    "results.xlsx", "compare.html", "scan.csv", "scan.json", "scan.html",
    "cars.parquet", "groups.csv", "excluded.csv", MANIFEST,
})
_NEW, _OLD = "evstudy-new", "evstudy-old"
# Temp files that earlier evstudy versions left in an output folder when killed mid-file (.report.html.ab12.tmp).
_OLD_TEMP = re.compile(r"\.(" + "|".join(re.escape(n) for n in sorted(EVSTUDY_OUTPUT_NAMES)) + r")\.[^/]+\.tmp")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# OWASP CSV injection: a cell starting with one of these may run as a formula in a spreadsheet.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def formula_risk(value: object) -> bool:
    """True for a text cell that a spreadsheet could run as a formula (see :func:`neutralize_formula_cells`)."""
    return isinstance(value, str) and value.startswith(FORMULA_LEADS)


def neutralize_formula_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell that a spreadsheet could run as a formula prefixed by ``'``.

    OWASP's CSV-injection guidance: a cell starting with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return is read by Excel, LibreOffice and Google
    Sheets as a formula (``=HYPERLINK(...)`` exfiltrates data when clicked); a
    leading apostrophe makes it plain text. Only text cells change: numeric
    columns, including negative numbers, are left as numbers. Each text column
    is checked once per distinct value, so the cost stays linear in the rows.
    """
    import pandas as pd

    changed: dict[str, pd.Series] = {}
    for name in frame.columns:
        column = frame[name]
        if not (pd.api.types.is_object_dtype(column.dtype) or pd.api.types.is_string_dtype(column.dtype)):
            continue
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        values = list(uniques)
        risky = [formula_risk(v) for v in values]
        if not any(risky):
            continue
        safe = pd.Index([f"'{v}" if bad else v for v, bad in zip(values, risky)], dtype=object)
        cells = safe.take(codes, allow_fill=True, fill_value=None)
        changed[name] = pd.Series(cells, index=column.index, name=name, dtype=object).where(codes >= 0, column)
    if not changed:
        return frame
    return frame.assign(**changed)


def neutralize_formula_columns(table: pa.Table) -> pa.Table:
    """:func:`neutralize_formula_cells` for an Arrow table, checked by Arrow on whole columns (no Python per cell).

    Columns without a risky cell are the table's as they are.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    for index, field in enumerate(table.schema):
        if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            continue
        column = table.column(index)
        risky = pc.starts_with(column, FORMULA_LEADS[0])
        for lead in FORMULA_LEADS[1:]:
            risky = pc.or_(risky, pc.starts_with(column, lead))
        if pc.any(risky).as_py():
            quote, nothing = pa.scalar("'", field.type), pa.scalar("", field.type)
            safe = pc.if_else(risky, pc.binary_join_element_wise(quote, column, nothing), column)
            table = table.set_column(index, field.name, safe)
    return table


def table_csv(frame: pd.DataFrame, **to_csv: object) -> str:
    """``frame`` as CSV text for a spreadsheet: formula-leading text neutralized, no index."""
    return neutralize_formula_cells(frame).to_csv(index=False, **to_csv)


def check_output_folder(out_dir: str | os.PathLike[str]) -> None:
    """Fail early (ConfigError naming --out) if ``out_dir`` cannot take a new set; clears killed runs' leftovers.

    Called before a long computation so a bad --out costs nothing;
    :func:`write_output_set` checks again when it writes.
    """
    shown = Path(out_dir)
    target = _target_of(shown)
    _remove_leftovers(target)
    _check_replaceable(shown, target)


def write_output_set(
    out_dir: str | os.PathLike[str], contents: Mapping[str, bytes | Sequence[bytes]], *, command: str
) -> dict[str, Path]:
    """Replace ``out_dir`` by a folder holding exactly ``contents`` (name -> bytes), as one set.

    A file may be given as a sequence of parts, written one after the other
    (a large file encoded in slices is then never copied into one buffer).

    Returns the final path of each file. A folder that cannot be used (a file
    or device, not writable, holding files evstudy did not write, the current
    folder) and every write failure (disk full, read-only file system) is a
    ConfigError naming ``--out``: the previous set is then left as it was and
    nothing of the new one remains.
    """
    check_output_folder(out_dir)
    shown = Path(out_dir)
    target = _target_of(shown)
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {shown}: cannot create the output folder ({_why(exc)})") from None
    with _terminate_as_interrupt():
        staging, lock = _make_staging(shown, target)
        aside = _unique_sibling(target, _OLD)  # where the previous set goes if folders cannot be exchanged
        step = "writing"
        try:
            for name, data in contents.items():
                step = f"writing {name}"
                _write_file(staging / name, data)
            manifest = {
                "written_by": f"evstudy {__version__}",
                "command": command,
                "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "files": sorted(contents),
            }
            _write_file(staging / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))
            _fsync_dir(staging)
            step = "swapping the new set in"
            _swap_in(staging, target, aside)
        except OSError as exc:
            raise ConfigError(
                f"--out {shown}: cannot write the outputs ({_why(exc)}, {step}); the folder was left as it was: "
                "free some space or choose another --out"
            ) from None
        finally:
            # Before the swap the staging folder holds the unfinished new set; after it, the previous set.
            shutil.rmtree(staging, ignore_errors=True)
            if os.path.lexists(target):
                shutil.rmtree(aside, ignore_errors=True)
            os.close(lock)
    return {name: shown / name for name in contents}


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _target_of(shown: Path) -> Path:
    """The absolute folder to replace: a symlinked ``--out`` keeps its link, its target is replaced."""
    return Path(os.path.realpath(shown))


def _check_replaceable(shown: Path, target: Path) -> None:
    """Refuse an --out that is not a folder, contains the current folder, or holds files evstudy did not write."""
    try:
        mode = target.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # created later, or refused then with the reason
    except OSError as exc:
        raise ConfigError(f"--out {shown}: cannot use it as the output folder ({_why(exc)})") from None
    if not stat.S_ISDIR(mode):
        kind = "a file" if stat.S_ISREG(mode) else "a device, socket or pipe"
        raise ConfigError(f"--out {shown} is {kind}, not a folder: give a folder for the outputs")
    cwd = Path(os.path.realpath(Path.cwd()))
    if cwd == target or target in cwd.parents:
        raise ConfigError(
            f"--out {shown} is (or contains) the current folder: evstudy replaces its output folder as a whole; "
            "give a subfolder such as --out results"
        )
    if os.path.ismount(target):
        raise ConfigError(
            f"--out {shown} is a mount point: evstudy replaces its output folder as a whole; give a folder inside it"
        )
    foreign = _foreign_entries(target)
    if foreign:
        listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ConfigError(
            f"--out {shown} holds {listed}, not written by evstudy; evstudy replaces its output folder as a "
            "whole, so it writes only into a new or empty folder or one holding an earlier evstudy run: "
            "move them away or choose another --out"
        )
    if not os.access(target, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {shown} is not writable: choose another --out or change its permissions")


def _foreign_entries(folder: Path) -> list[str]:
    """Entries of ``folder`` evstudy did not write: anything but regular files with its output names."""
    names = set(EVSTUDY_OUTPUT_NAMES)
    try:
        listed = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"]
        names.update(n for n in listed if isinstance(n, str))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    foreign = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name not in names and not _OLD_TEMP.fullmatch(entry.name):
                foreign.append(entry.name)
            elif entry.is_dir(follow_symlinks=False):
                foreign.append(f"{entry.name}/ (a folder)")
            elif not entry.is_file(follow_symlinks=False):
                foreign.append(f"{entry.name} (a link or special file)")
    return sorted(foreign)


def _make_staging(shown: Path, target: Path) -> tuple[Path, int]:
    """A fresh sibling folder for the new set, locked for as long as this process lives."""
    try:
        staging = Path(_unique_sibling(target, _NEW))
        staging.mkdir()
    except OSError as exc:
        raise ConfigError(
            f"--out {shown}: cannot create a folder next to it in {target.parent} ({_why(exc)}); evstudy writes "
            "the new outputs there and swaps them in: choose an --out in a folder you can write"
        ) from None
    lock = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        os.chmod(staging, stat.S_IMODE(target.stat().st_mode))  # keep the folder's permissions...
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # ...or the usual ones: reports are meant to be shared
    return staging, lock


def _unique_sibling(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{kind}-{secrets.token_hex(6)}"


def _write_file(path: Path, data: bytes | Sequence[bytes]) -> None:
    with open(path, "xb") as stream:
        for part in (data,) if isinstance(data, (bytes, bytearray, memoryview)) else data:
            stream.write(part)
        stream.flush()
        os.fsync(stream.fileno())  # a full disk can surface only here (delayed allocation, NFS)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(first: Path, second: Path) -> bool:
    """Atomically swap two folders (Linux renameat2); False where the system or file system cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _swap_in(staging: Path, target: Path, aside: Path) -> None:
    """Put the complete set in ``staging`` at ``target``; the previous set ends in ``staging`` or ``aside``."""
    if not target.exists():
        os.rename(staging, target)
        return
    if _exchange(staging, target):
        return
    lock = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no other run may move it back while it is aside
        try:
            os.rename(target, aside)
            os.rename(staging, target)
        except BaseException:  # an error or an interrupt between the two renames: put the previous set back
            if aside.exists() and not os.path.lexists(target):
                os.rename(aside, target)
            raise
    finally:
        os.close(lock)


def _remove_leftovers(target: Path) -> None:
    """Remove what killed runs left next to ``target``; move a previous set left aside back into place."""
    parent = target.parent
    if not parent.is_dir():
        return
    prefix = f".{target.name}."
    for entry in sorted(os.scandir(parent), key=lambda e: e.name):
        kind = entry.name[len(prefix):].rsplit("-", 1)[0] if entry.name.startswith(prefix) else None
        if kind not in (_NEW, _OLD) or not entry.is_dir(follow_symlinks=False):
            continue
        with _unless_locked(Path(entry.path)) as free:
            if not free:
                continue  # a live run's
            if kind == _OLD and not os.path.lexists(target):
                os.rename(entry.path, target)
            else:
                shutil.rmtree(entry.path, ignore_errors=True)


@contextlib.contextmanager
def _unless_locked(folder: Path) -> Iterator[bool]:
    """Yield True holding ``folder``'s lock when no live process holds it, else False."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While writing, SIGTERM raises KeyboardInterrupt, so the unfinished set is removed before exiting."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("terminated")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
