"""``homesearch bench`` argument handling (no suite is run)."""

from __future__ import annotations

import pytest

from bench import cli as bench_cli


def test_help_lists_suites_and_flags(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("--quick", "--json", "--markdown", "ingest", "search", "scale", "encoders"):
        assert word in out


def test_unknown_suite_is_rejected(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_cli.main(["nosuch"])
    assert exc.value.code == 2
    assert "unknown suite" in capsys.readouterr().err


def test_running_stack_needs_all_addresses(capsys) -> None:
    assert bench_cli.main(["search", "--gateway", "127.0.0.1:1"]) == 2
    assert "--ranking and --triton" in capsys.readouterr().err
