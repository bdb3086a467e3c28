"""The results object: everything a study computed, as labelled tidy tables.

No I/O here: writers in :mod:`evstudy.report` turn it into files, HTML and
terminal tables; a notebook user reads its DataFrames directly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evstudy.calendar import EventTimeline  # noqa: F401  (re-exported: the study builds its timelines from here)
from evstudy.config import StudyConfig
from evstudy.diagnostics import (
    BHAR_COLUMNS, DIAGNOSTIC_COLUMNS, FIT_COMPARISON_COLUMNS, PARAMETER_COLUMNS, ROBUSTNESS_COLUMNS,
)

FIT_COLUMNS = [
    "event", "ticker", "benchmark", "model", "alpha", "beta", "r2", "sigma", "n_obs", "df",
    "zero_share", "invalid_prices", "estimation_start", "estimation_end", "status", "reason",
]
AR_COLUMNS = ["event", "ticker", "benchmark", "date", "rel_day", "return", "expected_return", "abnormal_return"]
CAR_COLUMNS = ["event", "ticker", "benchmark", "window_start", "window_end", "car", "se", "t", "p_value"]
CAR_PATH_COLUMNS = ["event", "ticker", "benchmark", "rel_day", "car", "se"]
# THE verdict record per (event, basket, benchmark, window), filled by evstudy.verdicts (see CONTRACT.md):
# the cross-sectional t and its p, then the headline test that gives the verdict, its statistic and p.
BASKET_COLUMNS = [
    "event", "basket", "benchmark", "window_start", "window_end", "n", "caar", "se", "cs_t", "cs_p",
    "headline_test", "headline_label", "statistic", "p_value", "verdict", "significant", "verdict_reason", "note",
]
BASKET_PATH_COLUMNS = ["event", "basket", "benchmark", "rel_day", "n", "caar", "se"]
BATTERY_COLUMNS = [
    "event", "basket", "benchmark", "window_start", "window_end", "test", "statistic", "p_value", "n", "note",
]
TEST_COLUMNS = [*BATTERY_COLUMNS, "headline"]  # headline: the row whose p gives the basket's verdict
PRICE_COLUMNS = ["event", "ticker", "date", "rel_day", "close", "rebased"]
MEMBER_COLUMNS = ["event", "basket", "ticker", "benchmark"]
PLACEBO_COLUMNS = ["event", "basket", "benchmark", "window_start", "window_end", "draw", "day0", "n", "caar", "bmp"]
DRIFT_COLUMNS = ["event", "ticker", "benchmark", "window_start", "window_end", "car", "se", "t", "p_value", "note"]


@dataclass(frozen=True)
class StudyResults:
    """Everything one run produced. Tables are long pandas DataFrames.

    ``fits`` has one row per (event, ticker, benchmark), included or excluded
    (with its reason); ``cars`` one row per window; ``baskets`` the
    verdict record: the equal-weighted CAAR, its cross-sectional t (``cs_t``,
    ``cs_p``) and the headline test that gives the verdict with its statistic,
    p-value, words and reason (:mod:`evstudy.verdicts`); ``tests`` the battery
    of basket-level tests (one row per test, with a note where undefined; the
    ``headline`` flag marks the row behind each verdict).
    ``placebo`` holds each basket's CAAR and BMP t on every pseudo-event day
    drawn for the placebo tests (one row per draw and window).
    ``diagnostics`` flags untrustworthy estimation windows (event, ticker,
    benchmark, flag, detail, date; see :mod:`evstudy.diagnostics`);
    ``fit_comparison`` puts the full-window and active-part fits of flagged or
    trimmed series side by side; ``robustness`` has market-adjusted CARs;
    ``bhars`` buy-and-hold abnormal returns for windows over 10 days;
    ``parameters`` every model coefficient with its standard error.
    ``drift`` is each included series' CAR over the pre-event drift window
    (``drift_returns`` its daily ARs). ``extras`` holds analyses attached
    after the study (basket comparison, drift summary, event catalogue), each
    with a ``to_dict()`` that results.json carries under the same key.
    """

    config: StudyConfig
    version: str
    provenance: dict[str, Any]
    timelines: tuple[EventTimeline, ...]
    fits: pd.DataFrame
    abnormal_returns: pd.DataFrame
    cars: pd.DataFrame
    car_paths: pd.DataFrame
    baskets: pd.DataFrame
    basket_paths: pd.DataFrame
    tests: pd.DataFrame
    prices: pd.DataFrame
    memberships: pd.DataFrame
    notes: tuple[str, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)
    placebo: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PLACEBO_COLUMNS))
    diagnostics: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DIAGNOSTIC_COLUMNS))
    fit_comparison: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FIT_COMPARISON_COLUMNS))
    robustness: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ROBUSTNESS_COLUMNS))
    bhars: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=BHAR_COLUMNS))
    parameters: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PARAMETER_COLUMNS))
    drift: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DRIFT_COLUMNS))
    drift_returns: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=AR_COLUMNS))

    @property
    def exclusions(self) -> pd.DataFrame:
        """Every (event, ticker, benchmark) left out, and why."""
        excluded = self.fits[self.fits["status"] == "excluded"]
        return excluded[["event", "ticker", "benchmark", "reason"]].reset_index(drop=True)

    def timeline(self, event_id: str) -> EventTimeline:
        for timeline in self.timelines:
            if timeline.event_id == event_id:
                return timeline
        raise KeyError(event_id)

    def to_dict(self, *, table: Callable[[pd.DataFrame], Any] | None = None) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes null) with parameters, provenance and every table.

        Tables are lists of row dicts (:func:`records`); a writer may pass ``table`` to get each frame in
        another form standing for the same rows (results.json's writer builds them as it encodes).
        """
        records = table or _records_of
        return {
            "evstudy_version": self.version,
            "parameters": self.config.to_dict(),
            "data": self.provenance,
            "events": [t.to_dict() for t in self.timelines],
            "fits": records(self.fits[self.fits["status"] == "included"].drop(columns=["status", "reason"])),
            "cars": records(self.cars),
            "baskets": records(self.baskets),
            "tests": records(self.tests),
            "exclusions": records(self.exclusions),
            "diagnostics": records(self.diagnostics),
            "fit_comparison": records(self.fit_comparison),
            "robustness": records(self.robustness),
            "bhars": records(self.bhars),
            "model_parameters": records(self.parameters),
            "notes": list(self.notes),
            **{key: extra.to_dict() for key, extra in self.extras.items()},
        }

    def write(self, out_dir: str | os.PathLike[str], *, xlsx: bool = False) -> dict[str, Path]:
        """Write the run's files into ``out_dir``, as ``evstudy run --out`` does; return their paths.

        report.html, results.json, abnormal_returns.csv, cars.csv, tests.csv
        (comparisons.csv with a basket comparison; results.xlsx with ``xlsx``).
        A notebook convenience that hands the results to the report stage:
        the one import of a later stage that tests/test_layering.py allows,
        made here when called, so computing results never loads the writers.
        """
        from evstudy.report.files import write_outputs

        return write_outputs(self, out_dir, xlsx=xlsx)

    def to_html(self) -> str:
        """The self-contained HTML report (plotly.js inline), e.g. to save or to show in a notebook.

        Delegates to the report stage when called (see :meth:`write`).
        """
        from evstudy.report.html import render_html

        return render_html(self)

    def __repr__(self) -> str:
        included = int((self.fits["status"] == "included").sum())
        events = ", ".join(f"{t.event_id} (day 0 {t.day0.date()})" for t in self.timelines)
        return (
            f"<StudyResults {self.config.name!r}: {events}; {included} series fitted, "
            f"{len(self.exclusions)} excluded; model {self.config.model}>"
        )


