"""The rules a SearchRequest must meet, stated once for every service that receives one.

The split of work (issue 15, "one owner per rule"):

- :func:`validate_request` holds every check that needs no index. The gateway runs it at the
  edge; the ranking service runs it again, because internal services trust nobody.
- Index-aware checks (filter attribute keys the index knows) run in ranking, which owns the
  index (``services.ranking.service``); the gateway passes its INVALID_ARGUMENT through unchanged.
- Limits and the default page size live in :class:`SearchLimits` / :data:`DEFAULT_TOP_K`; both
  services' settings take their defaults from here.

Every check raises :class:`RequestError` with a message meant for the caller (sent back as the
INVALID_ARGUMENT details), naming the field and the limit. Cheap checks only: full image decoding
happens in the image encoder, whose decode errors ranking returns as INVALID_ARGUMENT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from homesearch.v1 import search_pb2

DEFAULT_TOP_K = 10  # hits per page when a request leaves top_k at 0
MAX_REQUEST_ID_CHARS = 128
MAX_LOCALE_CHARS = 35  # BCP-47 practical maximum
MAX_FILTER_VALUES = 1000
MAX_FILTER_VALUE_CHARS = 256


class RequestError(ValueError):
    """The request is malformed; the message is safe to show to the caller."""


@dataclass(frozen=True)
class SearchLimits:
    """Size limits of a SearchRequest; the defaults are the documented public limits."""

    max_text_chars: int = 1000
    max_image_bytes: int = 10 * 1024 * 1024
    max_top_k: int = 100
    max_offset: int = 1000


DEFAULT_LIMITS = SearchLimits()



def sniff_image_type(data: bytes) -> str | None:
    """Returns "jpeg", "png" or "webp" from the magic bytes, else None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _fmt_bytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def _check_finite(name: str, value: float) -> None:
    if math.isnan(value) or math.isinf(value):
        raise RequestError(f"{name} must be a finite number, got {value}")


def validate_request(req: search_pb2.SearchRequest, limits: SearchLimits = DEFAULT_LIMITS) -> None:
    """Raises RequestError for the first problem found (every check that needs no index)."""
    text = req.text
    if text and not text.strip():
        raise RequestError("text is whitespace-only; send real query text or leave it empty")
    if not text and not req.image and not req.similar_to_product_id:
        raise RequestError(
            "request has neither text nor image (nor similar_to_product_id): send text, an image, a product id, "
            "or text with an image or product id"
        )
    if len(text) > limits.max_text_chars:
        raise RequestError(f"text is too long: {len(text)} characters, at most {limits.max_text_chars}")
    if "\x00" in text:
        raise RequestError("text contains a NUL character")

    if req.image:
        if len(req.image) > limits.max_image_bytes:
            raise RequestError(
                f"image is too large: {_fmt_bytes(len(req.image))}, at most {_fmt_bytes(limits.max_image_bytes)}"
            )
        if sniff_image_type(req.image) is None:
            raise RequestError("image is not a JPEG, PNG or WebP file (unrecognised leading bytes)")

    if req.top_k < 0 or req.top_k > limits.max_top_k:
        raise RequestError(f"top_k must be between 1 and {limits.max_top_k} (0 means {DEFAULT_TOP_K}), got {req.top_k}")
    if req.offset < 0 or req.offset > limits.max_offset:
        raise RequestError(f"offset must be between 0 and {limits.max_offset}, got {req.offset}")

    _check_finite("score_threshold", req.score_threshold)
    if len(req.request_id) > MAX_REQUEST_ID_CHARS:
        raise RequestError(f"request_id is too long: at most {MAX_REQUEST_ID_CHARS} characters")
    if len(req.locale) > MAX_LOCALE_CHARS:
        raise RequestError(f"locale is too long: at most {MAX_LOCALE_CHARS} characters")

    if req.HasField("fusion"):
        f = req.fusion
        if f.method not in search_pb2.Fusion.Method.values():
            raise RequestError(f"fusion.method has unknown value {f.method}")
        for name in ("text_weight", "image_weight", "lexical_weight"):
            value = getattr(f, name)
            _check_finite(f"fusion.{name}", value)
            if value < 0:
                raise RequestError(f"fusion.{name} must be >= 0, got {value}")

    if req.HasField("filter"):
        _validate_filter(req.filter)


