"""compare's own page, comparison first: the answer, the basket chart, the corrected pairwise table.

``evstudy compare`` writes the study's usual outputs (report.html is the full
study report) and, in the same output set, this page, compare.html, which puts the question compare
asks first: which basket moved most, and which pairs differ once the
p-values are corrected for the number of pairs. It reuses the comparison
section (:mod:`evstudy.report.compare_section`) and links to the full report
for per-basket tests, per-stock tables and diagnostics. The page has its own
small template so it does not depend on the study report's layout.
"""

from __future__ import annotations

import datetime as dt

from markupsafe import Markup
from plotly.offline import get_plotlyjs

from evstudy.report import compare_section
from evstudy.report.sections import render_section
from evstudy.results import StudyResults

TEMPLATE = "compare_page.html.j2"
PAGE = "compare.html"


def render_compare_page(results: StudyResults, *, generated_at: dt.datetime | None = None,
                        full_report: str = "report.html") -> str:
    """The comparison-first page as one self-contained HTML document (plotly.js inline).

    Raises ``ValueError`` when the results hold no basket comparison (the API and
    CLI check comparability before any price is loaded).
    """
    section = compare_section.render(results)
    if section is None:
        raise ValueError("these results hold no basket comparison: run evstudy.compare_study first")
    cfg = results.config
    when = (generated_at or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    return render_section(
        TEMPLATE,
        title=cfg.title or cfg.name,
        name=cfg.name,
        version=results.version,
        generated=f"{when:%Y-%m-%d %H:%M} UTC",
        mappings=[t.mapping for t in results.timelines],
        section=section.html,
        full_report=full_report,
        plotly_js=Markup(get_plotlyjs().replace("</script", "<\\/script")),
    )
