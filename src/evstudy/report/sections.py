"""Extra report sections (tests, event catalogue, basket comparison, drift): their container and template loader.

Each section renders its own Jinja template with the same settings as the main
report (autoescape on, strict undefined, the shared formats as filters), so
every user-supplied string is escaped; its charts use the main report's
``data-chart`` JSON convention and are drawn by the main page's script.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jinja2 import Environment, FunctionLoader, StrictUndefined, Template
from markupsafe import Markup

from evstudy.report.format import plural
from evstudy.report.template_cache import compiled_template_cache

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


def _template_source(name: str) -> str:
    return resources.files("evstudy.report").joinpath("templates", name).read_text(encoding="utf-8")


@functools.cache
def _report_environment() -> Environment:
    """:func:`jinja_environment` loading this package's templates, their compiled code kept between runs."""
    env = jinja_environment()
    env.loader = FunctionLoader(_template_source)
    env.bytecode_cache = compiled_template_cache(env)
    return env


def report_template(name: str) -> Template:
    """``templates/<name>`` from this package, with the report's Jinja settings (autoescaping)."""
    return _report_environment().get_template(name)


def render_section(template: str, **context: Any) -> Markup:
    """Render ``templates/<template>`` from this package with autoescaping."""
    return Markup(report_template(template).render(**context))
