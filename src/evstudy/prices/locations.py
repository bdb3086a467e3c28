"""Where evstudy keeps its caches: importable without pandas, so a scan answered from the price index starts fast."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

CACHE_ENV = "EVSTUDY_CACHE"


def default_cache_dir() -> Path:
    """Where downloaded prices are kept: $EVSTUDY_CACHE if set, else the user cache dir."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("evstudy"))