def _validate_filter(flt: search_pb2.Filter) -> None:
    for name in ("categories", "exclude_ids"):
        values = getattr(flt, name)
        if len(values) > MAX_FILTER_VALUES:
            raise RequestError(f"filter.{name} has {len(values)} entries, at most {MAX_FILTER_VALUES}")
        for v in values:
            if not v:
                raise RequestError(f"filter.{name} contains an empty string")
            if len(v) > MAX_FILTER_VALUE_CHARS:
                raise RequestError(f"filter.{name} entry is too long: at most {MAX_FILTER_VALUE_CHARS} characters")
    for bound in ("min_price", "max_price"):
        if flt.HasField(bound):
            value = getattr(flt, bound)
            _check_finite(f"filter.{bound}", value)
            if value < 0:
                raise RequestError(f"filter.{bound} must be >= 0, got {value}")
    if flt.HasField("min_price") and flt.HasField("max_price") and flt.min_price > flt.max_price:
        raise RequestError(f"filter.min_price ({flt.min_price:g}) is greater than filter.max_price ({flt.max_price:g})")
    if flt.attributes:
        for key, value in flt.attributes.items():
            if not key:
                raise RequestError("filter.attributes has an empty key")
            if len(value) > MAX_FILTER_VALUE_CHARS:
                raise RequestError(f"filter.attributes[{key!r}] is too long: at most {MAX_FILTER_VALUE_CHARS} characters")


# -- undecodable requests -------------------------------------------------------------------

_lenient_cls = None


def _lenient_request_class():
    """SearchRequest with every ``string`` field turned into ``bytes`` (maps into plain
    repeated entries), so bytes that protobuf rejects can be parsed and inspected."""
    global _lenient_cls
    if _lenient_cls is None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        fdp = descriptor_pb2.FileDescriptorProto()
        search_pb2.DESCRIPTOR.CopyToProto(fdp)
        fdp.name, fdp.package = "homesearch/v1/search_lenient.proto", "homesearch.v1.lenient"
        fdp.ClearField("service")
        fdp.ClearField("options")
        T = descriptor_pb2.FieldDescriptorProto

        def fix(msg: descriptor_pb2.DescriptorProto) -> None:
            msg.options.map_entry = False
            for f in msg.field:
                if f.type == T.TYPE_STRING:
                    f.type = T.TYPE_BYTES
                if f.type_name.startswith(".homesearch.v1."):
                    f.type_name = ".homesearch.v1.lenient." + f.type_name[len(".homesearch.v1."):]
            for nested in msg.nested_type:
                fix(nested)

        for m in fdp.message_type:
            fix(m)
        pool = descriptor_pool.DescriptorPool()
        pool.Add(fdp)
        _lenient_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("homesearch.v1.lenient.SearchRequest"))
    return _lenient_cls


def _invalid_utf8_paths(msg, prefix: str = "") -> list[str]:
    found = []
    for field, value in msg.ListFields():
        name = prefix + field.name
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        values = value if repeated else [value]
        for i, v in enumerate(values):
            label = f"{name}[{i}]" if repeated else name
            if field.message_type is not None:
                found += _invalid_utf8_paths(v, label + ".")
            elif isinstance(v, bytes) and name != "image":
                try:
                    v.decode("utf-8")
                except UnicodeDecodeError as exc:
                    found.append(f"{label} (byte 0x{v[exc.start]:02x} at offset {exc.start})")
    return found


def explain_undecodable(raw: bytes) -> str:
    """A caller-facing reason why ``raw`` is not a valid SearchRequest."""
    try:
        lenient = _lenient_request_class().FromString(raw)
    except Exception:  # noqa: BLE001 - not even the wire format parses
        return "request is not a valid homesearch.v1.SearchRequest: malformed protobuf wire format"
    bad = _invalid_utf8_paths(lenient)
    if bad:
        return (
            "request is not a valid homesearch.v1.SearchRequest: string field(s) are not valid UTF-8: "
            + ", ".join(bad)
        )
    return "request is not a valid homesearch.v1.SearchRequest"
