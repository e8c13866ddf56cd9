"""The browser example page (clients/web-example) in a real headless Chromium, Debian's own,
driven by Playwright: it calls the gateway's HTTP API cross-origin, shows "processing" as soon
as an upload is accepted and turns to "ready" from the job's event stream without a reload."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from tests.stack import Stack, free_port

# One Redis stack is enough: the page sees only the gateway, whatever the broker.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.parametrize("stack", ["redis"], indirect=True),
    pytest.mark.xdist_group(__name__),
]

PAGE_DIR = Path(__file__).resolve().parents[2] / "clients" / "web-example"
# From upload to searchable, for a small text file on a busy 2-core machine.
READY_TIMEOUT_MS = 90_000

# Runs before the page's own scripts. Records every value each row's data-state took, in order
# (a MutationRecord's oldValue keeps a value that a later change in the same batch replaced),
# and the values that were current when the browser drew a frame: what a person saw.
RECORD_STATES = """
window.__states = {};
window.__painted = {};
const remember = (list, value) => {
  if (value != null && list[list.length - 1] !== value) list.push(value);
};
new MutationObserver((records) => {
  const rows = new Set();
  for (const r of records) {
    remember((window.__states[r.target.dataset.documentId] ||= []), r.oldValue);
    rows.add(r.target);
  }
  for (const row of rows) {
    const id = row.dataset.documentId;
    remember(window.__states[id], row.dataset.state);
    requestAnimationFrame(() => remember((window.__painted[id] ||= []), row.dataset.state));
  }
}).observe(document, {
  subtree: true, attributes: true, attributeFilter: ["data-state"], attributeOldValue: true,
});
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves the page's files; the test's output needs no access log."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _serve_page(origin: str) -> Iterator[str]:
    """Serves clients/web-example at `origin` (http://127.0.0.1:PORT) from a thread."""
    parts = urlsplit(origin)
    handler = functools.partial(_QuietHandler, directory=str(PAGE_DIR))
    server = ThreadingHTTPServer((parts.hostname or "127.0.0.1", parts.port or 80), handler)
    thread = threading.Thread(target=server.serve_forever, name=f"page {origin}", daemon=True)
    thread.start()
    try:
        yield origin
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def page_origin(stack: Stack) -> Iterator[str]:
    """The page, served from the origin that the stack's gateway allows (CORS)."""
    with _serve_page(stack.web_origin) as origin:
        yield origin


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless; Playwright never downloads a browser of its own here."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail(
            "chromium is not installed: run `bash scripts/ensure_browser.sh` (make test does)"
        )
    # Chromium's sandbox cannot start as root (CI and containers run as root).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, headless=True, args=args)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.add_init_script(RECORD_STATES)
    p = context.new_page()
    yield p
    context.close()


def open_page(page: Page, origin: str, gateway_url: str) -> None:
    page.goto(f"{origin}/index.html?gateway={gateway_url}")
    expect(page.get_by_test_id("gateway-url")).to_have_value(gateway_url)


def row_of(page: Page, document_id: str) -> Any:
    return page.locator(f'[data-testid="doc-row"][data-document-id="{document_id}"]')


def test_upload_shows_processing_at_once_then_ready_from_the_event_stream_then_search(
    page: Page, page_origin: str, stack: Stack, tmp_path: Path
) -> None:
    marker = f"okapi{uuid.uuid4().hex[:10]}"
    doc = tmp_path / f"web-{marker}.txt"
    sentence = f"The browser example uploaded this note about okapis; its marker is {marker}."
    doc.write_text(sentence + " Okapis live in the rainforests of the Congo basin.\n")
    open_page(page, page_origin, stack.http_url)
    # This stack runs with auth off, so the gateway ignores the key: it is here to check that
    # the page sends it on every call and that the gateway's CORS lets the header through.
    key = "rl_browser_example_key"
    page.get_by_test_id("api-key").fill(key)
    calls: list[Request] = []
    page.on("request", lambda r: calls.append(r) if r.url.startswith(stack.http_url) else None)
    # A reload would lose this, along with every row.
    page.evaluate("window.__loadedOnce = true")

    page.get_by_test_id("file-input").set_input_files(doc)
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/v1/documents")
    ) as upload:
        page.get_by_test_id("upload-button").click()
    assert upload.value.status == 200, upload.value.text()
    row = row_of(page, doc.name)
    job_id = upload.value.json()["job"]["jobId"]
    expect(row.get_by_test_id("doc-job")).to_have_text(job_id)

    status = row.get_by_test_id("doc-status")
    expect(status).to_have_text(re.compile(r"^ready \(\d+ chunks?\)$"), timeout=READY_TIMEOUT_MS)
    states = page.evaluate("window.__states")[doc.name]
    assert states == ["uploading", "processing", "ready"], states
    # "processing" was drawn on screen, not only set and replaced before the next frame.
    painted = page.evaluate("window.__painted")[doc.name]
    assert "processing" in painted, painted
    assert page.evaluate("window.__loadedOnce") is True, "the page was reloaded"

    page.get_by_test_id("search-query").fill(sentence)
    page.get_by_test_id("search-these").check()
    page.get_by_test_id("search-button").click()
    hit = page.get_by_test_id("hit").first
    expect(hit).to_contain_text(marker)
    expect(hit).to_have_attribute("data-document-id", doc.name)
    expect(page.get_by_test_id("message")).to_be_empty()

    made = {(r.method, r.url.removeprefix(stack.http_url)) for r in calls}
    assert made == {
        ("POST", "/v1/documents"),
        ("GET", f"/v1/jobs/{job_id}:watch"),
        ("POST", "/v1/search"),
    }, made
    assert {r.all_headers().get("authorization") for r in calls} == {f"Bearer {key}"}


