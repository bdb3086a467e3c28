"""Which basket test gives each verdict: thin readers of the verdict record.

The choice itself is computed by :mod:`evstudy.verdicts` (from the measured
size/power evidence) and stored in ``results.baskets`` (``headline_test``,
``p_value``, ``verdict``, ``verdict_reason``) and the ``headline`` flag of
``results.tests``. These helpers only read that record, so every section and
the terminal show the same test and p for the same cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from evstudy.inference import SMALL_N
from evstudy.report.format import tuples


@dataclass(frozen=True)
class Advice:
    """The headline test of one basket (None: inconclusive) and the record's sentence that says why."""

    test: str | None
    reason: str
    small_n: bool = False


def _p(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def trusted_tests(results: Any) -> dict[tuple[str, str, str], Advice]:
    """(event, basket, benchmark) → the headline test and its reason, read from the record.

    Where the record picks different tests for different windows, the day-0
    window's (else the first window's) choice stands for the basket.
    """
    out: dict[tuple[str, str, str], Advice] = {}
    table = results.baskets
    day0 = (table["window_start"] == 0) & (table["window_end"] == 0)
    for row in tuples(table.loc[day0]) if day0.any() else ():
        out[(row.event, row.basket, row.benchmark)] = Advice(row.headline_test or None, row.verdict_reason, row.n < SMALL_N)
    for row in tuples(table):
        out.setdefault((row.event, row.basket, row.benchmark),
                       Advice(row.headline_test or None, row.verdict_reason, row.n < SMALL_N))
    return out


def trusted_p_values(results: Any) -> dict[tuple[str, str, str, int, int], tuple[str, float | None]]:
    """(event, basket, benchmark, window_start, window_end) → (headline test id, its p-value or None)."""
    return {
        (row.event, row.basket, row.benchmark, int(row.window_start), int(row.window_end)):
            (row.headline_test, _p(row.p_value))
        for row in tuples(results.baskets) if row.headline_test
    }
