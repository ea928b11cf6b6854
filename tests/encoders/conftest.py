"""Fixtures for the encoder tests: a client on the shared server, sample photos, a tiny CLIP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.encoders.helpers import IKEA


@pytest.fixture(scope="session")
def encoder_client(triton_server) -> Iterator[object]:
    from services.encoders.client import EncoderClient

    client = EncoderClient(triton_server.grpc_url, timeout_s=60.0)
    yield client
    client.close()


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(IKEA.glob("*.jpg"))}


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    from tests.encoders.tiny_checkpoints import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("ckpt") / "tiny-clip")
