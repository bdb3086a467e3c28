"""evstudy: did this announcement move these stocks, by how much, and would a statistician believe it?

Data flows one way: config → prices → returns → models → abnormal → inference
→ study (results object) → report. The CLI is a thin shell over :func:`run_study`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evstudy._version import __version__

if TYPE_CHECKING:
    from evstudy.api import run_study
    from evstudy.config import StudyConfig, ad_hoc_config, load_config
    from evstudy.errors import EvstudyError
    from evstudy.results import StudyResults

__all__ = ["EvstudyError", "StudyConfig", "StudyResults", "__version__", "ad_hoc_config", "load_config", "run_study"]

# Exported names load their module on first use (PEP 562), so `import evstudy.x`
# and the CLI do not pay for the whole study stack (scipy, exchange_calendars).
_LAZY = {
    "run_study": "evstudy.api",
    "StudyConfig": "evstudy.config",
    "ad_hoc_config": "evstudy.config",
    "load_config": "evstudy.config",
    "EvstudyError": "evstudy.errors",
    "StudyResults": "evstudy.results",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'evstudy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
