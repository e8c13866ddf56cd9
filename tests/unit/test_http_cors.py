"""ragline.http.cors: which origins may call the HTTP API cross-origin, and the headers."""

from __future__ import annotations

import pytest

from ragline.errors import ConfigurationError
from ragline.http.cors import CorsPolicy

pytestmark = pytest.mark.unit

PAGE = "http://127.0.0.1:5173"


def test_listed_origins_are_allowed_exactly() -> None:
    policy = CorsPolicy.parse(f" {PAGE} , https://app.example.com")
    assert policy.allow_origin(PAGE) == PAGE
    assert policy.allow_origin("https://app.example.com") == "https://app.example.com"
    for other in ("http://127.0.0.1:5174", "http://localhost:5173", "https://app.example.com.evil"):
        assert policy.allow_origin(other) is None
        assert policy.response_headers(other) == {}
        assert policy.preflight_headers(other) is None
    assert policy.allow_origin(None) is None  # same-origin: no CORS headers


def test_a_preflight_allows_the_contract_methods_and_headers() -> None:
    headers = CorsPolicy.parse(PAGE).preflight_headers(PAGE)
    assert headers is not None
    assert headers["Access-Control-Allow-Origin"] == PAGE
    assert headers["Vary"] == "Origin"
    assert headers["Access-Control-Allow-Methods"] == "GET, POST, DELETE"
    assert headers["Access-Control-Allow-Headers"] == "authorization, content-type, traceparent"


def test_a_star_allows_any_origin_and_empty_allows_none() -> None:
    star = CorsPolicy.parse("*")
    assert star.response_headers("https://anywhere.example")["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in star.response_headers("https://anywhere.example")
    assert CorsPolicy.parse("").allow_origin(PAGE) is None


@pytest.mark.parametrize(
    "setting", ["*, http://a.example", "127.0.0.1:5173", "http://a.example/app"]
)
def test_a_setting_that_names_no_origin_is_refused(setting: str) -> None:
    with pytest.raises(ConfigurationError, match="RAGLINE_HTTP_CORS_ORIGINS"):
        CorsPolicy.parse(setting)
