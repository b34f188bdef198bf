"""Shared fixtures: one real embedded Ray for the whole test session (starting Ray costs seconds)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import sweeper  # noqa: F401  (sets Ray Tune's environment defaults before Ray is imported)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray with 2 CPUs, shared by every test that runs a study."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the project, or a clean skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
