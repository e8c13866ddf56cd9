"""A server-streaming RPC's replies as server-sent events (text/event-stream): each reply is
`event: job` with the Job's proto3 JSON on one `data:` line; `: keepalive` comments keep idle
proxies from closing a quiet stream; an error after the stream began is `event: error` with the
AIP-193 body, then the stream ends. An error before it began (an unknown job) is raised, so the
caller answers it as an ordinary HTTP error."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ragline.http.errors import http_error
from ragline.http.messages import to_json

log = logging.getLogger(__name__)

# A comment this often while nothing else is sent.
KEEPALIVE_S = 15.0
KEEPALIVE = b": keepalive\n\n"


def event(name: str, data: Any) -> bytes:
    """One event; `data` as JSON on one line (json.dumps escapes newlines)."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def stream(
    request: web.Request,
    replies: AsyncIterator[Any],
    closing: asyncio.Event,
    keepalive_s: float = KEEPALIVE_S,
) -> web.StreamResponse:
    """Streams `replies` (WatchJobResponse messages) as `job` events until they end, the client
    goes away or `closing` is set (the gateway stops)."""
    updates = aiter(replies)
    try:
        first = await anext(updates)  # NotFound, bad id: an ordinary error answer
    except StopAsyncIteration:
        first = None
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx and friends: pass each event on at once
        }
    )
    await response.prepare(request)
    try:
        if first is not None:
            await response.write(event("job", to_json(first.job)))
            await _rest(response, updates, closing, keepalive_s)
        await response.write_eof()
    except ConnectionResetError:
        # The client went away (a closed browser tab): nothing to answer, nothing to log.
        log.debug("an event stream's client went away")
    finally:
        with contextlib.suppress(Exception):
            await updates.aclose()  # type: ignore[attr-defined]
    return response


async def _rest(
    response: web.StreamResponse,
    updates: AsyncIterator[Any],
    closing: asyncio.Event,
    keepalive_s: float,
) -> None:
    stop = asyncio.ensure_future(closing.wait())
    nxt: asyncio.Future[Any] | None = None
    try:
        while True:
            nxt = asyncio.ensure_future(anext(updates))
            while True:
                done, _ = await asyncio.wait(
                    {nxt, stop}, timeout=keepalive_s, return_when=asyncio.FIRST_COMPLETED
                )
                if nxt in done or stop in done:
                    break
                await response.write(KEEPALIVE)
            if nxt not in done:  # the gateway is stopping
                nxt.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await nxt
                return
            try:
                reply = nxt.result()
            except StopAsyncIteration:
                return
            except Exception as exc:
                answer = http_error(exc)
                await response.write(event("error", answer.body))
                return
            await response.write(event("job", to_json(reply.job)))
    finally:
        stop.cancel()
        # A keepalive or event written to a client that left raises here with a read still
        # pending: cancelled, the watch lets go of its Redis subscription, and `aclose` can run.
        if nxt is not None and not nxt.done():
            nxt.cancel()
            with contextlib.suppress(BaseException):
                await nxt
