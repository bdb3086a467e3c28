"""Read a user-supplied daily factor file (e.g. Fama-French factors) for model "factor".

The file is a CSV with a date column and one column per factor plus the
risk-free rate, in percent (as Kenneth French publishes them: 0.05 means
0.05%) or in decimals, as the config's ``[factors] units`` states. Kenneth
French's own daily CSVs work as downloaded: text lines above the header
(the header is the first line naming the risk-free column) and the copyright
footer are skipped. Dates may be ``YYYYMMDD`` or ISO ``YYYY-MM-DD``.

A mismatch between the stated units and the numbers is caught by magnitude:
daily factor returns have a standard deviation of roughly 0.002-0.02 in
decimals and 0.2-2 in percent, so a typical (median over factors) standard
deviation above 0.05 stated as decimals, or below it stated as percent, is a
:class:`~evstudy.errors.ConfigError` naming the file. Everything is returned
in decimals; the computation never reads files.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evstudy.config import FactorSpec, check_regular_file
from evstudy.errors import ConfigError

# Between the typical daily standard deviation of factor returns in decimals
# (~0.002-0.02) and in percent (~0.2-2): a factor of 2.5 or more from both.
UNITS_THRESHOLD = 0.05
_DATE_RE = re.compile(r"^\s*(\d{8}|\d{4}-\d{2}-\d{2})\s*$")


@dataclass(frozen=True)
class FactorData:
    """Daily factor returns and risk-free rate in decimals, on a sorted unique DatetimeIndex 'date'."""

    factors: pd.DataFrame  # date x factor
    rf: pd.Series
    file: str
    units: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.factors.columns)

    def first_last(self) -> str:
        """The date range the file covers, for messages."""
        index = self.factors.index
        return f"{index[0].date()} to {index[-1].date()}" if len(index) else "no dates"


def _where(spec: FactorSpec) -> str:
    return f"factor file {spec.file} (key 'file' in [factors])"


def _read_table(spec: FactorSpec) -> pd.DataFrame:
    path = Path(spec.file)
    check_regular_file(path, _where(spec))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{_where(spec)} does not exist: give the path of a CSV of daily factors") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{_where(spec)} cannot be read as UTF-8 text: {exc}") from None
    lines = text.splitlines()
    header = next(
        (i for i, line in enumerate(lines) if spec.rf in [c.strip() for c in line.split(",")]), None
    )
    if header is None:
        raise ConfigError(
            f"{_where(spec)} has no header line with a risk-free column {spec.rf!r}: name the column with "
            f"key 'rf' in [factors], e.g. rf = \"RF\""
        )
    body = [lines[header]]
    for line in lines[header + 1:]:
        first = line.split(",", 1)[0]
        if not _DATE_RE.match(first):
            if not line.strip() and len(body) == 1:
                continue
            break  # the footer (Kenneth French's copyright line) or a second, non-daily section
        body.append(line)
    if len(body) < 3:
        raise ConfigError(f"{_where(spec)} has fewer than two dated rows under its header (line {header + 1})")
    table = pd.read_csv(io.StringIO("\n".join(body)), dtype=str, skipinitialspace=True)
    table.columns = [str(c).strip() for c in table.columns]
    return table


def read_factors(spec: FactorSpec) -> FactorData:
    """The factor file of ``spec`` in decimals; a ConfigError names the file for anything wrong in it."""
    table = _read_table(spec)
    date_col = table.columns[0]
    raw_dates = table[date_col].str.strip()
    compact = raw_dates.str.fullmatch(r"\d{8}")
    dates = pd.to_datetime(raw_dates.where(~compact), format="%Y-%m-%d", errors="coerce")
    dates = dates.fillna(pd.to_datetime(raw_dates.where(compact), format="%Y%m%d", errors="coerce"))
    if dates.isna().any():
        bad = raw_dates[dates.isna()].iloc[0]
        raise ConfigError(f"{_where(spec)}: date {bad!r} is not YYYYMMDD or YYYY-MM-DD")
    if dates.duplicated().any():
        raise ConfigError(f"{_where(spec)}: date {dates[dates.duplicated()].iloc[0].date()} appears twice")

    available = [c for c in table.columns[1:] if c != spec.rf]
    columns = list(spec.columns) or available
    absent = [c for c in columns if c not in available]
    if absent:
        raise ConfigError(
            f"{_where(spec)} has no column {absent[0]!r} (key 'columns' in [factors]); its columns: "
            f"{', '.join(available)}"
        )
    if not columns:
        raise ConfigError(f"{_where(spec)} has no factor column besides the date and {spec.rf!r}")
    values = {}
    for column in [*columns, spec.rf]:
        numbers = pd.to_numeric(table[column].str.strip(), errors="coerce")
        bad = table[column][numbers.isna() & table[column].notna() & (table[column].str.strip() != "")]
        if len(bad):
            raise ConfigError(f"{_where(spec)}: column {column!r} holds {bad.iloc[0]!r}, which is not a number")
        values[column] = numbers.to_numpy(dtype=float)
    frame = pd.DataFrame(values, index=pd.DatetimeIndex(dates, name="date")).sort_index()
    _check_variation(spec, frame[columns])
    _check_units(spec, frame[columns], frame[spec.rf])
    scale = 0.01 if spec.units == "percent" else 1.0
    return FactorData(frame[columns] * scale, frame[spec.rf] * scale, spec.file, spec.units)


def _check_variation(spec: FactorSpec, factors: pd.DataFrame) -> None:
    """Refuse, once for the file, factor columns no regression can use: empty, constant or collinear.

    Otherwise every ticker's fit would fail alike ("no variation", numpy
    warnings) instead of one message naming the column.
    """
    counts = factors.notna().sum()
    empty = [c for c in factors.columns if counts[c] < 2]
    if empty:
        raise ConfigError(f"{_where(spec)}: factor column {empty[0]!r} has fewer than two numbers")
    spread = factors.max() - factors.min()
    constant = [c for c in factors.columns if not spread[c] > 0]
    if constant:
        raise ConfigError(
            f"{_where(spec)}: factor column {constant[0]!r} is constant ({factors[constant[0]].dropna().iloc[0]:g} "
            f"on every day): it cannot explain returns; drop it from key 'columns' in [factors]"
        )
    complete = factors.dropna().to_numpy()
    if len(complete) > factors.shape[1] and np.linalg.matrix_rank(complete - complete.mean(axis=0)) < factors.shape[1]:
        raise ConfigError(
            f"{_where(spec)}: the factor columns {', '.join(map(repr, factors.columns))} are collinear (one is a "
            f"combination of the others), so their loadings cannot be told apart; drop the redundant column from "
            f"key 'columns' in [factors]"
        )


def _check_units(spec: FactorSpec, factors: pd.DataFrame, rf: pd.Series) -> None:
    """Compare the stated units with the numbers' magnitude (see the module docstring)."""
    typical = float(np.nanmedian(factors.std(ddof=1).to_numpy()))
    if not np.isfinite(typical):
        raise ConfigError(f"{_where(spec)}: the factor columns have too few numbers to use")
    largest = float(np.nanmax(np.abs(factors.to_numpy())))
    if spec.units == "decimal" and (typical > UNITS_THRESHOLD or largest >= 1.0 or np.nanmax(np.abs(rf)) > 0.01):
        raise ConfigError(
            f"{_where(spec)} looks like percent, but key 'units' in [factors] says \"decimal\": its factors' "
            f"typical daily standard deviation is {typical:.3g} and the largest value {largest:.3g} (daily "
            f"factors in decimals are around 0.01); set units = \"percent\" if the file is in percent"
        )
    if spec.units == "percent" and typical < UNITS_THRESHOLD:
        raise ConfigError(
            f"{_where(spec)} looks like decimals, but key 'units' in [factors] says \"percent\": its factors' "
            f"typical daily standard deviation is {typical:.3g} (daily factors in percent are around 1); "
            f"set units = \"decimal\" if the file is in decimals"
        )
