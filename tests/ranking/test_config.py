"""Configuration: env vars, flags and the ranking CLI's --help."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.ranking import server
from services.ranking.config import RankingSettings


def test_env_and_flags(monkeypatch):
    monkeypatch.setenv("HOMESEARCH_RANKING_BACKEND", "server")
    monkeypatch.setenv("HOMESEARCH_RANKING_QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("HOMESEARCH_RANKING_FUSION__TEXT_WEIGHT", "0.9")
    monkeypatch.setenv("HOMESEARCH_RANKING_RESULT_CACHE_TTL_S", "60")
    args = server.build_parser().parse_args(["--data-dir", "/tmp/x", "--listen", "0.0.0.0:1234"])
    s = server.settings_from_args(args)
    assert s.backend == "server" and s.qdrant_url == "http://qdrant:6333"
    assert s.fusion.text_weight == 0.9 and s.result_cache_ttl_s == 60
    assert s.data_dir == Path("/tmp/x") and s.listen == "0.0.0.0:1234"


def test_defaults():
    s = RankingSettings()
    assert s.listen == "127.0.0.1:50052" and s.backend == "edge" and s.data_dir == Path("var/index")


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        server.main(["--help"])
    assert e.value.code == 0
    assert "--data-dir" in capsys.readouterr().out
