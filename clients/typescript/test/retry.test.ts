// The retry policy and the error details against a real grpc-js server in this process, which
// answers as a busy or briefly unreachable gateway would.

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { inspect } from "node:util";
import {
  Metadata,
  Server,
  ServerCredentials,
  status,
  type sendUnaryData,
  type ServerErrorResponse,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { Duration } from "../src/gen/google/protobuf/duration.js";
import { BadRequest, RetryInfo } from "../src/gen/google/rpc/error_details.js";
import { Status } from "../src/gen/google/rpc/status.js";
import {
  IngestServiceService,
  type GetJobRequest,
  type GetJobResponse,
  type IngestRequest,
  type IngestResponse,
  type WatchJobRequest,
  type WatchJobResponse,
} from "../src/gen/ragline/v1/ingest_service.js";
import { JobState, type Job as JobMessage } from "../src/gen/ragline/v1/job.js";
import {
  InvalidArgumentError,
  NotFoundError,
  RaglineClient,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  type ClientOptions,
} from "../src/index.js";
import { retryDelayMs, retryPolicy } from "../src/retry.js";

/** What the server does with the next calls, in order; an empty script answers OK. */
type Step = { fail: ServerErrorResponse } | "ok";

function jobMessage(state: JobState): JobMessage {
  return {
    jobId: "job-1",
    documentId: "doc-1",
    documentVersion: 1,
    state,
    progress: {
      chunksTotal: 2,
      chunksEmbedded: 2,
      chunksIndexed: state === JobState.JOB_STATE_COMPLETED ? 2 : 0,
    },
    lastError: "",
    lastErrorStage: 0,
    attempts: 1,
    requestId: "",
    createTime: new Date("2026-01-02T03:04:05Z"),
    updateTime: new Date("2026-01-02T03:04:06Z"),
    finishTime: undefined,
    stuck: false,
  };
}

/** A failed status carrying `details` in grpc-status-details-bin, as grpcio-status sends them. */
function richError(
  code: status,
  message: string,
  details: { typeUrl: string; value: Uint8Array }[],
): ServerErrorResponse {
  const trailers = new Metadata();
  const body = Status.encode({
    code,
    message,
    details: details.map((d) => ({ typeUrl: d.typeUrl, value: Buffer.from(d.value) })),
  });
  trailers.set("grpc-status-details-bin", Buffer.from(body.finish()));
  return Object.assign(new Error(message), { code, details: message, metadata: trailers });
}

function retryInfo(ms: number): { typeUrl: string; value: Uint8Array } {
  const retryDelay: Duration = { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
  return {
    typeUrl: "type.googleapis.com/google.rpc.RetryInfo",
    value: RetryInfo.encode({ retryDelay }).finish(),
  };
}

class FakeGateway {
  readonly server = new Server();
  script: Step[] = [];
  calls: { at: number; metadata: Metadata; request: unknown }[] = [];
  watchScript: (JobState | "drop")[][] = [];
  address = "";

  private next(request: unknown, metadata: Metadata): Step {
    this.calls.push({ at: Date.now(), metadata, request });
    return this.script.shift() ?? "ok";
  }

  async start(): Promise<void> {
    const handlers = {
      ingest: (
        call: ServerUnaryCall<IngestRequest, IngestResponse>,
        callback: sendUnaryData<IngestResponse>,
      ) => {
        const step = this.next(call.request, call.metadata);
        if (step === "ok") {
          callback(null, { job: jobMessage(JobState.JOB_STATE_ACCEPTED) });
        } else {
          callback(step.fail, null);
        }
      },
      getJob: (
        call: ServerUnaryCall<GetJobRequest, GetJobResponse>,
        callback: sendUnaryData<GetJobResponse>,
      ) => {
        const step = this.next(call.request, call.metadata);
        if (step === "ok") {
          callback(null, { job: jobMessage(JobState.JOB_STATE_ACTIVE) });
        } else {
          callback(step.fail, null);
        }
      },
      watchJob: (call: ServerWritableStream<WatchJobRequest, WatchJobResponse>) => {
        this.calls.push({ at: Date.now(), metadata: call.metadata, request: call.request });
        for (const state of this.watchScript.shift() ?? []) {
          if (state === "drop") {
            call.emit("error", { code: status.UNAVAILABLE, details: "the gateway is restarting" });
            return;
          }
          call.write({ job: jobMessage(state) });
        }
        call.end();
      },
    };
    this.server.addService(
      IngestServiceService,
      handlers as unknown as UntypedServiceImplementation,
    );
    const port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      );
    });
    this.address = `127.0.0.1:${port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.tryShutdown(() => resolve()));
  }
}

describe("retries against a local gRPC server", () => {
  const gateway = new FakeGateway();
  const clients: RaglineClient[] = [];
  const connect = (options: ClientOptions = {}): RaglineClient => {
    const client = new RaglineClient(gateway.address, {
      retry: { initialBackoffMs: 20, maxBackoffMs: 50 },
      ...options,
    });
    clients.push(client);
    return client;
  };

  before(() => gateway.start());
  after(async () => {
    clients.forEach((c) => c.close());
    await gateway.stop();
  });
  beforeEach(() => {
    gateway.script = [];
    gateway.calls = [];
    gateway.watchScript = [];
  });

  test("RESOURCE_EXHAUSTED with a RetryInfo delay is retried after that delay", async () => {
    gateway.script = [
      { fail: richError(status.RESOURCE_EXHAUSTED, "the chunk queue is full", [retryInfo(400)]) },
      "ok",
    ];
    const job = await connect().getJob("job-1");
    assert.equal(job.state, "active");
    assert.equal(gateway.calls.length, 2);
    const waited = gateway.calls[1]!.at - gateway.calls[0]!.at;
    assert.ok(waited >= 390, `retried after ${waited} ms, before the 400 ms the server asked for`);
    assert.ok(waited < 2000, `retried after ${waited} ms`);
  });

  test("without retries the error carries the delay the gateway asked for", async () => {
    gateway.script = [
      { fail: richError(status.RESOURCE_EXHAUSTED, "the chunk queue is full", [retryInfo(1500)]) },
    ];
    const err = await connect({ retry: false })
      .getJob("job-1")
      .then(
        () => assert.fail("the call should have failed"),
        (e: unknown) => e,
      );
    assert.ok(err instanceof ResourceExhaustedError, String(err));
    assert.equal(err.retryAfterMs, 1500);
    assert.equal(err.code, "RESOURCE_EXHAUSTED");
    assert.match(err.message, /the chunk queue is full/);
    assert.equal(gateway.calls.length, 1);
  });

  test("a RetryInfo delay past the call's deadline fails at once instead of waiting", async () => {
    gateway.script = [
      { fail: richError(status.RESOURCE_EXHAUSTED, "busy", [retryInfo(10_000)]) },
      "ok",
    ];
    const started = Date.now();
    await assert.rejects(connect({ timeoutMs: 2000 }).getJob("job-1"), ResourceExhaustedError);
    assert.ok(
      Date.now() - started < 1500,
      "the client waited although the deadline would pass first",
    );
    assert.equal(gateway.calls.length, 1);
  });

  test("UNAVAILABLE is retried with backoff until the attempts run out", async () => {
    const down = (): Step => ({
      fail: { code: status.UNAVAILABLE, details: "restarting", name: "", message: "" },
    });
    gateway.script = [down(), down(), "ok"];
    assert.equal((await connect().getJob("job-1")).jobId, "job-1");
    assert.equal(gateway.calls.length, 3);

    gateway.calls = [];
    gateway.script = [down(), down(), down()];
    const err = await connect({ retry: { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 1 } })
      .getJob("job-1")
      .catch((e: unknown) => e);
    assert.ok(err instanceof UnavailableError, String(err));
    assert.match(err.message, /unavailable: restarting/);
    assert.equal(gateway.calls.length, 3);
  });

  test("other errors are not retried; BadRequest names the field", async () => {
    const violation = BadRequest.encode({
      fieldViolations: [{ field: "document_id", description: "must not be empty" }],
    }).finish();
    gateway.script = [
      {
        fail: richError(status.INVALID_ARGUMENT, "document_id: must not be empty", [
          { typeUrl: "type.googleapis.com/google.rpc.BadRequest", value: violation },
        ]),
      },
    ];
    const err = await connect()
      .ingest("hello", { documentId: "" })
      .catch((e: unknown) => e);
    assert.ok(err instanceof InvalidArgumentError, String(err));
    assert.equal(err.field, "document_id");
    assert.deepEqual(err.violations, [{ field: "document_id", description: "must not be empty" }]);
    assert.equal(gateway.calls.length, 1);

    gateway.calls = [];
    gateway.script = [
      { fail: { code: status.NOT_FOUND, details: "job nope not found", name: "", message: "" } },
    ];
    await assert.rejects(
      connect().getJob("nope"),
      (e: unknown) => e instanceof NotFoundError && e.message === "job nope not found",
    );
    assert.equal(gateway.calls.length, 1);
  });

  test("a retried ingest keeps one request id, so the gateway makes one job", async () => {
    gateway.script = [
      { fail: { code: status.UNAVAILABLE, details: "restarting", name: "", message: "" } },
      "ok",
    ];
    await connect().ingest("hello", { documentId: "doc-1" });
    const ids = gateway.calls.map((c) => (c.request as IngestRequest).requestId);
    assert.equal(ids.length, 2);
    assert.ok(ids[0], "the client sent no request id");
    assert.equal(ids[0], ids[1]);
  });

  test("the API key goes with every call as a bearer token", async () => {
    await connect({ apiKey: "rl_test_secret", metadata: { "x-trace": "t1" } }).getJob("job-1");
    const sent = gateway.calls[0]!.metadata;
    assert.deepEqual(sent.get("authorization"), ["Bearer rl_test_secret"]);
    assert.deepEqual(sent.get("x-trace"), ["t1"]);
    assert.throws(() => connect({ apiKey: "has space" }), /apiKey holds spaces/);
  });

  test("the API key shows neither in a logged client nor in an error", async () => {
    const client = connect({ apiKey: "rl_test_secret" });
    assert.doesNotMatch(inspect(client, { showHidden: true, depth: 10 }), /rl_test_secret/);
    assert.match(inspect(client), /RaglineClient \{ address: "127\.0\.0\.1:\d+", tls: false \}/);
    gateway.script = [
      { fail: { code: status.UNAUTHENTICATED, details: "unknown API key", name: "", message: "" } },
    ];
    const err = await client.getJob("job-1").catch((e: unknown) => e);
    assert.ok(err instanceof UnauthenticatedError, String(err));
    assert.doesNotMatch(inspect(err, { depth: 10 }), /rl_test_secret/);
  });

  test("watch opens a dropped stream again and ends at the terminal state", async () => {
    gateway.watchScript = [
      [JobState.JOB_STATE_ACCEPTED, JobState.JOB_STATE_ACTIVE, "drop"],
      [JobState.JOB_STATE_ACTIVE, JobState.JOB_STATE_COMPLETED],
    ];
    const states: string[] = [];
    for await (const job of connect().watch("job-1")) {
      states.push(job.state);
      assert.ok(job.createTime instanceof Date);
    }
    assert.deepEqual(states, ["accepted", "active", "active", "completed"]);
    assert.equal(gateway.calls.length, 2);
  });

  test("an AbortSignal cancels a wait between retries", async () => {
    gateway.script = [
      { fail: richError(status.RESOURCE_EXHAUSTED, "busy", [retryInfo(5000)]) },
      "ok",
    ];
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("the user left")), 100);
    const started = Date.now();
    await assert.rejects(
      connect({ timeoutMs: 20_000 }).getJob("job-1", { signal: controller.signal }),
      { name: "CancelledError", code: "CANCELLED" },
    );
    assert.ok(Date.now() - started < 2000);
  });
});

describe("the backoff", () => {
  test("grows exponentially up to its ceiling, with full jitter", () => {
    const policy = retryPolicy({ initialBackoffMs: 100, maxBackoffMs: 1000, backoffMultiplier: 2 });
    const error = new UnavailableError("down", { code: "UNAVAILABLE" });
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => retryDelayMs(policy, n, error, () => 1)),
      [100, 200, 400, 800, 1000],
    );
    assert.equal(
      retryDelayMs(policy, 3, error, () => 0),
      0,
    );
    assert.equal(
      retryDelayMs(
        policy,
        3,
        new ResourceExhaustedError("busy", { retryAfterMs: 3000 }),
        () => 0.5,
      ),
      3000,
    );
  });

  test("rejects settings that make no sense", () => {
    assert.throws(() => retryPolicy({ maxAttempts: 0 }), /maxAttempts/);
    assert.throws(() => retryPolicy({ backoffMultiplier: 0.5 }), /backoffMultiplier/);
    assert.equal(retryPolicy(false).maxAttempts, 1);
  });
});
