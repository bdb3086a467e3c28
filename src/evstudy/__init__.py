"""evstudy: did this announcement move these stocks, by how much, and would a statistician believe it?

Data flows one way: config → prices → returns → models → abnormal → inference
→ study (results object) → report. The CLI is a thin shell over :func:`run_study`.

>>> import evstudy
>>> res = evstudy.run_study("configs/jpm-sri-2025.toml", prices="prices.parquet")  # doctest: +SKIP
>>> res.write("reports/jpm")                                                       # doctest: +SKIP
"""

import typing as _typing

from evstudy._version import __version__

if _typing.TYPE_CHECKING:
    from evstudy.api import compare_study, run_study
    from evstudy.config import StudyConfig, ad_hoc_config, load_config
    from evstudy.errors import EvstudyError
    from evstudy.results import StudyResults

__all__ = [
    "EvstudyError", "StudyConfig", "StudyResults", "__version__", "ad_hoc_config", "compare_study", "load_config",
    "run_study",
]

# Exported names load their module on first use (PEP 562), so `import evstudy.x`
# and the CLI do not pay for the whole study stack (scipy, exchange_calendars).
_LAZY = {
    "run_study": "evstudy.api",
    "compare_study": "evstudy.api",
    "StudyConfig": "evstudy.config",
    "ad_hoc_config": "evstudy.config",
    "load_config": "evstudy.config",
    "EvstudyError": "evstudy.errors",
    "StudyResults": "evstudy.results",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'evstudy' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names only (what ``__all__`` lists), for tab completion in a notebook."""
    return sorted(__all__)
