"""Fixtures shared by every test: real servers, with a unique namespace per test so tests never
see each other's keys, queues or collections."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

REDIS_URL = os.environ.get("RAGLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Model weights come from the installed package only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def namespace() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def redis_client(namespace: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the test Redis; deletes the test's keys afterwards."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # the suite cannot run without it: fail loudly, never skip
        pytest.fail(f"Redis does not answer at {REDIS_URL}: {exc}. `make test` starts one.")
    yield client
    keys = [k async for k in client.scan_iter(match=f"{namespace}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()
