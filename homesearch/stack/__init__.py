"""``homesearch up``: the whole stack on one machine (see :mod:`homesearch.stack.cli`).

- :mod:`.supervisor` generic process supervision (knows nothing about homesearch);
- :mod:`.parts` the declarative list of the stack's parts;
- :mod:`.secrets` generated credentials; :mod:`.probes` health probes;
- :mod:`.cli` the ``up`` command.

Importing this package stays cheap (no grpc): the launcher uses the supervisor's primitives.
"""

from __future__ import annotations

import socket

from homesearch.stack.parts import PORT_FLAGS, PORTS


class StackError(RuntimeError):
    """A part of the stack failed to start; the message names it."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now (for tests and benchmarks)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def check_ports_free(ports: dict[str, int]) -> None:
    """Raises StackError naming every taken port, before anything starts. Binds the wildcard
    address, which fails when any interface already has the port."""
    from homesearch.stack.supervisor import port_free

    taken = [f"port {port} ({what}) is already in use" for what, port in ports.items() if port and not port_free(port)]
    if taken:
        raise StackError(
            "cannot start: " + ", ".join(taken)
            + ".\nStop whatever holds it (an earlier 'homesearch up'?) or choose other ports with the flags "
            "shown in 'homesearch up --help'."
        )


def main(argv: list[str] | None = None) -> int:
    from homesearch.stack.cli import main as _main

    return _main(argv)


__all__ = ["PORTS", "PORT_FLAGS", "StackError", "check_ports_free", "free_ports", "main"]
