"""Number formats, plain-word verdicts and figure JSON shared by every report section.

The bottom of the report package: the page composer (:mod:`evstudy.report.html`)
and every section module import from here, and this module imports no other
part of the report, so the package has no import circle.
"""

from __future__ import annotations

import collections
import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

MISSING = "—"
_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
_PLOTLY_JSON_SWAPS = (("<", "\\u003c"), (">", "\\u003e"), ("/", "\\u002f"))  # plotly.io's, after its encoder
# Toolbar without the plotly logo; "responsive" makes figures follow the page width.
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, not a number or infinite."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fmt_pct(value: Any, signed: bool = True) -> str:
    """A return as a percentage with 2 decimals (``+3.21%``); NaN/None as a dash."""
    number = finite(value)
    if number is None:
        return MISSING
    return f"{number * 100:+.2f}%" if signed else f"{number * 100:.2f}%"


def fmt_num(value: Any, digits: int = 2) -> str:
    """A plain number (t statistic, beta, R²) with ``digits`` decimals; NaN/None as a dash."""
    number = finite(value)
    return MISSING if number is None else f"{number:.{digits}f}"


def fmt_int(value: Any) -> str:
    """A count; NaN/None as a dash."""
    number = finite(value)
    return MISSING if number is None else str(int(number))


def fmt_p(value: Any) -> str:
    """A p-value with 3 decimals, ``<0.001`` below that; NaN/None as a dash."""
    number = finite(value)
    if number is None:
        return MISSING
    return "<0.001" if number < 0.001 else f"{number:.3f}"


def p_key(source: str, *parts: Any) -> str:
    """Where a p shown on the page comes from (``data-p`` attribute): a table of the results and the row's keys.

    ``record|event|basket|benchmark|start|end`` is the verdict record's headline p
    (``results.baskets``); ``tests|…|test``, ``cars|event|ticker|benchmark|start|end``
    and the others name their table likewise, so a test can check every p on
    the page against the one table it must come from.
    """
    return "|".join(str(part) for part in (source, *parts))


def plural(count: Any, noun: str, plural_noun: str | None = None) -> str:
    """``1 stock``, ``2 stocks``, ``1,204 trading days`` (the noun agrees with the count)."""
    number = finite(count)
    if number is None:
        return f"{MISSING} {plural_noun or noun + 's'}"
    whole = int(number)
    return f"{whole:,} {noun if whole == 1 else (plural_noun or noun + 's')}"


def verdict(p_value: Any, effect: Any = None) -> tuple[str, str]:
    """Plain words for a p-value, and a CSS class: ("significant at 5%, positive", "sig")."""
    p = finite(p_value)
    if p is None:
        return "not computed", "na"
    sign = finite(effect)
    direction = "" if sign is None or sign == 0 else (", positive" if sign > 0 else ", negative")
    for level, words in ((0.01, "1%"), (0.05, "5%")):
        if p < level:
            return f"significant at {words}{direction}", "sig"
    if p < 0.10:
        return f"weak: significant at 10% only{direction}", "weak"
    return "not significant", "ns"


def record_verdict(words: Any, effect: Any = None) -> tuple[str, str]:
    """The verdict record's words (``results.baskets["verdict"]``) with the effect's direction, and a CSS class.

    Only presentation: the words and the test behind them come from the record.
    """
    if not isinstance(words, str) or not words:
        return "not computed", "na"
    if words.startswith("inconclusive"):
        return words, "na"
    if not words.startswith("significant"):
        return words, "ns"
    sign = finite(effect)
    direction = "" if sign is None or sign == 0 else (", positive" if sign > 0 else ", negative")
    return f"{words}{direction}", "weak" if words.endswith("10%") else "sig"


def window_words(start: int, end: int) -> str:
    """``day 0``, ``day +1`` or ``days -1 to +1``."""
    def day(d: int) -> str:
        return "0" if d == 0 else f"{d:+d}"

    if start == end:
        return f"day {day(start)}"
    return f"days {day(start)} to {day(end)}"


def date_words(value: Any, weekday: bool = True) -> str:
    """``Mon 2025-10-13`` (or ``2025-10-13``) from a date, Timestamp or ISO string; missing as a dash."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return MISSING
    return f"{pd.Timestamp(value):%a %Y-%m-%d}" if weekday else f"{pd.Timestamp(value):%Y-%m-%d}"


def sort_key(value: Any) -> str:
    """A numeric key for the page's table sorter (``data-sort``); missing values sort last."""
    number = finite(value)
    return "" if number is None else repr(number)


