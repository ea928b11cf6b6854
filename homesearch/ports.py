"""Ports, in one place: the one ``PortInUseError`` and the helpers that find free ports or check
that a port is free before something binds it.

Used by every gRPC service (``homesearch.rpc.server``), the Triton launcher, ``homesearch up`` and
the tests and benchmarks. A port in TIME-WAIT (left by a stopped server) counts as free, because
every server here binds with SO_REUSEADDR; a listener does not.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping


class PortInUseError(RuntimeError):
    """A listen address could not be bound, or a port to be used is taken; the message names it."""


def port_free(port: int, host: str = "0.0.0.0") -> bool:
    """True when nothing listens on ``port``. The default wildcard host fails when any interface
    already has the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free on ``host`` right now (all held open together while picking)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    """One port free on ``host`` right now."""
    return free_ports(1, host)[0]


def check_ports_free(ports: Mapping[str, int], host: str = "0.0.0.0", hint: str = "") -> None:
    """Raises PortInUseError naming every taken port of ``{what: port}`` (0 = pick later, skipped)."""
    taken = [f"port {port} ({what}) is already in use" for what, port in ports.items() if port and not port_free(port, host)]
    if taken:
        raise PortInUseError("cannot start: " + ", ".join(taken) + (f".\n{hint}" if hint else ""))
