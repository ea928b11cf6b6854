"""Exit 0 when a gRPC service reports SERVING (``grpc.health.v1``), else 1.

Used as the container healthcheck (docker-compose) so images need no extra
probe binary: ``python -m homesearch.rpc.healthcheck HOST:PORT [SERVICE]``.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str = "", timeout_s: float = 3.0) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m homesearch.rpc.healthcheck HOST:PORT [SERVICE]")
        return 0 if args else 2
    ok = check(args[0], args[1] if len(args) > 1 else "")
    print("SERVING" if ok else "NOT_SERVING")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
