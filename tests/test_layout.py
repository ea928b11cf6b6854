"""The layout rules of issue 15, kept true: import paths are folder paths, no import cycles,
and services/encoders holds only job folders plus its public interface."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("homesearch", "services", "gateway", "bench", "console")


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for root in PACKAGES:
        for f in (REPO / root).rglob("*.py"):
            rel = f.relative_to(REPO)
            if "model_repository" in rel.parts:  # Triton loads these by path, not by import
                continue
            name = ".".join(rel.with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = f
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Project modules ``name`` imports anywhere in its file (function-level imports too)."""
    found: set[str] = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_pkg else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def test_no_package_dir_mapping() -> None:
    assert "package-dir" not in (REPO / "pyproject.toml").read_text()


@pytest.mark.parametrize("name", ["homesearch.client", "services.ranking.fusion", "services.encoders.client",
                                  "gateway.server", "bench.harness"])
def test_import_name_is_folder_path(name: str) -> None:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).resolve() == (REPO / (name.replace(".", "/") + ".py")).resolve()


def test_no_import_cycles() -> None:
    mods = _modules()
    graph = {m: _imports(m, f, mods) for m, f in mods.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_encoders_files_sit_in_job_folders() -> None:
    enc = REPO / "services" / "encoders"
    loose = sorted(p.name for p in enc.iterdir() if p.is_file() and p.suffix == ".py")
    assert loose == ["__init__.py", "client.py"], loose
