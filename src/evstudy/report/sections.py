"""Extra report sections (tests, event catalogue, basket comparison, drift): their container and template loader.

Each section renders its own Jinja template with the same settings as the main
report (autoescape on, strict undefined, the shared formats as filters), so
every user-supplied string is escaped; its charts use the main report's
``data-chart`` JSON convention and are drawn by the main page's script.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from evstudy.report.format import plural


@dataclass(frozen=True)
class Section:
    """One rendered report section: its anchor id, its title for the contents bar, and its HTML."""

    id: str
    title: str
    html: Markup


def jinja_environment() -> Environment:
    """The report's Jinja settings: autoescape, strict undefined, and ``plural`` (``{{ n|plural("stock") }}``)."""
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["plural"] = plural
    return env


def render_section(template: str, **context: Any) -> Markup:
    """Render ``templates/<template>`` from this package with autoescaping."""
    source = resources.files("evstudy.report").joinpath("templates", template).read_text(encoding="utf-8")
    return Markup(jinja_environment().from_string(source).render(**context))
