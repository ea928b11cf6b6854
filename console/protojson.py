"""Generic protobuf <-> JSON mapping between the page and the Search RPC.

The page sends a SearchRequest as JSON (proto field names) and gets the SearchResponse back
as JSON, field by field, by the protobuf runtime's own mapping. Nothing here lists the
fields: a field the proto gains (facets, regions, similar-by-id, ...) travels to and from
the page without a change to the console's server side, and a field the proto does not
have is refused with the runtime's message instead of being dropped silently.
"""

from __future__ import annotations

from google.protobuf import json_format
from google.protobuf.message import Message

from homesearch.v1 import search_pb2


class RequestError(ValueError):
    """The page's request does not fit the SearchRequest message; the text says which field."""


def message_to_json(msg: Message) -> dict:
    """Every field of ``msg`` with proto names, defaults included (the page needs no fallbacks)."""
    return json_format.MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def search_request_from_json(obj: dict, image: bytes = b"") -> search_pb2.SearchRequest:
    """A SearchRequest from the page's JSON (proto field names) plus the uploaded photo bytes."""
    if not isinstance(obj, dict):
        raise RequestError("the request must be a JSON object")
    if "image" in obj:
        raise RequestError("send the photo as the multipart 'image' file, not inside the JSON request")
    req = search_pb2.SearchRequest()
    try:
        json_format.ParseDict(obj, req, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise RequestError(str(exc)) from None
    if image:
        req.image = image
    return req


def request_summary(req: search_pb2.SearchRequest) -> dict:
    """The request as JSON for logs and the page, with the photo replaced by its size."""
    out = message_to_json(req)
    out.pop("image", None)
    out["image_bytes"] = len(req.image)
    return out
