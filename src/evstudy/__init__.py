"""evstudy: did this announcement move these stocks, by how much, and would a statistician believe it?

Data flows one way: config → prices → returns → models → abnormal → inference
→ study (results object) → report. The CLI is a thin shell over :func:`run_study`.
"""

from evstudy._version import __version__
from evstudy.api import run_study
from evstudy.config import StudyConfig, ad_hoc_config, load_config
from evstudy.errors import EvstudyError
from evstudy.results import StudyResults

__all__ = ["EvstudyError", "StudyConfig", "StudyResults", "__version__", "ad_hoc_config", "load_config", "run_study"]
