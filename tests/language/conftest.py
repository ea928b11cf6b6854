"""Shared fixtures for the text-analysis tests (fast: no models, no services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.language_measure import REPO, _default_shared, read_jsonl


@pytest.fixture(scope="session")
def shared_catalog() -> list[dict]:
    path = _default_shared() / "data/ikea/catalog.jsonl"
    if not path.exists():
        pytest.skip(f"shared IKEA catalog not found at {path}")
    return read_jsonl(path)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
