"""Cross-origin decisions for browsers calling the HTTP gateway from another origin
(RAGLINE_HTTP_CORS_ORIGINS): pure logic, the aiohttp side is in ragline.http.app."""

from __future__ import annotations

from dataclasses import dataclass

from ragline.errors import ConfigurationError

ALLOWED_METHODS = "GET, POST, DELETE"
ALLOWED_HEADERS = "authorization, content-type, traceparent"
# What a page's script may read of an answer beyond the CORS-safelisted headers.
EXPOSED_HEADERS = "retry-after"
# How long a browser may cache a preflight's answer, in seconds.
MAX_AGE_S = 600


@dataclass(frozen=True)
class CorsPolicy:
    """The origins allowed to call cross-origin: exact `scheme://host[:port]` strings, or any
    (`*`). No origins: no CORS headers at all, so browsers allow same-origin calls only."""

    origins: frozenset[str]
    any_origin: bool = False

    @classmethod
    def parse(cls, setting: str) -> CorsPolicy:
        """The policy RAGLINE_HTTP_CORS_ORIGINS describes (comma-separated origins, or `*`)."""
        names = {o.strip() for o in setting.split(",") if o.strip()}
        if "*" in names:
            if len(names) > 1:
                raise ConfigurationError(
                    f"RAGLINE_HTTP_CORS_ORIGINS is {setting!r}: `*` allows every origin, so "
                    "list origins or give `*` alone."
                )
            return cls(frozenset(), any_origin=True)
        for name in names:
            scheme, sep, rest = name.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
                raise ConfigurationError(
                    f"RAGLINE_HTTP_CORS_ORIGINS names {name!r}, which is not an origin: write "
                    "each as scheme://host[:port] with no path, e.g. http://127.0.0.1:5173."
                )
        return cls(frozenset(names))

    def allow_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for a request from `origin`; None when the
        request is not cross-origin or its origin is not allowed (no CORS headers then)."""
        if not origin:
            return None
        if self.any_origin:
            return "*"
        return origin if origin in self.origins else None

    def response_headers(self, origin: str | None) -> dict[str, str]:
        """The CORS headers on an ordinary answer to a request from `origin`."""
        allowed = self.allow_origin(origin)
        if allowed is None:
            return {}
        headers = {
            "Access-Control-Allow-Origin": allowed,
            "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        }
        if allowed != "*":
            headers["Vary"] = "Origin"  # the answer differs by origin: caches must key on it
        return headers

    def preflight_headers(self, origin: str | None) -> dict[str, str] | None:
        """The headers of a preflight (OPTIONS) answer for `origin`; None to refuse it."""
        allowed = self.allow_origin(origin)
        if allowed is None:
            return None
        return {
            **self.response_headers(origin),
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": str(MAX_AGE_S),
        }
