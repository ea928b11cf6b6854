"""Admission control over a real gRPC server: bounded in-flight calls, fast refusals with
retry-after-ms, accepted calls unaffected."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc

from homesearch.rpc.admission import RETRY_AFTER_KEY, Admission, AdmissionInterceptor

METHOD = "/test.Slow/Call"


def _server(admission: Admission, work_s: float) -> tuple[grpc.Server, int]:
    def call(request: bytes, context) -> bytes:
        time.sleep(work_s)
        return request

    handler = grpc.method_handlers_generic_handler("test.Slow", {"Call": grpc.unary_unary_rpc_method_handler(call)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32),
                         interceptors=[AdmissionInterceptor(admission, [METHOD])])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_overload_is_refused_fast_with_retry_after_and_accepted_calls_keep_their_latency() -> None:
    adm = Admission(max_in_flight=2, queue_timeout_ms=40)
    server, port = _server(adm, work_s=0.1)
    results: list[tuple[str, float, str | None]] = []
    lock = threading.Lock()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary(METHOD)
            call(b"warm", timeout=5)  # the service-time estimate

            def one() -> None:
                t0 = time.perf_counter()
                try:
                    call(b"x", timeout=5)
                    out = ("ok", time.perf_counter() - t0, None)
                except grpc.RpcError as exc:
                    retry = dict(exc.trailing_metadata() or ()).get(RETRY_AFTER_KEY)
                    out = (exc.code().name, time.perf_counter() - t0, retry)
                with lock:
                    results.append(out)

            threads = [threading.Thread(target=one) for _ in range(12)]
            for t in threads:
                t.start()
                time.sleep(0.002)
            for t in threads:
                t.join()
    finally:
        server.stop(0)
    ok = [r for r in results if r[0] == "ok"]
    refused = [r for r in results if r[0] == "RESOURCE_EXHAUSTED"]
    assert len(ok) + len(refused) == 12 and 2 <= len(ok) <= 4 and refused
    assert max(r[1] for r in ok) < 0.1 + 0.04 + 0.1  # work + queue deadline + slack: no unbounded queue
    assert max(r[1] for r in refused) < 0.05  # refused at once, not after waiting
    assert all(r[2] and int(r[2]) >= 10 for r in refused)
    assert adm.refused == len(refused)


def test_a_free_slot_is_taken_without_waiting() -> None:
    adm = Admission(max_in_flight=1, queue_timeout_ms=0)
    assert adm.acquire()
    assert not adm.acquire()  # full, no queueing allowed
    adm.release(0.01)
    assert adm.acquire()
