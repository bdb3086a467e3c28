"""Extra report sections (basket comparison, event catalogue and drift): their container and template loader.

Each section renders its own Jinja template with the same settings as the main
report (autoescape on, strict undefined), so every user-supplied string is
escaped; its charts use the main report's ``data-chart`` JSON convention and
are drawn by the main page's script.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup


@dataclass(frozen=True)
class Section:
    """One rendered report section: its anchor id, its title for the contents bar, and its HTML."""

    id: str
    title: str
    html: Markup


def render_section(template: str, **context: Any) -> Markup:
    """Render ``templates/<template>`` from this package with autoescaping."""
    source = resources.files("evstudy.report").joinpath("templates", template).read_text(encoding="utf-8")
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return Markup(env.from_string(source).render(**context))
