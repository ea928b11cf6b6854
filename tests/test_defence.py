"""Defence in depth, against the real stack (``homesearch up`` on free ports: real tritonserver,
Valkey, ranking, gateway): internal RPCs refuse anonymous, forged and wrong-scope calls; a
poisoned Redis entry is never served; Triton's admin API is closed; and a bounded chaos run
SIGKILLs each part under load and checks for orphans, port ownership and recovery.

Bounded: one stack for the module, ~40 products, five kills with a 120 s recovery cap each
(about 2.5 minutes in all on 2 cores, most of it Triton's two restarts)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest
import redis

from bench.chaos import SearchLoad, kill_and_recover, orphans, port_owners_ok
from homesearch.client import HomesearchClient
from homesearch.stack import PORT_FLAGS, free_ports
from homesearch.ports import port_free
from homesearch.stack.supervisor import alive, descendants
from homesearch.v1 import ranking_pb2, ranking_pb2_grpc, search_pb2
from tests.test_stack import DEMO, Up

N_PRODUCTS = 40


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("defence")
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS))))
    lines = []
    for line in (DEMO / "catalog.jsonl").read_text().splitlines()[:N_PRODUCTS]:
        p = json.loads(line)
        p["image"] = str(DEMO / p["image"])
        lines.append(json.dumps(p, ensure_ascii=False))
    catalog = tmp / "catalog.jsonl"
    catalog.write_text("\n".join(lines) + "\n")
    data = tmp / "var"
    # The gateway serves TLS: `up`'s health probe must follow it (it used to probe plaintext).
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    args = [x for flag, port in ports.items() for x in (flag, str(port))]
    up = Up(["--data-dir", str(data), *args, "--index", str(catalog), "--skip-prepare", "--startup-timeout", "300",
             "--stop-grace", "10", "--restart-backoff", "0.2", "--tls-cert", str(cert), "--tls-key", str(key)])
    try:
        up.wait_for("serving; Ctrl-C to stop", timeout_s=600)
        secrets = data / "secrets"
        yield {
            "up": up, "data": data, "ports": ports, "catalog": catalog,
            "gateway": f"127.0.0.1:{ports['--gateway-port']}", "ranking": f"127.0.0.1:{ports['--ranking-port']}",
            "api_key": (data / "api_key").read_text().strip(),
            "read": (secrets / "gateway_token").read_text().strip(),
            "write": (secrets / "ingest_token").read_text().strip(),
            "redis_url": (secrets / "redis_url").read_text().strip(),
            "ca": cert.read_bytes(),
        }
    finally:
        pids = {up.proc.pid} | descendants(up.proc.pid)
        up.kill()
        deadline = time.monotonic() + 15
        while {p for p in pids if alive(p)} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not {p for p in pids if alive(p)}, "processes left after up stopped"
        assert all(port_free(p) for p in ports.values() if p), "ports still held after up stopped"


def _client(stack, timeout_s: float = 30, api_key: str | None = "") -> HomesearchClient:
    return HomesearchClient(stack["gateway"], api_key=stack["api_key"] if api_key == "" else api_key,
                            timeout_s=timeout_s, tls=True, root_certificates=stack["ca"])


def _md(token: str | None) -> tuple:
    return (("authorization", f"Bearer {token}"),) if token else ()


def _calls(stub_rank, stub_cat):
    """Every internal RPC, as (name, scope it needs, call(metadata))."""
    return [
        ("Rank", "read", lambda md: stub_rank.Rank(search_pb2.SearchRequest(text="sofa"), metadata=md, timeout=30)),
        ("IndexInfo", "read", lambda md: stub_rank.IndexInfo(ranking_pb2.IndexInfoRequest(), metadata=md, timeout=30)),
        ("Upsert", "write", lambda md: stub_cat.Upsert(iter([ranking_pb2.UpsertRequest(product=ranking_pb2.Product(
            id="injected-1", title="INJECTED product"))]), metadata=md, timeout=60)),
        ("Delete", "write", lambda md: stub_cat.Delete(ranking_pb2.DeleteRequest(product_ids=["injected-1"]),
                                                       metadata=md, timeout=30)),
    ]


def test_every_internal_rpc_refuses_anonymous_forged_and_wrong_scope_calls(stack) -> None:
    with grpc.insecure_channel(stack["ranking"]) as ch:
        rank, cat = ranking_pb2_grpc.RankingServiceStub(ch), ranking_pb2_grpc.CatalogServiceStub(ch)
        forged = "hsw_" + uuid.uuid4().hex * 2
        for name, scope, call in _calls(rank, cat):
            other = stack["write"] if scope == "read" else stack["read"]
            for label, md, want in (("anonymous", (), grpc.StatusCode.UNAUTHENTICATED),
                                    ("forged", _md(forged), grpc.StatusCode.UNAUTHENTICATED),
                                    ("basic-auth", (("authorization", "Basic " + stack["write"]),),
                                     grpc.StatusCode.UNAUTHENTICATED),
                                    ("wrong scope", _md(other), grpc.StatusCode.PERMISSION_DENIED)):
                with pytest.raises(grpc.RpcError) as err:
                    call(md)
                assert err.value.code() == want, (name, label, err.value.details())
            call(_md(stack[scope]))  # the right credential works
    # the injected product never reached shoppers (the Delete above also removed it, but the
    # refused Upserts must not have written it in the first place: nothing was ever indexed)
    with _client(stack) as c:
        assert "injected-1" not in c.search("INJECTED product", top_k=10, no_cache=True).product_ids


def test_console_reaches_a_tls_gateway(stack) -> None:
    """`up` hands the console the CA its probe trusts: the console's searches and health go over
    TLS (it used to dial the TLS gateway in plaintext and answer every search with a 502)."""
    import httpx

    console = f"http://127.0.0.1:{stack['ports']['--console-port']}"
    assert httpx.get(console + "/healthz", timeout=10).json()["gateway"] == "serving"
    r = httpx.post(console + "/api/search", json={"text": "sofa"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["response"]["hits"]


def test_triton_refuses_admin_api_calls(stack) -> None:
    http = stack["ports"]["--triton-http-port"]
    req = urllib.request.Request(f"http://127.0.0.1:{http}/v2/logging", data=b'{"log_verbose_level": 3}',
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert "restricted" in err.value.read().decode()
    req = urllib.request.Request(f"http://127.0.0.1:{http}/v2/repository/models/text_encoder/unload", data=b"{}",
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(req, timeout=5)
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=5) as ok:
        assert ok.status == 200  # health stays open for probes


def test_valkey_needs_the_password_and_allows_only_the_cache_commands(stack) -> None:
    port = stack["ports"]["--valkey-port"]
    with pytest.raises(redis.RedisError):
        redis.Redis(port=port, socket_timeout=2).ping()
    r = redis.Redis.from_url(stack["redis_url"], socket_timeout=2)
    assert r.ping()
    for cmd in (("FLUSHALL",), ("KEYS", "*"), ("CONFIG", "SET", "save", "60"), ("SET", "not-hs:x", "1")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            r.execute_command(*cmd)


def _scrape(port: int, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def test_poisoned_result_cache_entry_is_never_served(stack) -> None:
    """An attacker with the Redis password (but not the ranking's HMAC key) overwrites the
    cached result of a real query with a forged response naming an injected product. Probed
    at ranking itself (its signed cache: rejected, ranked afresh) and through the gateway
    (which answers repeats from its own signed entries: tests/gateway/test_result_cache.py)."""
    from services.ranking.service import canonical_request

    text = "white bookcase"
    with _client(stack) as c, grpc.insecure_channel(stack["ranking"]) as ch:
        rank = ranking_pb2_grpc.RankingServiceStub(ch)
        genuine = c.search(text, top_k=5)
        assert c.search(text, top_k=5).cache_hit
        info = rank.IndexInfo(ranking_pb2.IndexInfoRequest(), metadata=_md(stack["read"]), timeout=10)
        import hashlib

        key = (f"hs:res:products:g{info.index_generation}:"
               f"{hashlib.sha256(canonical_request(search_pb2.SearchRequest(text=text, top_k=5))).hexdigest()}")
        r = redis.Redis.from_url(stack["redis_url"])
        assert r.get(key), "the test computes the wrong cache key"
        forged = search_pb2.SearchResponse(hits=[search_pb2.Hit(product_id="EVIL-1", title="Buy here", score=9)])
        before = _scrape(stack["ports"]["--ranking-metrics-port"], "homesearch_cache_rejected_total")
        for value in (forged.SerializeToString(),  # unsigned
                      b"h1" + b"\0" * 40 + forged.SerializeToString(),  # "signed" without the key
                      r.get(key)[:-3] + b"xyz"):  # a genuine entry, corrupted
            r.set(key, value, ex=300)
            direct = rank.Rank(search_pb2.SearchRequest(text=text, top_k=5), metadata=_md(stack["read"]), timeout=30)
            assert "EVIL-1" not in [h.product_id for h in direct.hits] and not direct.cache_hit
            assert [h.product_id for h in direct.hits] == genuine.product_ids
            r.set(key, value, ex=300)
            got = c.search(text, top_k=5)
            assert "EVIL-1" not in got.product_ids
            assert got.product_ids == genuine.product_ids
        after = _scrape(stack["ports"]["--ranking-metrics-port"], "homesearch_cache_rejected_total")
        assert after - before >= 3


CHAOS_TARGETS = ["tritonserver", "launcher", "valkey", "ranking", "gateway"]


def test_chaos_sigkill_each_part_under_load(stack) -> None:
    """Bounded: 5 kills, each with a 120 s recovery cap; load is 8 searches/s of unique texts."""
    up_pid = stack["up"].proc.pid
    ports = [p for p in stack["ports"].values() if p]
    client = _client(stack, timeout_s=10)

    def full_search() -> bool:
        try:
            res = client.search(f"sofa {uuid.uuid4().hex[:8]}", top_k=3)
            return bool(res.hits) and res.degraded is None
        except Exception:  # noqa: BLE001 - not yet
            return False

    assert orphans(up_pid, str(stack["data"])) == []
    assert port_owners_ok(up_pid, ports) == []
    load = SearchLoad(lambda q: client.search(q, top_k=5), rps=8).start()
    outcomes = []
    try:
        for target in CHAOS_TARGETS:
            outcomes.append(kill_and_recover(target=target, up_pid=up_pid, data_dir=stack["data"], ports=ports,
                                             load=load, healthy=client.health, full_search=full_search))
    finally:
        load.stop()
        client.close()
    rows = {o.target: o for o in outcomes}
    report = "\n".join(json.dumps(o.row()) for o in outcomes)
    for o in outcomes:
        assert o.recovered_search, f"{o.target}: search did not recover\n{report}\n{stack['up'].output()[-3000:]}"
        assert o.orphans == [], f"{o.target}: orphans {o.orphans}"
        assert o.port_problems == [], f"{o.target}: {o.port_problems}"
    # With tritonserver (or its launcher) down, text queries are answered from BM25 and
    # marked degraded; none fails.
    for t in ("tritonserver", "launcher"):
        d = rows[t].during
        assert d.error_count == 0, f"{t}: {d.errors}\n{report}"
        assert d.degraded > 0 and d.degraded_missing >= {"text"}, report
    # Valkey is an optimisation: its death costs no search.
    assert rows["valkey"].during.error_count == 0, report
    print("\n" + report)


def test_metrics_listen_on_loopback_only(stack) -> None:
    """Item 8: /metrics of ranking and gateway bind 127.0.0.1 (not 0.0.0.0)."""
    want = {stack["ports"]["--ranking-metrics-port"], stack["ports"]["--gateway-metrics-port"]}
    seen = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        addr, port = f[1].split(":")
        if f[3] == "0A" and int(port, 16) in want:
            seen[int(port, 16)] = addr
    assert seen == {p: "0100007F" for p in want}, seen


def test_api_key_printed_once_and_masked_in_the_banner(stack) -> None:
    """Item 11: the generated key appears once in full (when generated), masked in the banner."""
    out = stack["up"].output()
    key = stack["api_key"]
    assert out.count(key) == 1, "the API key must be printed in full exactly once"
    banner = out[out.index("homesearch is serving"):]
    assert key not in banner and f"{key[:5]}…{key[-2:]}" in banner
    for name in ("gateway_token", "ingest_token", "valkey_password", "cache_hmac_key"):
        assert (stack["data"] / "secrets" / name).read_text().strip() not in out, name
        assert oct((stack["data"] / "secrets" / name).stat().st_mode & 0o777) == "0o600"


def test_long_chinese_query_within_the_limit_is_answered(stack) -> None:
    """Item 9: 1,000 Chinese characters (the documented limit) grow past the encoder's limit once
    translated; the search must still be answered, not rejected."""
    text = ("白色书柜和灰色沙发" * 120)[:1000]
    with _client(stack) as c:
        res = c.search(text, top_k=3, no_cache=True)
    assert res.hits and res.degraded is None


def test_invalid_key_attempts_are_throttled(stack) -> None:
    """Item 11: after a burst of invalid keys from one address, that address is refused with
    RESOURCE_EXHAUSTED + retry-after-ms before any key is checked (also a right one); it
    recovers as the bucket refills. Runs last: it blocks 127.0.0.1 for a few seconds."""
    from homesearch.client import HomesearchError

    codes = []
    with _client(stack, api_key="hs_not-a-real-key-000") as bad:
        for _ in range(14):
            try:
                bad.search("sofa")
            except HomesearchError as exc:
                codes.append(exc.code)
    assert codes[:10] == [grpc.StatusCode.UNAUTHENTICATED] * 10
    assert set(codes[10:]) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    with _client(stack) as good:
        with pytest.raises(HomesearchError) as err:
            good.search("sofa")
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "invalid API key attempts" in err.value.message
        time.sleep(1.5)  # one failure refilled: the right key works again
        assert good.search("sofa").hits
