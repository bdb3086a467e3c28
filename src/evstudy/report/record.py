"""The verdict record as the report reads it: one row per (event, basket, benchmark, window).

The columns are those of the shared verdict contract (``results.baskets``):
``n, caar, cs_t, cs_p, headline_test, headline_label, statistic, p_value,
verdict, significant, verdict_reason, note``. The report shows them as they
are; it never chooses a test or recomputes a p-value.
"""

from __future__ import annotations

import pandas as pd

from evstudy.inference import TEST_LABELS
from evstudy.report import trust
from evstudy.report.format import finite, verdict
from evstudy.results import StudyResults

RECORD_COLUMNS = (
    "event", "basket", "benchmark", "window_start", "window_end", "n", "caar", "cs_t", "cs_p", "headline_test",
    "headline_label", "statistic", "p_value", "verdict", "significant", "verdict_reason", "note",
)


def verdict_record(results: StudyResults) -> pd.DataFrame:
    """``results.baskets`` when it carries the verdict columns; otherwise the same columns from today's advice."""
    baskets = results.baskets
    if "verdict" in baskets.columns:
        return baskets
    advice, trusted = trust.trusted_tests(results), trust.trusted_p_values(results)
    tests = results.tests.set_index(["event", "basket", "benchmark", "test", "window_start", "window_end"])["statistic"]
    rows = []
    for row in baskets.itertuples(index=False):
        key = (row.event, row.basket, row.benchmark)
        chosen = advice.get(key)
        test, p = trusted.get((*key, row.window_start, row.window_end), (None, None))
        if not test:
            test, p = "cs_t", finite(row.p_value)
        words, css = verdict(p, row.caar)
        stat = tests.get((*key, test, row.window_start, row.window_end))
        rows.append({
            "event": row.event, "basket": row.basket, "benchmark": row.benchmark,
            "window_start": row.window_start, "window_end": row.window_end, "n": row.n, "caar": row.caar,
            "cs_t": row.t, "cs_p": row.p_value, "headline_test": test, "headline_label": TEST_LABELS.get(test, test),
            "statistic": row.t if test == "cs_t" else stat, "p_value": p,
            "verdict": words, "significant": css == "sig",
            "verdict_reason": chosen.reason if chosen and chosen.test else "",
            "note": row.note,
        })
    return pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