def test_an_empty_file_shows_the_gateways_error_in_words(
    page: Page, page_origin: str, stack: Stack, tmp_path: Path
) -> None:
    doc = tmp_path / f"web-empty-{uuid.uuid4().hex[:8]}.txt"
    doc.write_bytes(b"")
    open_page(page, page_origin, stack.http_url)

    page.get_by_test_id("file-input").set_input_files(doc)
    page.get_by_test_id("upload-button").click()

    message = page.get_by_test_id("message")
    expect(message).to_have_text(
        "The gateway refused the upload (400 INVALID_ARGUMENT): content: is empty"
    )
    expect(row_of(page, doc.name).get_by_test_id("doc-status")).to_have_text("not accepted")


def test_searching_only_uploaded_documents_before_any_upload_says_so_and_asks_nothing(
    page: Page, page_origin: str, stack: Stack
) -> None:
    # An empty document filter means "every document" to the gateway, so the page must not
    # send the search at all.
    open_page(page, page_origin, stack.http_url)
    calls: list[Request] = []
    page.on("request", lambda r: calls.append(r) if r.url.startswith(stack.http_url) else None)
    page.get_by_test_id("search-query").fill("okapis")
    page.get_by_test_id("search-these").check()
    page.get_by_test_id("search-button").click()
    expect(page.get_by_test_id("message")).to_have_text(
        "Nothing was uploaded here yet: upload a document, or untick the box to search them all."
    )
    assert calls == []
    expect(page.get_by_test_id("hit")).to_have_count(0)


def test_a_page_from_an_origin_the_gateway_does_not_allow_says_what_to_check(
    page: Page, stack: Stack
) -> None:
    # Another port is another origin, one that RAGLINE_HTTP_CORS_ORIGINS does not list. A search
    # sends JSON, so the browser asks first (a preflight) and the gateway's refusal stops it
    # there: the shared stack gets no document from this test.
    with _serve_page(f"http://127.0.0.1:{free_port()}") as origin:
        open_page(page, origin, stack.http_url)
        page.get_by_test_id("search-query").fill("anything at all")
        page.get_by_test_id("search-button").click()
        expect(page.get_by_test_id("message")).to_have_text(
            f"No answer from the gateway at {stack.http_url} that this page may read. Check "
            "that it runs with RAGLINE_HTTP_ADDRESS set and that RAGLINE_HTTP_CORS_ORIGINS "
            f"allows this page's origin ({origin})."
        )


# Server-sent events as a network may cut them: a CRLF split between two reads, a comment, an
# event of two data lines, an event without a type, a field without a value, a character split
# between two reads (as bytes), a final event the server closed without a blank line after
# (dropped, as the SSE specification says).
SSE_CHUNKS: list[str | list[int]] = [
    "event: job\r",
    '\ndata: {"state":"JOB_STATE_ACTIVE"}\r\n\r\n: keepalive\n\n',
    "event: job\ndata: line one\nda",
    "ta: line two\n\ndata:plain\n\nevent\ndata\n\n",
    # "data: café": the read ends after the first of é's two bytes.
    list("data: café\n\n".encode()[:10]),
    list("data: café\n\n".encode()[10:]),
    "event: job\ndata: cut off",
]


def test_the_pages_event_reader_splits_events_as_the_sse_specification_does(
    page: Page, page_origin: str
) -> None:
    open_page(page, page_origin, "http://127.0.0.1:9")
    events = page.evaluate(
        """async (chunks) => {
            const { readEvents } = await import("./sse.js");
            const bytes = new TextEncoder();
            const body = new ReadableStream({
                start(controller) {
                    for (const c of chunks) {
                        controller.enqueue(typeof c === "string" ? bytes.encode(c) : new Uint8Array(c));
                    }
                    controller.close();
                },
            });
            const seen = [];
            for await (const e of readEvents(body)) seen.push([e.type, e.data]);
            return seen;
        }""",
        SSE_CHUNKS,
    )
    assert events == [
        ["job", '{"state":"JOB_STATE_ACTIVE"}'],
        ["job", "line one\nline two"],
        ["message", "plain"],
        ["message", ""],
        ["message", "café"],
    ]
