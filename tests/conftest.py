"""Registers every fixture module under tests/fixtures as a pytest plugin.

Fixtures that start real servers (tritonserver, Valkey, the ranking service,
the gateway) are session-scoped and shared across suites, so each starts once.
"""

from __future__ import annotations

from pathlib import Path

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}" for p in (Path(__file__).parent / "fixtures").glob("*.py") if p.stem != "__init__"
)
