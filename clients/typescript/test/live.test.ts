// The client against a running ragline stack: RAGLINE_GATEWAY names its gateway (host:port).
// tests/e2e/test_typescript_client.py starts one and runs these through `npm test`.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  RaglineClient,
  type Job,
  type JobState,
} from "../src/index.js";

const GATEWAY = process.env.RAGLINE_GATEWAY;
// One document takes a few seconds on a busy CPU; leave room for a loaded machine.
const JOB_TIMEOUT_MS = 120_000;
const ORDER: JobState[] = ["accepted", "active", "completed"];

describe(`the client against the gateway at ${GATEWAY ?? "(RAGLINE_GATEWAY unset)"}`, () => {
  let client: RaglineClient;
  let dir: string;
  const run = randomUUID().slice(0, 8);

  before(() => {
    if (!GATEWAY) {
      throw new Error(
        "set RAGLINE_GATEWAY to a running gateway's host:port (e.g. start one with `ragline up`); " +
          "`make test` starts one for these tests",
      );
    }
    client = new RaglineClient(GATEWAY, { timeoutMs: 60_000 });
    dir = mkdtempSync(join(tmpdir(), "ragline-ts-"));
  });
  after(() => {
    client?.close();
    if (dir) {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("ingest a file, watch it to completion, search, describe and delete it", async () => {
    const documentId = `ts-notes-${run}.md`;
    const path = join(dir, documentId);
    writeFileSync(
      path,
      `# Lighthouse keeping ${run}\n\nThe keeper trims the lamp's wick at dusk and logs passing ships.\n`,
    );
    const job = await client.ingestFile(path, {
      metadata: { uploadedBy: "ts-test", attributes: { lang: "en" } },
    });
    assert.equal(job.documentId, documentId);
    assert.equal(job.state, "accepted");
    assert.ok(job.createTime instanceof Date);

    const seen: Job[] = [];
    for await (const update of client.watch(job.jobId, { timeoutMs: JOB_TIMEOUT_MS })) {
      seen.push(update);
    }
    const last = seen.at(-1)!;
    assert.equal(last.state, "completed", `the job ended ${last.state}: ${last.lastError}`);
    const ranks = seen.map((j) => ORDER.indexOf(j.state));
    assert.deepEqual(
      ranks,
      [...ranks].sort(),
      `states went backwards: ${seen.map((j) => j.state)}`,
    );
    assert.ok(last.finishTime instanceof Date && last.finishTime >= last.createTime!);
    assert.ok(last.progress.chunksTotal >= 1);
    assert.equal(last.progress.chunksIndexed, last.progress.chunksTotal);

    const hits = await client.search(`who trims the lamp wick ${run}`, {
      topK: 3,
      documentIds: [documentId],
    });
    assert.ok(hits.length >= 1, "the search found nothing in the document");
    assert.equal(hits[0]!.documentId, documentId);
    assert.match(hits[0]!.text, /trims the lamp/);
    assert.equal(hits[0]!.metadata.originalFilename, documentId);
    assert.equal(hits[0]!.metadata.uploadedBy, "ts-test");
    assert.deepEqual(hits[0]!.metadata.attributes, { lang: "en" });
    assert.ok(hits[0]!.score > 0 && hits[0]!.score <= 1);

    const info = await client.getDocument(documentId);
    assert.deepEqual(info, {
      documentId,
      liveVersion: 1,
      latestVersion: 1,
      chunkCount: last.progress.chunksTotal,
    });
    // A completed job cannot be cancelled.
    await assert.rejects(client.cancel(job.jobId), FailedPreconditionError);

    assert.equal(await client.delete(documentId), info.chunkCount);
    await assert.rejects(client.getDocument(documentId), NotFoundError);
    assert.deepEqual(await client.search(`lamp wick ${run}`, { documentIds: [documentId] }), []);
  });

  test("ingestMany queues a batch whole and wait follows each job", async () => {
    const ids = [`ts-a-${run}`, `ts-b-${run}`];
    const jobs = await client.ingestMany([
      { content: `Tide tables for the harbour ${run}.`, documentId: ids[0]! },
      {
        content: `<p>Buoy colours and their meaning ${run}.</p>`,
        documentId: ids[1]!,
        contentType: "text/html",
      },
    ]);
    assert.deepEqual(
      jobs.map((j) => j.documentId),
      ids,
    );
    const done = await Promise.all(
      jobs.map((j) => client.wait(j.jobId, { timeoutMs: JOB_TIMEOUT_MS })),
    );
    assert.deepEqual(
      done.map((j) => j.state),
      ["completed", "completed"],
    );
    for (const id of ids) {
      await client.delete(id);
    }
  });

  test("cancel stops a job in flight", async () => {
    // Enough short chunks that embedding them takes far longer than the cancel does.
    const paragraphs = Array.from(
      { length: 400 },
      (_, i) => `Paragraph ${i} of the long log ${run}: ships, weather and lamp oil.`,
    );
    const documentId = `ts-long-${run}`;
    const job = await client.ingest(paragraphs.join("\n\n"), {
      documentId,
      chunkSize: 16,
      chunkOverlap: 0,
    });
    const cancelled = await client.cancel(job.jobId);
    assert.equal(cancelled.state, "cancelled");
    assert.equal((await client.wait(job.jobId, { timeoutMs: JOB_TIMEOUT_MS })).state, "cancelled");
    // Cancelling again returns the job unchanged.
    assert.equal((await client.cancel(job.jobId)).state, "cancelled");
    assert.deepEqual(await client.search(`long log ${run}`, { documentIds: [documentId] }), []);
  });

  test("bad input gets typed errors that name the problem", async () => {
    const empty = await client.ingest("some text", { documentId: "" }).catch((e: unknown) => e);
    assert.ok(
      empty instanceof InvalidArgumentError,
      `expected InvalidArgumentError, got ${String(empty)}`,
    );
    assert.equal(empty.field, "document_id");
    assert.equal(empty.code, "INVALID_ARGUMENT");
    assert.match(empty.message, /document_id/);

    const batch = await client
      .ingestMany([
        { content: "fine", documentId: `ts-ok-${run}` },
        { content: "fine", documentId: `ts-bad-${run}`, contentType: "image/png" },
      ])
      .catch((e: unknown) => e);
    assert.ok(batch instanceof InvalidArgumentError, String(batch));
    assert.equal(batch.field, "documents[1].content_type");
    await assert.rejects(client.getDocument(`ts-ok-${run}`), NotFoundError); // none was queued

    await assert.rejects(client.getJob(`no-such-job-${run}`), NotFoundError);
    await assert.rejects(client.wait(`no-such-job-${run}`, { timeoutMs: 10_000 }), NotFoundError);
    await assert.rejects(client.cancel(`no-such-job-${run}`), NotFoundError);

    const path = join(dir, "picture.png");
    writeFileSync(path, "not a document");
    await assert.rejects(
      client.ingestFile(path),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === "content_type",
    );
    await assert.rejects(client.listDeadLetters("compost" as "chunk"), RangeError);
  });

  test("a document the chunker cannot read lands in the dead letters, to be requeued or purged", async () => {
    const documentId = `ts-broken-${run}.pdf`;
    const job = await client.ingest(Buffer.from("%PDF-1.7\nthis is not really a pdf"), {
      documentId,
      contentType: "application/pdf",
    });
    const failed = await client.wait(job.jobId, { timeoutMs: JOB_TIMEOUT_MS });
    assert.equal(failed.state, "failed");
    assert.equal(failed.lastErrorStage, "chunk");

    const ours = async (): Promise<string[]> => {
      const found: string[] = [];
      for await (const letter of client.iterDeadLetters("chunk", { pageSize: 50 })) {
        if (letter.jobId === job.jobId) {
          assert.equal(letter.stage, "chunk");
          assert.equal(letter.documentId, documentId);
          assert.ok(letter.lastFailureTime instanceof Date);
          found.push(letter.deadLetterId);
        }
      }
      return found;
    };
    const first = await ours();
    assert.equal(first.length, 1);
    assert.equal(await client.requeueDeadLetters("chunk", first), 1);
    // The requeued task fails again and comes back under a new id.
    let again: string[] = [];
    for (const stop = Date.now() + JOB_TIMEOUT_MS; again.length === 0 && Date.now() < stop;) {
      await new Promise((r) => setTimeout(r, 300));
      again = await ours();
    }
    assert.equal(again.length, 1, "the requeued task did not come back to the dead letters");
    assert.equal(await client.purgeDeadLetters("chunk", again), 1);
    assert.deepEqual(await ours(), []);
    assert.equal(await client.purgeDeadLetters("chunk", again), 0);
  });
});
