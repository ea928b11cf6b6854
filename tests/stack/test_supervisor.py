"""The generic supervisor with real processes: a child that forks a grandchild (like the Triton
launcher -> tritonserver -> stubs), killed in every way; nothing may outlive its parent, the
restart budget is per window and the backoff grows."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from homesearch.ports import free_ports, port_free
from homesearch.stack.supervisor import (
    ProcessSpec,
    RestartBudget,
    RestartPolicy,
    Supervisor,
    SupervisorError,
    alive,
)

# A child that listens on PORT and forks a grandchild which escapes into its own session
# (as tritonserver's stubs may) and records its pid.
FAMILY = textwrap.dedent("""
    import os, socket, sys, time
    port, pidfile = int(sys.argv[1]), sys.argv[2]
    pid = os.fork()
    if pid == 0:
        os.setsid()
        open(pidfile, "w").write(str(os.getpid()))
        while True:
            time.sleep(1)
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen()
    while True:
        time.sleep(1)
""")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(pred, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _spec(tmp_path: Path, port: int, **kw) -> ProcessSpec:
    script = tmp_path / "family.py"
    script.write_text(FAMILY)
    return ProcessSpec(
        name="family", argv=[sys.executable, str(script), str(port), str(tmp_path / "grandchild.pid")],
        env=dict(os.environ), probe=lambda: _listening(port), log_path=tmp_path / "family.log", ports=[port],
        startup_timeout_s=20, stop_grace_s=2, **kw,
    )


def _grandchild(tmp_path: Path) -> int:
    f = tmp_path / "grandchild.pid"
    assert _wait(lambda: f.exists() and f.read_text().strip()), "grandchild never started"
    return int(f.read_text())


def test_sigkilled_child_is_restarted_and_its_escaped_grandchild_killed(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    sup = Supervisor(console=lambda line: None, poll_s=0.05)
    assert sup.subreaper
    child = sup.start(_spec(tmp_path, port, restart=RestartPolicy(initial_s=0.1)))
    first_pid, grandchild = child.pid, _grandchild(tmp_path)
    (tmp_path / "grandchild.pid").unlink()
    try:
        os.kill(first_pid, signal.SIGKILL)
        assert _wait(lambda: (sup.tick() or True) and child.pid != first_pid and child.running(), 15)
        assert not alive(grandchild), "the dead child's grandchild survived"
        assert _wait(lambda: (sup.tick() or True) and child.healthy_since is not None, 15)
        assert _listening(port)
    finally:
        sup.stop_all()
    assert not alive(child.pid) and not alive(_grandchild(tmp_path))
    assert _wait(lambda: port_free(port), 5)


def test_restart_budget_is_per_window_and_backoff_grows() -> None:
    now = [0.0]
    policy = RestartPolicy(initial_s=0.5, max_s=4, budget=2, window_s=10)
    budget = RestartBudget(policy, clock=lambda: now[0])
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    budget.spend(); budget.spend()
    assert not budget.allow()
    now[0] = 10.5  # both restarts aged out of the window: the budget is back
    assert budget.allow()


def test_child_that_keeps_crashing_is_left_down_after_its_budget(tmp_path: Path) -> None:
    lines: list[str] = []
    sup = Supervisor(console=lines.append, poll_s=0.02)
    marker = tmp_path / "started"
    # healthy at first (so startup succeeds), then exits 3 on every later start
    code = f"import pathlib,sys,time; p=pathlib.Path({str(marker)!r}); first=not p.exists(); p.touch(); time.sleep(0.5 if first else 0.05); sys.exit(3)"
    spec = ProcessSpec("crasher", [sys.executable, "-c", code], dict(os.environ), probe=lambda: True,
                       log_path=tmp_path / "c.log", restart=RestartPolicy(initial_s=0.05, budget=2, window_s=60))
    child = sup.start(spec)
    t0 = time.monotonic()
    assert _wait(lambda: (sup.tick() or True) and child.given_up, 20)
    sup.stop_all()
    assert child.budget.used == 2
    assert any("used its restart budget (2 in 60s); left down" in x for x in lines), lines
    assert time.monotonic() - t0 >= 0.05 + 0.1  # backed off: 0.05 s then 0.1 s


def test_supervisor_sigkilled_takes_its_children_with_it(tmp_path: Path) -> None:
    """`up` itself SIGKILLed: the parent-death signal stops every child and frees its port.
    (A child with children of its own, the Triton launcher, must then clean up after itself:
    it is a subreaper too; that is covered with the real launcher in the chaos suite.)"""
    port = free_ports(1)[0]
    script = tmp_path / "run_sup.py"
    child_code = ("import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                  f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)")
    script.write_text(textwrap.dedent(f"""
        import os, socket, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from homesearch.stack.supervisor import ProcessSpec, Supervisor
        def listening():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", {port})) == 0
        sup = Supervisor(console=lambda line: None, poll_s=0.05)
        child = sup.start(ProcessSpec("listener", [sys.executable, "-c", {child_code!r}], dict(os.environ), listening,
                                      Path({str(tmp_path / 'l.log')!r}), death_signal=9))
        print("READY", child.pid, flush=True)
        sup.supervise()
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout
        line = proc.stdout.readline()
        assert line.startswith("READY"), line
        child = int(line.split()[1])
        assert alive(child) and not port_free(port)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert _wait(lambda: not alive(child), 10), "child outlived the SIGKILLed supervisor"
        assert _wait(lambda: port_free(port), 10)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_startup_failure_names_the_part_and_its_log(tmp_path: Path) -> None:
    sup = Supervisor(console=lambda line: None)
    spec = ProcessSpec("broken", [sys.executable, "-c", "print('boom'); raise SystemExit(7)"], dict(os.environ),
                       probe=lambda: False, log_path=tmp_path / "broken.log")
    with pytest.raises(SupervisorError, match=r"broken exited with code 7 during startup; log: .*broken.log(.|\n)*boom"):
        sup.start(spec)
    sup.stop_all()


def test_request_stop_never_waits_for_the_console() -> None:
    """`up`'s signal handler calls `request_stop` on the main thread, which may be inside
    `console` holding its lock (a second SIGTERM arriving while the first one's line printed hung
    `up` for good): it must neither print nor take that lock, and the first reason wins."""
    lines: list[str] = []
    sup = Supervisor(console=lines.append)
    done = threading.Event()

    def signal_during_a_console_line() -> None:
        with sup._lock:  # the interrupted console() call holds it
            sup.request_stop("SIGTERM")
            sup.request_stop("SIGINT")
        done.set()

    threading.Thread(target=signal_during_a_console_line, daemon=True).start()
    assert done.wait(5), "request_stop blocked on the console lock"
    assert sup.stop_event.is_set() and sup.stop_reason == "SIGTERM" and lines == []
