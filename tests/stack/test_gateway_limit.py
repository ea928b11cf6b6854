"""``homesearch up`` must not give the gateway ranking's slot count as its limit: ranking's slots are
for cache misses only, and a gateway limit that small would make cache hits queue behind (and be
refused because of) misses at the edge."""

from __future__ import annotations

from pathlib import Path

from homesearch.stack import PORT_FLAGS
from homesearch.stack.parts import StackConfig, stack_parts
from homesearch.stack.secrets import StackSecrets
from services.ranking.config import RankingSettings


def test_gateway_admits_room_for_hits_beside_rankings_slots(tmp_path: Path) -> None:
    cfg = StackConfig(data_dir=tmp_path, host="127.0.0.1", ports={f.lstrip("-"): 0 for f in PORT_FLAGS},
                      secrets=StackSecrets.load_or_create(tmp_path), api_key=None, base_env={})
    gateway = next(p for p in stack_parts(cfg) if p.name == "gateway")
    limit = int(gateway.env["HOMESEARCH_GATEWAY_MAX_IN_FLIGHT"])
    ranking = RankingSettings()  # what `up` reads (this process's environment)
    assert limit > ranking.max_in_flight  # hits get in beside the one running miss
    assert limit <= ranking.call_capacity() - 2  # ranking's own pool (no retry-after-ms) never fills