def _clean(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    if value is pd.NaT or (value is not None and not isinstance(value, (str, list, dict, tuple)) and pd.isna(value)):
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-ready dicts: NaN/inf become None, dates ISO strings.

    Column by column: numeric numpy columns convert in one ``tolist`` (non-finite floats set to None), other
    columns cell by cell with :func:`_clean`; a 5,000-ticker study's tables took ~28 s cell by cell.
    """
    if frame.shape[1] == 0:
        return [{} for _ in range(len(frame))]
    return column_table(frame).records()


_records_of = records  # to_dict's default, under a name its ``table`` argument's local does not shadow


@dataclass(frozen=True)
class ColumnTable:
    """A table's JSON-ready values column by column: :func:`records` without a dict per row (for fast writers)."""

    names: list[Any]
    columns: list[list[Any]]
    rows: int

    def records(self) -> list[dict[str, Any]]:
        """The row dicts :func:`records` gives for the same frame."""
        if not self.names:
            return [{} for _ in range(self.rows)]
        return [dict(zip(self.names, row)) for row in zip(*self.columns)]


def column_table(frame: pd.DataFrame) -> ColumnTable:
    """``frame``'s JSON-ready columns (each as :func:`records` cleans it), for writers that need no row dicts."""
    return ColumnTable(list(frame.columns), [_clean_column(frame.iloc[:, i]) for i in range(frame.shape[1])],
                       len(frame))


def cleans_to_finite(frame: pd.DataFrame) -> bool:
    """Whether :func:`records` of ``frame`` is free of NaN and ±inf by its columns' types alone: numbers, dates
    and text come out finite or None; only a column of other Python objects (lists, dicts) may hold them."""
    return all(isinstance(dtype, pd.StringDtype) or (isinstance(dtype, np.dtype) and dtype.kind in "biufM")
               for dtype in frame.dtypes)


def _clean_column(column: pd.Series) -> list[Any]:
    """One column's JSON-ready values, as :func:`_clean` gives them cell by cell."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biu":
        return column.to_numpy().tolist()
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        values = column.to_numpy()
        cleaned = values.tolist()
        for position in np.flatnonzero(~np.isfinite(values)).tolist():
            cleaned[position] = None
        return cleaned
    if isinstance(dtype, np.dtype) and dtype.kind == "M":  # dates at midnight as ISO days, NaT as None, at once
        values = column.to_numpy()
        days = values.astype("datetime64[D]")
        missing = np.isnat(values)
        if (missing | (values == days)).all():
            cleaned = np.datetime_as_string(days, unit="D").tolist()
            for position in np.flatnonzero(missing).tolist():
                cleaned[position] = None
            return cleaned
    if isinstance(dtype, pd.StringDtype):  # str cells as they are, missing ones None: what _clean gives, in C
        return column.to_numpy(dtype=object, na_value=None).tolist()
    return [_clean(value.item() if isinstance(value, np.generic) else value) for value in column.tolist()]
