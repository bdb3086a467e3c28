"""Writing output files safely: one output folder check, one atomic write.

Shared by every command's writers (study, scan). It imports nothing heavy, so
the scan's writer stays free of plotly and the study report's imports.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from evstudy.errors import ConfigError


def prepare_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` if needed; a path that cannot be a folder is a ConfigError naming --out."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the output folder ({exc.strerror})") from None
    if not out.is_dir():
        raise ConfigError(f"--out {out} is not a folder")
    return out


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename.

    An interrupted run never leaves a half-written file. The file gets the
    usual permissions for the user's umask (``mkstemp`` alone would make it
    private), since reports are meant to be shared.
    """
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(handle, 0o666 & ~umask)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
