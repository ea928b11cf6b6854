"""Process supervision that knows nothing about homesearch.

A :class:`Supervisor` starts :class:`ProcessSpec` children in order (each must pass its
health probe before the next starts), restarts one that dies with exponential backoff
under a per-time-window restart budget, and stops them all in reverse order.

Why each mechanism exists (a SIGKILL anywhere must never leave a process behind):

- every child runs in its own process group (``start_new_session``) so stopping it
  signals the whole group, grandchildren included;
- every child gets ``PR_SET_PDEATHSIG``: if the supervisor itself is SIGKILLed the
  kernel signals the child. The signal fires when the *thread* that forked the child
  exits, so children are only ever started from the supervisor's main loop thread;
- the supervisor is a child *subreaper* (``PR_SET_CHILD_SUBREAPER``): a grandchild whose
  parent dies (tritonserver's python stubs when tritonserver is SIGKILLed) is re-parented
  to the supervisor instead of init, and :meth:`Supervisor.sweep_strays` kills every
  re-parented process the supervisor did not start itself;
- after a child dies, its whole process group is SIGKILLed before the restart, and the
  restart waits until the child's ports are free again, so a relaunch never races the
  remains of the old one.

The primitives (:func:`set_death_signal`, :func:`become_subreaper`, :func:`kill_strays`,
:func:`kill_group`) are public so a launcher that itself runs a child (e.g. a server
binary with helper processes) applies the same rules one level down.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from homesearch.ports import port_free

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, arg: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, arg, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def set_death_signal(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the kernel send ``sig`` to the child when its parent
    thread dies, and exits the child at once if the parent is already gone."""
    parent = os.getpid()

    def preexec() -> None:
        _prctl(_PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to this process (Linux >= 3.4); False elsewhere."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, pgid, state) from /proc."""
    table: dict[int, tuple[int, int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        rest = stat.rsplit(")", 1)[1].split()
        table[int(entry.name)] = (int(rest[1]), int(rest[2]), rest[0])
    return table


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    info = _proc_table().get(pid) if os.path.exists(f"/proc/{pid}") else None
    return info is not None and info[2] != "Z"


def descendants(pid: int) -> set[int]:
    """Every living descendant of ``pid`` (zombies excluded)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for p, (ppid, _pgid, state) in table.items():
        if state != "Z":
            children.setdefault(ppid, []).append(p)
    out: set[int] = set()
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signals a process group; a group that is already gone is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_strays(keep: Callable[[int], bool] = lambda pid: False) -> list[int]:
    """SIGKILLs (and reaps) every child of this process, and their descendants, for which
    ``keep(pid)`` is false. With :func:`become_subreaper` this catches grandchildren whose
    own parent died. Returns the pids killed."""
    me = os.getpid()
    table = _proc_table()
    strays = [p for p, (ppid, _g, state) in table.items() if ppid == me and not keep(p)]
    killed: list[int] = []
    for pid in strays:
        victims = [pid, *descendants(pid)]
        for v in victims:
            try:
                os.kill(v, signal.SIGKILL)
                killed.append(v)
            except (ProcessLookupError, PermissionError):
                pass
    for pid in strays:  # reap them (only these pids: subprocess owns the others' exit status)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return killed


# --------------------------------------------------------------------------- policy


@dataclass
class RestartPolicy:
    """Exponential backoff (``initial_s`` doubling up to ``max_s``) and a budget of at most
    ``budget`` restarts within any ``window_s``; a child healthy for ``stable_s`` starts
    again from ``initial_s``. Budget spent = the child is left down (and reported)."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    budget: int = 5
    window_s: float = 300.0
    stable_s: float = 60.0

    def delay(self, consecutive: int) -> float:
        return min(self.max_s, self.initial_s * self.factor ** max(0, consecutive - 1))


class RestartBudget:
    """Restart timestamps within the sliding window (the budget resets as they age out)."""

    def __init__(self, policy: RestartPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._times: deque[float] = deque()

    def _trim(self) -> None:
        now = self._clock()
        while self._times and now - self._times[0] > self.policy.window_s:
            self._times.popleft()

    def allow(self) -> bool:
        self._trim()
        return len(self._times) < self.policy.budget

    def spend(self) -> None:
        self._times.append(self._clock())

    @property
    def used(self) -> int:
        self._trim()
        return len(self._times)


# --------------------------------------------------------------------------- children


@dataclass
class ProcessSpec:
    """One supervised program. ``probe`` answers "healthy?" quickly (it is called about
    twice a second during startup); ``ports`` must be free before (re)starting it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    probe: Callable[[], bool]
    log_path: Path
    ports: Sequence[int] = ()
    startup_timeout_s: float = 300.0
    stop_grace_s: float = 10.0
    death_signal: int = signal.SIGTERM  # lets the child stop its own children cleanly
    restart: RestartPolicy = field(default_factory=RestartPolicy)


class Child:
    """A running (or dead) instance of a ProcessSpec, with its output pumped to a log file
    and, line-prefixed, to the console."""

    def __init__(self, spec: ProcessSpec, console: Callable[[str], None]) -> None:
        self.spec = spec
        self._console = console
        self.proc: subprocess.Popen[bytes] | None = None
        self.tail: deque[str] = deque(maxlen=30)
        self._pump: threading.Thread | None = None
        self.started_at = 0.0
        self.healthy_since: float | None = None
        self.consecutive_failures = 0
        self.budget = RestartBudget(spec.restart)
        self.next_start_at: float | None = None
        self.given_up = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.spec.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.spec.argv,
            env=self.spec.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=set_death_signal(self.spec.death_signal),
        )
        self.started_at = time.monotonic()
        self.healthy_since = None
        self._pump = threading.Thread(target=self._pump_output, args=(log_file,), daemon=True)
        self._pump.start()

    def _pump_output(self, log_file) -> None:
        assert self.proc and self.proc.stdout
        with log_file:
            for raw in self.proc.stdout:
                log_file.write(raw)
                log_file.flush()
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.tail.append(line)
                self._console(f"[{self.name}] {line}")

    def reap(self) -> None:
        """After the child exited: SIGKILL whatever is left of its process group."""
        if self.proc is None:
            return
        kill_group(self.proc.pid)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if self._pump:
            self._pump.join(2)

    def stop(self) -> None:
        """SIGTERM the group, wait ``stop_grace_s``, then SIGKILL the group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            kill_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(self.spec.stop_grace_s)
            except subprocess.TimeoutExpired:
                self._console(f"[up] {self.name} did not stop within {self.spec.stop_grace_s:g}s: SIGKILL")
        self.reap()

    def last_lines(self, n: int = 12) -> str:
        return "\n".join(f"    {line}" for line in list(self.tail)[-n:])


class SupervisorError(RuntimeError):
    """A child failed to start; the message names it and its log."""


class Supervisor:
    """Starts specs in order, keeps them running, stops them in reverse order."""

    def __init__(self, console: Callable[[str], None] | None = None, poll_s: float = 0.25) -> None:
        self._lock = threading.Lock()
        self._console_fn = console or self._print
        self.children: list[Child] = []
        self.stop_event = threading.Event()
        self.stop_reason: str | None = None  # what asked for the stop first (request_stop)
        self.poll_s = poll_s
        self._one_offs: set[int] = set()
        self.subreaper = become_subreaper()
        self.on_change: Callable[[], None] = lambda: None

    @staticmethod
    def _print(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def console(self, line: str) -> None:
        with self._lock:
            self._console_fn(line)

    def say(self, msg: str) -> None:
        self.console(f"[up] {msg}")

    def request_stop(self, reason: str) -> None:
        """Asks ``supervise`` to return; for signal handlers, so it prints nothing and takes no
        console lock. A handler runs on the main thread, which may be inside ``console`` holding
        that lock: a handler that printed deadlocked ``up`` when a second signal came during the
        first one's line. The caller prints ``stop_reason`` later, outside the handler."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop_event.set()

    # -- ownership
    def _owned(self, pid: int) -> bool:
        return pid in self._one_offs or any(c.pid == pid and c.running() for c in self.children)

    def sweep_strays(self) -> list[int]:
        killed = kill_strays(self._owned)
        if killed:
            self.say(f"killed {len(killed)} orphaned process(es) left by a dead child: {sorted(killed)}")
        return killed

    # -- one-off commands (prepare, index)
    def run_once(self, name: str, argv: list[str], env: dict[str, str], log_path: Path,
                 timeout_s: float | None = None) -> None:
        child = Child(ProcessSpec(name, argv, env, lambda: True, log_path), self.console)
        child.start()
        assert child.proc
        self._one_offs.add(child.proc.pid)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while (rc := child.proc.poll()) is None:
                if self.stop_event.is_set():
                    raise SupervisorError(f"interrupted while running {name}")
                if deadline is not None and time.monotonic() > deadline:
                    raise SupervisorError(f"{name} took longer than {timeout_s:g}s; see {log_path}")
                time.sleep(0.2)
        finally:
            child.stop()
            self._one_offs.discard(child.proc.pid)
        if rc != 0:
            raise SupervisorError(f"{name} failed (exit code {rc}); see {log_path}")

    # -- start
    def _wait_ports(self, child: Child, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while busy := [p for p in child.spec.ports if p and not port_free(p)]:
            if time.monotonic() > deadline:
                raise SupervisorError(f"{child.name}: port(s) {busy} still in use {timeout_s:g}s after it stopped")
            time.sleep(0.2)

    def start(self, spec: ProcessSpec) -> Child:
        """Starts ``spec`` and blocks until its probe passes (raises SupervisorError)."""
        child = Child(spec, self.console)
        self.children.append(child)
        self.say(f"starting {spec.name}: log {spec.log_path}")
        child.start()
        self.on_change()
        self._await_healthy(child)
        return child

    def _await_healthy(self, child: Child) -> None:
        deadline = child.started_at + child.spec.startup_timeout_s
        while True:
            if self.stop_event.is_set():
                raise SupervisorError("interrupted during startup")
            if not child.running():
                time.sleep(0.3)  # let the pump flush the last lines
                raise SupervisorError(
                    f"{child.name} exited with code {child.proc.returncode if child.proc else None} during startup; "
                    f"log: {child.spec.log_path}\n  last lines:\n{child.last_lines()}"
                )
            if self._probe(child):
                child.healthy_since = time.monotonic()
                self.say(f"{child.name} is healthy")
                return
            if time.monotonic() > deadline:
                raise SupervisorError(
                    f"{child.name} did not become healthy within {child.spec.startup_timeout_s:g}s; "
                    f"log: {child.spec.log_path}"
                )
            time.sleep(0.5)

    @staticmethod
    def _probe(child: Child) -> bool:
        try:
            return bool(child.spec.probe())
        except Exception:  # noqa: BLE001 - a failing probe means "not healthy"
            return False

    # -- keep running
    def supervise(self) -> None:
        """Runs until ``stop_event``; must be called from the thread that started the children."""
        while not self.stop_event.wait(self.poll_s):
            self.tick()

    def tick(self) -> None:
        """One supervision pass: notice deaths, reap, restart what is due."""
        now = time.monotonic()
        for child in self.children:
            if child.given_up:
                continue
            if child.running():
                if child.healthy_since is None and self._probe(child):
                    child.healthy_since = now
                    self.say(f"{child.name} is healthy again")
                    self.on_change()
                elif child.healthy_since is None and now - child.started_at > child.spec.startup_timeout_s:
                    self.say(f"ERROR: {child.name} not healthy {child.spec.startup_timeout_s:g}s after restart: killing it")
                    child.stop()
                if child.healthy_since is not None and now - child.healthy_since > child.spec.restart.stable_s:
                    child.consecutive_failures = 0
                continue
            if child.next_start_at is None:
                self._on_death(child, now)
            elif now >= child.next_start_at:
                self._restart(child)

    def _on_death(self, child: Child, now: float) -> None:
        rc = child.proc.returncode if child.proc else None
        child.reap()
        self.sweep_strays()
        if not child.budget.allow():
            child.given_up = True
            p = child.spec.restart
            self.say(f"ERROR: {child.name} exited (code {rc}) and used its restart budget "
                     f"({p.budget} in {p.window_s:g}s); left down. Log: {child.spec.log_path}")
            return
        child.consecutive_failures += 1
        delay = child.spec.restart.delay(child.consecutive_failures)
        child.next_start_at = now + delay
        self.say(f"ERROR: {child.name} exited unexpectedly (code {rc}); restarting in {delay:.1f}s "
                 f"(restart {child.budget.used + 1}/{child.spec.restart.budget} in this window). "
                 f"Log: {child.spec.log_path}")

    def _restart(self, child: Child) -> None:
        child.next_start_at = None
        try:
            self._wait_ports(child)
        except SupervisorError as exc:
            self.say(f"ERROR: {exc}")
            child.next_start_at = time.monotonic() + child.spec.restart.delay(child.consecutive_failures)
            return
        child.budget.spend()
        self.say(f"restarting {child.name}")
        child.start()  # health is picked up by later ticks; the loop keeps watching the others
        self.on_change()

    # -- stop
    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.proc is None:
                continue
            self.say(f"stopping {child.name}")
            child.stop()
        self.sweep_strays()
