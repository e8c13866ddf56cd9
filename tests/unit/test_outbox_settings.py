"""RAGLINE_OUTBOX_LEASE_S: parsed as seconds, and refused when it could never hold a lease."""

from __future__ import annotations

import pytest

from ragline.config import Settings
from ragline.errors import ConfigurationError

pytestmark = pytest.mark.unit


def test_the_outbox_lease_is_read_from_the_environment() -> None:
    assert Settings.from_env({}).outbox_lease_s == 30.0
    assert Settings.from_env({"RAGLINE_OUTBOX_LEASE_S": "1.5"}).outbox_lease_s == 1.5


@pytest.mark.parametrize("bad", ["0", "-2"])
def test_a_lease_that_is_not_positive_is_refused(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="RAGLINE_OUTBOX_LEASE_S must be positive"):
        Settings.from_env({"RAGLINE_OUTBOX_LEASE_S": bad})
