"""Admission control for a gRPC service: bounded in-flight calls and a queue deadline.

Without it an overloaded service queues without bound and every caller waits (p99 840 ms at
32 cache-miss clients). With it at most ``max_in_flight`` calls of the guarded methods run;
a call waits at most ``queue_timeout_ms`` for a slot, else it is refused at once with
RESOURCE_EXHAUSTED and trailing metadata ``retry-after-ms`` (an estimate of when a slot
frees up), so accepted calls keep their latency and refused ones learn it within
milliseconds (a call is refused at once when the predicted wait already exceeds the
deadline). Callers that see RESOURCE_EXHAUSTED may retry after that delay.

Two ways to guard: :class:`AdmissionInterceptor` takes a slot for the whole call; a service
whose calls are mostly cheap (a cache hit) and sometimes expensive uses :class:`Ticket` and
takes the slot only when a call reaches the expensive part, so cheap calls never queue behind,
or get refused because of, expensive ones. Both refuse with the same status and metadata
(:func:`abort_refused`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import grpc

from homesearch.rpc.interceptors import Behavior, wrap_behavior

RETRY_AFTER_KEY = "retry-after-ms"


class Admission:
    """In-flight counter with a wait deadline and a service-time estimate (EWMA).

    A call that finds every slot taken is refused *at once* when the predicted wait
    (queued calls ahead x mean service time / slots) exceeds half the queue deadline, so
    refusals cost microseconds rather than the deadline; otherwise it waits up to the deadline."""

    def __init__(self, max_in_flight: int, queue_timeout_ms: float) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self.max_in_flight = max_in_flight
        self.queue_timeout_s = max(0.0, queue_timeout_ms) / 1000.0
        self._cond = threading.Condition()
        self._in_flight = 0
        self._waiting = 0
        self._ewma_s = 0.0  # unknown until the first call finishes
        self.refused = 0

    def predicted_wait_s(self) -> float:
        """Expected wait for a slot if a call arrived now (lock held)."""
        if self._in_flight < self.max_in_flight:
            return 0.0
        return self._ewma_s * (self._waiting + 1) / self.max_in_flight

    def acquire(self) -> bool:
        with self._cond:
            if self._in_flight < self.max_in_flight and not self._waiting:
                self._in_flight += 1
                return True
            # Wait only when the predicted wait is well inside the deadline: a call that would
            # likely time out in the queue is told now (refusals stay fast even at the tail).
            if self.predicted_wait_s() > 0.5 * self.queue_timeout_s:
                return False
            deadline = time.monotonic() + self.queue_timeout_s
            self._waiting += 1
            try:
                while self._in_flight >= self.max_in_flight:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._cond.wait(left):
                        if self._in_flight >= self.max_in_flight:
                            return False
                self._in_flight += 1
                return True
            finally:
                self._waiting -= 1

    def release(self, took_s: float) -> None:
        with self._cond:
            self._ewma_s = took_s if self._ewma_s == 0.0 else 0.8 * self._ewma_s + 0.2 * took_s
            self._in_flight -= 1
            self._cond.notify()

    def retry_after_ms(self) -> int:
        with self._cond:
            return max(10, int(1000 * max(self.predicted_wait_s(), self._ewma_s)))


class Refused(Exception):
    """Raised by :meth:`Ticket.take` when no slot frees up in time; carries the retry hint."""

    def __init__(self, admission: Admission, retry_after_ms: int) -> None:
        super().__init__(f"overloaded: {admission.max_in_flight} requests in flight; retry after {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms


def abort_refused(context: grpc.ServicerContext, refused: Refused) -> NoReturn:
    """The refusal contract: RESOURCE_EXHAUSTED with trailing metadata ``retry-after-ms``."""
    context.set_trailing_metadata(((RETRY_AFTER_KEY, str(refused.retry_after_ms)),))
    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(refused))
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


class Ticket:
    """One call's claim on a slot, taken lazily: :meth:`take` before the expensive part (a no-op
    once held), :meth:`release` when the call ends (a no-op if never taken). Only the time the
    slot was held feeds the service-time estimate, so cheap calls do not skew retry-after-ms."""

    def __init__(self, admission: Admission, on_refuse: Callable[[], None] = lambda: None) -> None:
        self.admission = admission
        self.on_refuse = on_refuse
        self._t0: float | None = None

    @property
    def held(self) -> bool:
        return self._t0 is not None

    def take(self) -> None:
        if self._t0 is not None:
            return
        adm = self.admission
        if not adm.acquire():
            adm.refused += 1
            self.on_refuse()
            raise Refused(adm, adm.retry_after_ms())
        self._t0 = time.perf_counter()

    def release(self) -> None:
        if self._t0 is not None:
            self.admission.release(time.perf_counter() - self._t0)
            self._t0 = None


class AdmissionInterceptor(grpc.ServerInterceptor):
    """Guards the unary ``methods`` (full names) with one shared :class:`Admission`."""

    def __init__(self, admission: Admission, methods: Iterable[str],
                 on_refuse: Callable[[str], None] = lambda method: None) -> None:
        self.admission = admission
        self.methods = set(methods)
        self.on_refuse = on_refuse

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or details.method not in self.methods or not handler.unary_unary:
            return handler
        adm, method = self.admission, details.method

        def wrap(inner: Behavior) -> Behavior:
            def behavior(request: Any, context: grpc.ServicerContext) -> Any:
                ticket = Ticket(adm, on_refuse=lambda: self.on_refuse(method))
                try:
                    ticket.take()
                except Refused as exc:
                    abort_refused(context, exc)
                try:
                    return inner(request, context)
                finally:
                    ticket.release()

            return behavior

        return wrap_behavior(handler, wrap)
