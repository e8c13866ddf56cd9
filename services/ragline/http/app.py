"""The HTTP/JSON gateway's transport: an aiohttp server in the gateway's own event loop, beside
its gRPC server, serving ragline.http.routes' table.

Each request reaches the IngestServicer's method directly (no loopback gRPC call), admitted by
the same function as a gRPC call (ragline.access.policy.admit: the same keys, the same scope
table) with the caller made current the same way, and its errors answered as gRPC answers them
(ragline.http.errors). The server-streaming WatchJob is served as server-sent events
(ragline.http.sse).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from google.protobuf.message import Message

from ragline import metrics
from ragline.access.policy import REFUSALS, Authenticate, admit, calling_as
from ragline.config import Settings
from ragline.errors import ConfigurationError, InvalidArgument
from ragline.http import sse
from ragline.http.cors import CorsPolicy
from ragline.http.errors import error_body, http_error
from ragline.http.messages import build_request, parse_json_body, to_json, upload_request
from ragline.http.openapi import build_document
from ragline.http.routes import HEALTH_PATH, OPENAPI_PATH, ROUTES, Body, Route
from ragline.v1.ingest_service_pb2_grpc import IngestServiceServicer

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Room in a request body for a largest document, base64-encoded (4 bytes per 3) inside its
# JSON or multipart envelope: the rest of the request is small.
_ENVELOPE_BYTES = 1024 * 1024


BODY_LIMIT = web.AppKey("body_limit", int)


def body_limit(settings: Settings) -> int:
    """The largest request body the gateway reads: a document of RAGLINE_MAX_DOCUMENT_BYTES,
    base64-encoded in JSON, plus its envelope. Larger bodies are answered 413."""
    return -(-settings.max_document_bytes // 3) * 4 + _ENVELOPE_BYTES


class CallContext:
    """What an IngestServicer method reads of its gRPC context, for an HTTP request: the request
    headers as invocation metadata (tracing's `traceparent`), the API key left out."""

    def __init__(self, request: web.Request) -> None:
        self._metadata = tuple(
            (k.lower(), v) for k, v in request.headers.items() if k.lower() != "authorization"
        )
        self._peer = f"http:{request.remote}"

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return self._peer


class HttpGateway:
    """The HTTP server at `address` (host:port), TLS when `ssl_context` is given, calling
    `servicer` (the gateway's IngestServicer, the one its gRPC server serves)."""

    def __init__(
        self,
        address: str,
        servicer: IngestServiceServicer,
        authenticate: Authenticate,
        settings: Settings,
        ssl_context: ssl.SSLContext | None = None,
        *,
        keepalive_s: float = sse.KEEPALIVE_S,
    ) -> None:
        self.address = address
        self._servicer = servicer
        self._authenticate = authenticate
        self._cors = CorsPolicy.parse(settings.http_cors_origins)
        self._ssl = ssl_context
        self._keepalive_s = keepalive_s
        self._grace_s = settings.shutdown_grace_s
        self._serving = False
        self._closing = asyncio.Event()  # set on stop: open event streams end
        self._openapi = json.dumps(build_document(), indent=2).encode()
        self.app = web.Application(
            middlewares=[_counted, self._answer_errors, self._preflight],
            client_max_size=body_limit(settings),
        )
        self.app[BODY_LIMIT] = body_limit(settings)
        self.app.on_response_prepare.append(self._add_cors_headers)
        for route in ROUTES:
            self.app.router.add_route(
                route.method, _aiohttp_path(route), self._handler(route), name=route.rpc
            )
        self.app.router.add_get(HEALTH_PATH, self._health)
        self.app.router.add_get(OPENAPI_PATH, self._openapi_document)
        self._runner: web.AppRunner | None = None

    @property
    def scheme(self) -> str:
        return "https" if self._ssl is not None else "http"

    async def start(self) -> None:
        host, _, port = self.address.rpartition(":")
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=self._grace_s
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host or None, int(port), ssl_context=self._ssl)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigurationError(
                f"cannot serve HTTP on {self.address} (RAGLINE_HTTP_ADDRESS): {exc.strerror}. Is "
                "another process listening there? Stop it or choose another address."
            ) from exc
        self._serving = True

    async def set_serving(self, serving: bool) -> None:
        self._serving = serving

    async def stop(self, grace_s: float) -> None:
        """Stops listening, ends the open event streams (clients reconnect to another gateway)
        and gives requests in flight up to RAGLINE_SHUTDOWN_GRACE_S (the `grace_s` the gRPC
        server gets, fixed when the runner started) to finish."""
        self._serving = False
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the routes ----------------------------------------------------------------------------
    def _handler(self, route: Route) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            caller = self._admit(request, route)
            message = await self._request_message(request, route)
            context = CallContext(request)
            with calling_as(caller):
                if route.streaming:
                    return await sse.stream(
                        request,
                        getattr(self._servicer, route.rpc)(message, context),
                        self._closing,
                        self._keepalive_s,
                    )
                reply: Message = await getattr(self._servicer, route.rpc)(message, context)
            return _json(200, to_json(reply))

        return handle

    def _admit(self, request: web.Request, route: Route) -> Any:
        try:
            return admit(self._authenticate, request.headers.getall("Authorization", []), route.rpc)
        except REFUSALS as exc:
            # As the gRPC interceptor logs a refusal: the key's public id at most, never the key.
            log.warning("refused %s %s from %s: %s", route.method, route.path, request.remote, exc)
            raise

    async def _request_message(self, request: web.Request, route: Route) -> Message:
        path = dict(request.match_info)
        query = list(request.query.items())
        if route.body is Body.NONE:
            return build_request(route, path, query, None)
        if query:
            raise InvalidArgument(
                query[0][0], f"{route.path} takes no query parameters: send the fields in the body"
            )
        if route.body is Body.JSON_OR_UPLOAD and request.content_type == "multipart/form-data":
            return await _upload(request)
        raw = await request.read()
        return build_request(route, path, [], parse_json_body(raw) if raw.strip() else {})

    async def _health(self, request: web.Request) -> web.StreamResponse:
        if self._serving:
            return _json(200, {"status": "SERVING"})
        return _json(503, {"status": "NOT_SERVING"})

    async def _openapi_document(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self._openapi, content_type="application/json")

    # -- middleware ----------------------------------------------------------------------------
    @web.middleware
    async def _answer_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every error as an AIP-193 JSON answer: ragline's as gRPC answers them, aiohttp's own
        (no such route, a method the path does not take, a body too large) in the same shape."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _transport_error(request, exc)
        except Exception as exc:
            answer = http_error(exc)
            return _json(answer.status, answer.body, answer.headers)

    @web.middleware
    async def _preflight(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answers CORS preflights (OPTIONS with Access-Control-Request-Method) for allowed
        origins; refuses them, saying why, for the others."""
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return await handler(request)
        origin = request.headers.get("Origin")
        headers = self._cors.preflight_headers(origin)
        if headers is None:
            return _json(
                403,
                error_body(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"cross-origin calls from {origin or 'this page'} are not allowed: add the "
                    "origin to the gateway's RAGLINE_HTTP_CORS_ORIGINS",
                ),
            )
        return web.Response(status=204, headers=headers)

    async def _add_cors_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        if request.method != "OPTIONS":
            response.headers.update(self._cors.response_headers(request.headers.get("Origin")))


@web.middleware
async def _counted(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts and times every answer (ragline.metrics.HTTP_REQUESTS) by the RPC its route maps
    to: a bounded label, unlike the path."""
    rpc = request.match_info.route.name if request.method != "OPTIONS" else None
    label = rpc or "none"
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        metrics.HTTP_SECONDS.labels(label).observe(time.perf_counter() - start)
        metrics.HTTP_REQUESTS.labels(label, str(status)).inc()


async def _upload(request: web.Request) -> Message:
    try:
        form = await request.post()
    except (ValueError, AssertionError, HttpProcessingError) as exc:
        # aiohttp's parser refuses a malformed part (a control character in its headers) with
        # an HttpProcessingError; the client sent it, so it is a 400 like any bad body.
        problem = getattr(exc, "message", None) or str(exc)
        raise InvalidArgument(
            "body", f"is not a valid multipart/form-data upload ({problem})"
        ) from None
    files = [v for k, v in form.items() if k == "file"]
    if len(files) != 1 or not isinstance(files[0], web.FileField):
        kind = "" if not files or isinstance(files[0], web.FileField) else ", not a file"
        raise InvalidArgument(
            "file",
            "an upload carries exactly one `file` part holding the document "
            f"(this one has {len(files)}{kind})",
        )
    (upload,) = files
    assert isinstance(upload, web.FileField)
    fields = {k: v for k, v in form.items() if k != "file"}
    texts: dict[str, str] = {}
    for name, value in fields.items():
        if not isinstance(value, str):
            raise InvalidArgument(name, "must be a text part; only `file` holds a file")
        texts[name] = value
    content = await asyncio.to_thread(upload.file.read)
    return upload_request(content, upload.filename, upload.content_type, texts)


def _aiohttp_path(route: Route) -> str:
    """The route's path for aiohttp's router: a segment is anything up to the next `/`; before a
    custom verb (`/v1/jobs/{jobId}:watch`) the shortest such, so an id may hold a `:` too."""
    path = route.path
    for name in route.path_fields:
        lazy = f"{{{name}}}:" in path
        path = path.replace(f"{{{name}}}", f"{{{name}:[^/]+?}}" if lazy else f"{{{name}:[^/]+}}")
    return path


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )


def _transport_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusals, in the AIP-193 shape."""
    headers = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        headers["Allow"] = allowed
        body = error_body(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{request.path} does not take {request.method}; it takes {allowed}",
            http_status=405,
        )
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        body = error_body(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the request body is larger than the {request.app[BODY_LIMIT]} bytes this "
            "gateway reads (RAGLINE_MAX_DOCUMENT_BYTES, base64-encoded); send a smaller "
            "document, or fewer documents per batch",
            http_status=413,
        )
    elif isinstance(exc, web.HTTPNotFound):
        body = error_body(
            grpc.StatusCode.NOT_FOUND,
            f"no route {request.method} {request.path}; {OPENAPI_PATH} lists the routes",
        )
    else:  # e.g. a request aiohttp could not read
        code = grpc.StatusCode.INVALID_ARGUMENT if exc.status < 500 else grpc.StatusCode.INTERNAL
        body = error_body(code, exc.text or exc.reason, http_status=exc.status)
    return _json(exc.status, body, headers)
