// The README's Next.js route handlers (examples/nextjs), called as Next.js calls them, with a web
// Request, against the live stack that RAGLINE_GATEWAY names.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { before, describe, test } from "node:test";
import { POST } from "../examples/nextjs/app/api/documents/route.js";
import { GET } from "../examples/nextjs/app/api/jobs/[id]/events/route.js";

interface JobEvent {
  jobId: string;
  state: string;
  progress: { chunksTotal: number; chunksIndexed: number };
}

function upload(name: string, text: string, type: string): Request {
  const form = new FormData();
  form.append("file", new Blob([text], { type }), name);
  return new Request("http://localhost/api/documents", { method: "POST", body: form });
}

/** The events of a finished server-sent event stream, in order. */
function parseEvents(body: string): { event: string; data: unknown }[] {
  return body
    .split("\n\n")
    .filter((block) => block.trim())
    .map((block) => {
      const fields = Object.fromEntries(
        block
          .split("\n")
          .map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 2)]),
      );
      return { event: fields.event ?? "message", data: JSON.parse(fields.data ?? "null") };
    });
}

describe("the Next.js example's route handlers", () => {
  const run = randomUUID().slice(0, 8);
  before(() =>
    assert.ok(process.env.RAGLINE_GATEWAY, "set RAGLINE_GATEWAY to a running gateway's host:port"),
  );

  test("an upload answers 202 with the job at once, and the event stream follows it to completed", async () => {
    const name = `ts-next-${run}.md`;
    const response = await POST(
      upload(name, `# Harbour rules ${run}\n\nNo anchoring in the channel.\n`, "text/markdown"),
    );
    assert.equal(response.status, 202);
    const accepted = (await response.json()) as {
      jobId: string;
      documentId: string;
      state: string;
    };
    assert.equal(accepted.documentId, name);
    assert.equal(accepted.state, "accepted");

    const events = await GET(new Request(`http://localhost/api/jobs/${accepted.jobId}/events`), {
      params: Promise.resolve({ id: accepted.jobId }),
    });
    assert.equal(events.headers.get("content-type"), "text/event-stream");
    const received = parseEvents(await events.text());
    assert.ok(received.length >= 1);
    assert.ok(
      received.every((e) => e.event === "job"),
      JSON.stringify(received),
    );
    const last = received.at(-1)!.data as JobEvent;
    assert.equal(last.jobId, accepted.jobId);
    assert.equal(last.state, "completed");
    assert.equal(last.progress.chunksIndexed, last.progress.chunksTotal);
  });

  test("bad uploads get 400 naming the problem, an unknown job an error event", async () => {
    const missing = await POST(
      new Request("http://localhost/api/documents", { method: "POST", body: new FormData() }),
    );
    assert.equal(missing.status, 400);
    assert.match(((await missing.json()) as { error: string }).error, /field 'file'/);

    const picture = await POST(upload(`ts-next-${run}.png`, "not an image", "image/png"));
    assert.equal(picture.status, 400);
    assert.equal(((await picture.json()) as { field: string }).field, "content_type");

    const unknown = await GET(new Request("http://localhost/api/jobs/nope/events"), {
      params: Promise.resolve({ id: `nope-${run}` }),
    });
    const received = parseEvents(await unknown.text());
    assert.equal(received.length, 1);
    assert.equal(received[0]!.event, "error");
    assert.equal((received[0]!.data as { code: string }).code, "NOT_FOUND");
  });
});
