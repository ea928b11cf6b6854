from __future__ import annotations

import pytest

from homesearch.client import HomesearchClient
from tests.fixtures.gateway import API_KEY


@pytest.fixture(scope="session")
def client(gateway) -> HomesearchClient:
    with HomesearchClient(gateway.address, api_key=API_KEY, timeout_s=30) as c:
        yield c
