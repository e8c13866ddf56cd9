"""grpc_status.HandlerCache: a method's handler is wrapped once, and wrapped anew when the
method's handler changes (an access refusal's stand-in), so no call gets another's wrapping."""

from __future__ import annotations

from typing import Any

import pytest

from ragline.grpc_status import HandlerCache

pytestmark = pytest.mark.unit


def test_a_method_is_wrapped_once_and_again_only_when_its_handler_changes() -> None:
    made: list[tuple[str, Any]] = []

    def wrap(method: str, handler: Any) -> Any:
        made.append((method, handler))
        return ("wrapped", method, handler)

    cache = HandlerCache(wrap)
    admitted, refusing = object(), object()
    first = cache.get("/s/A", admitted)
    assert cache.get("/s/A", admitted) is first
    assert cache.get("/s/B", admitted) == ("wrapped", "/s/B", admitted)
    assert cache.get("/s/A", refusing) == ("wrapped", "/s/A", refusing)
    assert cache.get("/s/A", admitted) == ("wrapped", "/s/A", admitted)
    assert made == [("/s/A", admitted), ("/s/B", admitted), ("/s/A", refusing), ("/s/A", admitted)]
