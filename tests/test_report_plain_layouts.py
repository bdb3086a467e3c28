"""The report's plain plotly.js layouts equal what plotly's figure objects would build.

The report lays out its subplot grids and templates as plain dicts
(:func:`charts.subplot_grid`, :func:`charts.plain_layout`,
:func:`charts.plotly_template`), because building them through plotly's
validators costs ~0.3 s of every report; here each is checked against
``make_subplots`` / ``go.Figure`` itself.
"""

from __future__ import annotations

import itertools
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from evstudy.report import charts


def _grid_cases():
    for rows, cols in itertools.product((1, 2, 3, 5), (1, 2, 3, 4)):
        for h, v in ((0.06, 0.16), (0.03, min(0.2, 80 / (150 + 240 * rows))), (0.2 / cols, 0.3 / rows)):
            n = rows * cols
            yield rows, cols, h, v, [f"panel {k}" if k % 5 != 3 else "" for k in range(n - (n > 2))]


@pytest.mark.parametrize(("rows", "cols", "h", "v", "titles"), list(_grid_cases()))
def test_subplot_grid_equals_make_subplots(rows, cols, h, v, titles):
    expected = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=h,
                             vertical_spacing=v).to_plotly_json()["layout"]
    expected.pop("template")
    assert charts.subplot_grid(rows, cols, titles, horizontal_spacing=h, vertical_spacing=v) == expected


@pytest.mark.parametrize("name", ["plotly", "plotly_white"])
def test_plotly_template_is_the_template_a_figure_carries(name):
    fig = go.Figure()
    if name != "plotly":
        fig.update_layout(template=name)
    assert charts.plotly_template(name) == fig.to_plotly_json()["layout"]["template"]
    first, second = charts.plotly_template(name), charts.plotly_template(name)
    first["layout"]["font"]["color"] = "red"
    assert second["layout"]["font"]["color"] != "red"  # a fresh dict each call


def test_plain_layout_and_update_axes_equal_plain_style_and_update_axes():
    titles = ["day 0", "days -1 to +1", "days 0 to +1", "days 0 to +5"]
    fig = make_subplots(rows=2, cols=3, subplot_titles=titles, horizontal_spacing=0.06, vertical_spacing=0.16)
    charts.plain_style(fig)
    fig.update_xaxes(ticksuffix="%", zeroline=True, zerolinecolor="#cbd5e1")
    fig.update_yaxes(title_text="pseudo-days", col=1)
    layout = charts.plain_layout(charts.subplot_grid(2, 3, titles, horizontal_spacing=0.06, vertical_spacing=0.16))
    charts.update_axes(layout, "x", {"ticksuffix": "%", "zeroline": True, "zerolinecolor": "#cbd5e1"})
    charts.update_axes(layout, "y", {"title": {"text": "pseudo-days"}}, col=1, cols=3)
    assert layout == fig.to_plotly_json()["layout"]

    single = go.Figure()
    charts.plain_style(single)
    assert charts.plain_layout({}) == single.to_plotly_json()["layout"]


def test_update_axes_merges_nested_settings_without_sharing_them():
    layout = charts.subplot_grid(1, 2, ["a", "b"], horizontal_spacing=0.1, vertical_spacing=0.1)
    charts.update_axes(layout, "y", {"title": {"text": "CAR"}})
    charts.update_axes(layout, "y", {"title": {"font": {"size": 11}}}, col=2, cols=2)
    assert layout["yaxis"]["title"] == {"text": "CAR"}
    assert layout["yaxis2"]["title"] == {"text": "CAR", "font": {"size": 11}}


def _three_baskets():
    """Three overlapping baskets on a synthetic market, with placebo dates, the comparison and drift attached."""
    from evstudy.catalogue import attach_catalogue
    from evstudy.compare import attach_comparison
    from evstudy.config import config_from_dict
    from evstudy.study import compute_study
    from helpers import closes_from_returns, nyse_dates, price_data

    rng = np.random.default_rng(2025)
    dates = nyse_dates(320, start="2024-06-03")
    market = rng.normal(0.0004, 0.01, 320)
    returns = {"MKT": market, **{f"S{i}": 0.8 * market + rng.normal(0, 0.01, 320) for i in range(1, 8)}}
    cfg = config_from_dict({
        "benchmark": "MKT", "estimation_window": [-250, -21], "windows": [[0, 0], [-1, 1], [0, 5], [0, 10]],
        "placebo_dates": 50, "events": [{"id": "ev", "date": dates[300].date().isoformat()}],
        "baskets": [{"name": "B1", "tickers": ["S1", "S2", "S3"]}, {"name": "B2", "tickers": ["S3", "S4", "S5", "S6"]},
                    {"name": "B3", "tickers": ["S7", "S6"]}],
    })
    return attach_comparison(attach_catalogue(compute_study(cfg, price_data(closes_from_returns(returns, dates)))))


