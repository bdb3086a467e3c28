"""Shared fixtures: where the real data lives, and small synthetic markets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]

# Hypothesis: "ci" (the default) is bounded and deterministic, so CI time and results do not vary;
# HYPOTHESIS_PROFILE=dev explores more, with fresh random examples each run.
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _shared_data_dir() -> Path | None:
    env = os.environ.get("EVSTUDY_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for candidate in candidates:
        if (candidate / "us_equities_daily_2021_2026.parquet").is_file():
            return candidate
    return None


SHARED_DATA = _shared_data_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder; skipped (with the reason) where it is absent, never in CI."""
    if SHARED_DATA is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have ../shared/data (or $EVSTUDY_SHARED_DATA) with the market Parquet")
        pytest.skip("real data not found at ../shared/data or $EVSTUDY_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def market_parquet(shared_data: Path) -> Path:
    return shared_data / "us_equities_daily_2021_2026.parquet"


@pytest.fixture(scope="session")
def coverage_dir(shared_data: Path) -> Path:
    return shared_data / "coverage"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """No test ever reads or writes the user's real cache."""
    monkeypatch.setenv("EVSTUDY_CACHE", str(tmp_path_factory.mktemp("cache")))
