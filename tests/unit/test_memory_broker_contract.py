"""The broker contract (tests/broker_contract.py) against the in-memory broker: no server, so
it runs with the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ragline.broker.base import BrokerAdapter
from ragline.broker.memory import MemoryBroker, MemoryServer
from tests.broker_contract import BrokerContract, BrokerFactory

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


class TestMemoryBroker(BrokerContract):
    @pytest.fixture
    async def broker_factory(self) -> AsyncIterator[BrokerFactory]:
        """Connections to one server of the test's own."""
        server = MemoryServer()
        made: list[BrokerAdapter] = []

        async def make(name: str, visibility_s: float = 60.0, prefetch: int = 128) -> BrokerAdapter:
            # Reclaims after the visibility timeout as Redis does; nothing is pushed ahead of a
            # read, so there is no prefetch.
            broker = MemoryBroker(server, consumer_name=name, visibility_timeout_s=visibility_s)
            await broker.connect()
            made.append(broker)
            return broker

        yield make
        for broker in made:
            await broker.close()
