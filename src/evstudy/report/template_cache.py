"""Jinja's compiled templates, kept between runs in the evstudy cache folder (``report-templates/``).

Compiling the report's templates costs ~0.08 CPU s a study and ~25 ms a scan.
Jinja checks each kept file against the template source's checksum and its own
and Python's versions; the key adds the environment's settings, which the
compiled code depends on, so a kept file is only used for the same source
compiled the same way. A file or folder that cannot be read or written only
means compiling as before. No pandas here: the whole-market scan uses it too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import jinja2
from jinja2 import Environment, FileSystemBytecodeCache
from jinja2.bccache import Bucket

from evstudy.prices.locations import default_cache_dir

TEMPLATE_CODE_DIR = "report-templates"


class CompiledTemplateCache(FileSystemBytecodeCache):
    """Jinja's FileSystemBytecodeCache keyed by the environment's settings, tolerant of damage."""

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


def compiled_template_cache(env: Environment) -> CompiledTemplateCache:
    """The cache for ``env`` (set it as ``env.bytecode_cache`` once its settings and filters are final)."""
    settings = repr((jinja2.__version__, env.autoescape, env.trim_blocks, env.lstrip_blocks, env.keep_trailing_newline,
                     env.newline_sequence, env.undefined.__name__, sorted(env.filters), sorted(env.tests)))
    return CompiledTemplateCache(default_cache_dir() / TEMPLATE_CODE_DIR, settings)
