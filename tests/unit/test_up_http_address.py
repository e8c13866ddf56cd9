"""`ragline up` serves the HTTP/JSON API on the port after the four gRPC ports, unless told."""

from __future__ import annotations

import pytest

from ragline.cli.stack import http_address

pytestmark = pytest.mark.unit


def test_the_http_port_follows_the_grpc_ports() -> None:
    assert http_address({}) == "127.0.0.1:50055"
    assert http_address({"RAGLINE_GATEWAY_ADDRESS": "0.0.0.0:6000"}) == "0.0.0.0:6004"
