"""Extra report sections (tests, event catalogue, basket comparison, drift): their container and template loader.

Each section renders its own Jinja template with the same settings as the main
report (autoescape on, strict undefined, the shared formats as filters), so
every user-supplied string is escaped; its charts use the main report's
``data-chart`` JSON convention and are drawn by the main page's script.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import Environment, FileSystemBytecodeCache, FunctionLoader, StrictUndefined, Template
from jinja2.bccache import Bucket
from markupsafe import Markup

from evstudy.report.format import plural

TEMPLATE_CODE_DIR = "report-templates"
"""Compiled report templates, kept in the evstudy cache folder (:class:`_TemplateCodeCache`)."""


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


class _TemplateCodeCache(FileSystemBytecodeCache):
    """Jinja's compiled-template cache in the evstudy cache folder, keyed by the environment's settings.

    Compiling the report's templates costs ~0.08 CPU s a process. Jinja checks
    each kept file against the template source's checksum and its own and
    Python's versions; the key adds the settings the compiled code depends on,
    so a kept file is only ever used for the same source compiled the same way.
    A file that cannot be read or written is ignored: the template is compiled.
    """

    def __init__(self, directory: Path, settings: str):
        super().__init__(str(directory))
        self.settings = settings

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        return hashlib.sha256(f"{self.settings}\0{name}".encode()).hexdigest()

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # noqa: BLE001 - any damage to a kept file: compile instead
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            pass


@functools.cache
def _report_environment() -> Environment:
    """:func:`jinja_environment` loading this package's templates, their compiled code kept between runs."""
    from evstudy.prices.cache import default_cache_dir

    env = jinja_environment()
    env.loader = FunctionLoader(_template_source)
    settings = repr((jinja2.__version__, env.autoescape, env.trim_blocks, env.lstrip_blocks, env.keep_trailing_newline,
                     env.newline_sequence, env.undefined.__name__, sorted(env.filters), sorted(env.tests)))
    env.bytecode_cache = _TemplateCodeCache(default_cache_dir() / TEMPLATE_CODE_DIR, settings)
    return env


def report_template(name: str) -> Template:
    """``templates/<name>`` from this package, with the report's Jinja settings (autoescaping)."""
    return _report_environment().get_template(name)


def render_section(template: str, **context: Any) -> Markup:
    """Render ``templates/<template>`` from this package with autoescaping."""
    return Markup(report_template(template).render(**context))
