"""Health probes the stack's parts declare (each returns quickly, True = healthy)."""

from __future__ import annotations

from pathlib import Path


def grpc_serving(addr: str, *, tls_ca: str = "", server_name: str = "", service: str = "") -> bool:
    """``grpc.health.v1`` reports SERVING; over TLS when ``tls_ca`` is given (so a TLS
    gateway is probed the way its clients reach it)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from homesearch.rpc.service_auth import ChannelSecurity

    try:
        with ChannelSecurity(ca=tls_ca, server_name=server_name).channel(addr) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def triton_ready(url: str) -> bool:
    import tritonclient.grpc as tgrpc

    client = tgrpc.InferenceServerClient(url)
    try:
        return bool(client.is_server_ready(client_timeout=1.0))
    finally:
        client.close()


def redis_ready(url_or_file: str) -> bool:
    """PING with the credentials in the URL (or in the file holding it)."""
    import redis

    url = Path(url_or_file).read_text().strip() if not url_or_file.startswith(("redis://", "rediss://", "unix://")) else url_or_file
    r = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        return bool(r.ping())
    finally:
        r.close()


def http_ok(url: str) -> bool:
    """An HTTP GET answers 2xx (for HTTP children, e.g. a web console's /healthz)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=1.0) as resp:
        return 200 <= resp.status < 300
