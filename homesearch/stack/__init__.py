"""``homesearch up``: the whole stack on one machine (see :mod:`homesearch.stack.cli`).

- :mod:`.supervisor` generic process supervision (knows nothing about homesearch);
- :mod:`.parts` the declarative list of the stack's parts;
- :mod:`.secrets` generated credentials; :mod:`.probes` health probes;
- :mod:`.cli` the ``up`` command.

Importing this package stays cheap (no grpc): the launcher uses the supervisor's primitives.
"""

from __future__ import annotations

from homesearch.ports import free_ports
from homesearch.stack.errors import StackError, check_ports_free
from homesearch.stack.parts import PORT_FLAGS, PORTS


def main(argv: list[str] | None = None) -> int:
    from homesearch.stack.cli import main as _main

    return _main(argv)


__all__ = ["PORTS", "PORT_FLAGS", "StackError", "check_ports_free", "free_ports", "main"]