def test_a_one_event_report_builds_no_plotly_figure_object():
    """Its charts (tests, comparison, drift included) are plain dicts written by figure_json: plotly's figure
    classes, validators and JSON machinery (~0.4 s together) stay unloaded."""
    code = (
        "import pickle, sys\n"
        "from evstudy.report.html import render_html\n"
        "page = render_html(pickle.loads(sys.stdin.buffer.read()))\n"
        "assert all(f'id=\"{k}-spec\"' in page for k in ('chart-0-placebo', 'compare-0-paths', 'drift-chart'))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('plotly.graph_objs.', 'plotly.subplots', 'plotly.io',\n"
        "                                                    '_plotly_utils.basevalidators', 'narwhals'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(_three_baskets()), capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().strip() == "[]"


def test_figure_json_writes_what_plotly_io_writes():
    """Numbers, NaN and infinities, numpy arrays and scalars of every kind, markup characters, unicode, dates."""
    import datetime as dt

    import pandas as pd
    import plotly.io as pio

    from evstudy.report.format import PLOT_CONFIG, _JSON_ESCAPES, figure_json

    rng = np.random.default_rng(3)
    floats = rng.standard_normal(50) * 10.0 ** rng.integers(-12, 12, 50)
    specs = [
        {"data": [{"x": np.arange(5), "y": floats, "name": "a </script> & <b>ünïcode</b> / ✓"}], "layout": {}},
        {"data": [{"y": np.array([1.0, np.nan, np.inf, -np.inf]), "customdata": np.column_stack([["Mon", "Tue"],
                                                                                                  [1.5, 2.5]])}],
         "layout": {"title": {"text": "NaN in a title only"}, "height": np.int64(400), "flag": np.bool_(True),
                    "w": np.float32(0.1), "v": [float("nan"), 1, None, True]}},
        {"data": [{"x": np.array([True, False]), "y": np.array([1, 2], dtype=np.int32), "o": np.array(["a", 1], dtype=object),
                   "t": np.array(["2025-10-13", "2025-10-14"], dtype="datetime64[D]"), "d": dt.date(2025, 10, 13),
                   "ts": pd.Timestamp("2025-10-13 09:30")}], "layout": {"xaxis": {"range": (0, 1)}}},
        {"data": [], "layout": {"x": 1e300, "y": -0.0, "z": 5e-324}},
    ]
    for spec in specs:
        expected = pio.json.to_json_plotly({**spec, "config": PLOT_CONFIG}, engine="json").translate(_JSON_ESCAPES)
        assert str(figure_json(spec)) == expected


def test_compiled_templates_are_kept_and_reused_unless_damaged(tmp_path):
    """The second process renders the report's templates from their kept compiled code (no compile);
    a damaged kept file or an unusable cache folder only means compiling again."""
    import os

    names = ["report.html.j2", "inference_section.html.j2", "compare_section.html.j2", "drift_section.html.j2",
             "diagnostics_section.html.j2", "catalogue_section.html.j2"]
    code = (
        "import sys, jinja2\n"
        "compiled = []\n"
        "original = jinja2.Environment._compile\n"
        "jinja2.Environment._compile = lambda self, *a: compiled.append(a[1]) or original(self, *a)\n"
        "from evstudy.report.sections import report_template\n"
        f"for name in {names!r}:\n"
        "    report_template(name)\n"
        "print(len(compiled))\n"
    )

    def compiles(cache: Path) -> int:
        env = {**os.environ, "EVSTUDY_CACHE": str(cache)}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return int(out.stdout)

    assert compiles(tmp_path) == len(names)
    assert compiles(tmp_path) == 0
    kept = sorted((tmp_path / "report-templates").iterdir())
    assert len(kept) == len(names)
    kept[0].write_bytes(b"j2 damaged")
    kept[1].write_bytes(kept[1].read_bytes()[:40])
    assert compiles(tmp_path) == 2
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "report-templates").write_text("a file where the folder would be")
    assert compiles(blocked) == len(names) and compiles(blocked) == len(names)


def test_kept_template_code_is_keyed_by_the_environment_settings(tmp_path):
    from evstudy.report.template_cache import CompiledTemplateCache

    one, other = CompiledTemplateCache(tmp_path, "settings A"), CompiledTemplateCache(tmp_path, "settings B")
    assert one.get_cache_key("report.html.j2") != other.get_cache_key("report.html.j2")
    assert one.get_cache_key("report.html.j2") != one.get_cache_key("drift_section.html.j2")


def test_tuples_and_records_give_what_pandas_gives():
    """format.tuples / format.records: itertuples(index=False) / to_dict("records"), same types and values."""
    import pandas as pd

    from evstudy.report.format import records, tuples

    frame = pd.DataFrame({
        "name": pd.array(["a", None, "ç"], dtype="str"), "n": [1, 2, 3], "x": [0.5, np.nan, -np.inf],
        "flag": [True, False, True], "when": pd.to_datetime(["2025-10-13", None, "2025-10-14"]),
        "count": pd.array([1, None, 3], dtype="Int64"), "class": ["x", "y", "z"], "1st": [1, 2, 3],
    })

    def same(a, b):
        return type(a) is type(b) and (a is b or a == b or (a != a and b != b))

    for ours, theirs in zip(tuples(frame), frame.itertuples(index=False)):
        assert ours._fields == theirs._fields and all(same(a, b) for a, b in zip(ours, theirs))
    for ours, theirs in zip(records(frame), frame.to_dict("records")):
        assert list(ours) == list(theirs) and all(same(ours[k], theirs[k]) for k in ours)
    assert list(tuples(frame.iloc[0:0])) == [] and records(frame.iloc[0:0]) == []
