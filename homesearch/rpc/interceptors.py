"""Server interceptors and the one helper they share.

gRPC's Python API has no "around" hook: an interceptor must rebuild the method handler with a
wrapped behaviour, keeping its (de)serialisers. :func:`wrap_behavior` does that once for every
RPC kind, so an interceptor only writes the wrapper.

:class:`RequestIdInterceptor` is the one place a request id is decided: the request's own
``request_id`` field, else the caller's ``x-request-id`` metadata, else a fresh id. Servicers only
read it (``homesearch.observability.logging.request_id_var``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc

from homesearch.observability.logging import request_id_var

REQUEST_ID_KEY = "x-request-id"

Behavior = Callable[[Any, grpc.ServicerContext], Any]

_FACTORIES = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler, "unary"),
    ("unary_stream", grpc.unary_stream_rpc_method_handler, "server_stream"),
    ("stream_unary", grpc.stream_unary_rpc_method_handler, "client_stream"),
    ("stream_stream", grpc.stream_stream_rpc_method_handler, "bidi_stream"),
)


def rpc_kind(handler: grpc.RpcMethodHandler) -> str:
    """``unary``, ``server_stream``, ``client_stream`` or ``bidi_stream``."""
    for attr, _, kind in _FACTORIES:
        if getattr(handler, attr):
            return kind
    raise ValueError("handler has no behaviour")


def wrap_behavior(
    handler: grpc.RpcMethodHandler | None, wrap: Callable[[Behavior], Behavior]
) -> grpc.RpcMethodHandler | None:
    """The same handler with its behaviour replaced by ``wrap(behaviour)``; None stays None."""
    if handler is None:
        return None
    for attr, factory, _ in _FACTORIES:
        behavior = getattr(handler, attr)
        if behavior:
            return factory(
                wrap(behavior),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


def request_id_of(request: Any, metadata: dict[str, str]) -> str:
    """The request's id: its ``request_id`` field, the ``x-request-id`` metadata, or a new one."""
    rid = getattr(request, "request_id", "")
    if isinstance(rid, str) and rid:
        return rid
    return metadata.get(REQUEST_ID_KEY) or uuid.uuid4().hex[:16]


class RequestIdInterceptor(grpc.ServerInterceptor):
    """Puts the request id into the logging context for the duration of each unary call."""

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or not handler.unary_unary:
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())

        def wrap(inner: Behavior) -> Behavior:
            def behavior(request: Any, context: grpc.ServicerContext) -> Any:
                token = request_id_var.set(request_id_of(request, metadata))
                try:
                    return inner(request, context)
                finally:
                    request_id_var.reset(token)

            return behavior

        return wrap_behavior(handler, wrap)