def records(frame: pd.DataFrame, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """The rows of ``frame`` as dicts of Python values, as ``frame.to_dict("records")`` gives them.

    Column by column (``tolist``), several times faster than ``to_dict`` or
    ``itertuples`` on pandas' Arrow-backed string columns, for the report's
    tables built row by row.
    """
    names = list(frame.columns) if columns is None else columns
    if not all(_plain(frame[name]) for name in names):  # nullable ints and the like: pandas' own rules
        return frame[names].to_dict("records")
    return [dict(zip(names, row)) for row in zip(*(frame[name].tolist() for name in names))]


def _plain(column: pd.Series) -> bool:
    """A numpy or string column: ``tolist`` gives the Python values pandas' row access gives."""
    return isinstance(column.dtype, (np.dtype, pd.StringDtype))


def tuples(frame: pd.DataFrame) -> Iterator[Any]:
    """``frame.itertuples(index=False)``, the same named tuples of the same values, read column by column.

    pandas iterates each column element by element, which on its Arrow-backed
    string columns costs microseconds a cell; ``tolist`` converts a column at once.
    """
    row = collections.namedtuple("Pandas", [str(c) for c in frame.columns], rename=True)
    return map(row._make, zip(*(values(frame.iloc[:, k]) for k in range(frame.shape[1]))))


def joined_by(keys: Iterable[Any], texts: Iterable[str], separator: str) -> dict[Any, str]:
    """Each key's texts joined in their order, keys in order of first appearance: ``groupby(sort=False).agg(
    separator.join)`` in one pass (pandas' per-group path costs ~50 µs a group)."""
    grouped: dict[Any, list[str]] = {}
    for key, text in zip(values(keys) if isinstance(keys, pd.Series) else keys, texts):
        grouped.setdefault(key, []).append(text)
    return {key: separator.join(parts) for key, parts in grouped.items()}


def keyed(frame: pd.DataFrame, keys: list[str], value: str) -> dict[tuple[Any, ...], Any]:
    """``frame.set_index(keys)[value].get(key)`` for every key as one dict: the same values (numpy scalars for
    numpy columns) on unique keys, without pandas' ~30 µs per MultiIndex lookup."""
    return dict(zip(zip(*(values(frame[k]) for k in keys)), frame[value].to_numpy()))


def values(column: pd.Series) -> list[Any]:
    """A column's values as iterating it gives them: ``tolist`` for numpy and string columns (the same
    Python objects, at once: iterating an Arrow-backed string column costs microseconds a cell);
    element by element for other extension types (nullable ints give numpy ints)."""
    return column.tolist() if _plain(column) else list(column)



def figure_json(figure: Any) -> Markup:
    """A figure (plotly ``Figure`` or a plain plotly.js dict) as JSON safe inside a <script> element.

    Plain dicts are the fast path for large studies: no figure object, no
    validation. The text is what ``plotly.io.json.to_json_plotly`` writes
    with its built-in json engine — numpy arrays as lists, NaN and infinities
    as null, ``<``, ``>`` and ``/`` escaped — without importing plotly.io,
    whose validators and narwhals cost ~0.08 s a process.
    """
    spec = figure if isinstance(figure, dict) else figure.to_plotly_json()
    text = json.dumps({**spec, "config": PLOT_CONFIG}, default=_json_default, separators=(",", ":"))
    if "NaN" in text or "Infinity" in text:  # plotly's test: then every non-finite number becomes null
        text = json.dumps(json.loads(text, parse_constant=lambda _: None), separators=(",", ":"))
    for unsafe, safe in _PLOTLY_JSON_SWAPS:
        text = text.replace(unsafe, safe)
    return Markup(text.translate(_JSON_ESCAPES))


def _json_default(value: Any) -> Any:
    """numpy arrays and scalars as plotly's JSON encoder writes them (``tolist()``); anything else by that encoder."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufUO":
        return value.tolist()
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    from _plotly_utils.utils import PlotlyJSONEncoder  # dates, pandas objects: rare, and plotly's rules

    return PlotlyJSONEncoder().default(value)
