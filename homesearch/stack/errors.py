"""How ``homesearch up`` fails before or while starting: one error type, and the port check that
runs before anything starts."""

from __future__ import annotations

from homesearch.ports import PortInUseError
from homesearch.ports import check_ports_free as _check_ports_free


class StackError(RuntimeError):
    """A part of the stack failed to start; the message names it."""


def check_ports_free(ports: dict[str, int]) -> None:
    """Raises StackError naming every taken port, before anything starts."""
    try:
        _check_ports_free(ports, hint="Stop whatever holds it (an earlier 'homesearch up'?) or choose other ports "
                                      "with the flags shown in 'homesearch up --help'.")
    except PortInUseError as exc:
        raise StackError(str(exc)) from None
