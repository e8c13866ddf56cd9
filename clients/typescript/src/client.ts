// RaglineClient: a small promise-based facade over the generated IngestService stub.

import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { inspect } from "node:util";
import {
  type CallOptions as GrpcCallOptions,
  type ChannelCredentials,
  type ClientOptions as GrpcClientOptions,
  type ClientUnaryCall,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import {
  deadLetterPageFromProto,
  documentInfoFromProto,
  documentToProto,
  hitFromProto,
  jobFromProto,
  stageToProto,
} from "./convert.js";
import {
  cancelled,
  DeadlineExceededError,
  fromServiceError,
  InvalidArgumentError,
  isServiceError,
  RaglineClientError,
} from "./errors.js";
import { IngestServiceClient, type WatchJobResponse } from "./gen/ragline/v1/ingest_service.js";
import { nextRetryDelay, pause, retryPolicy, withRetries, type RetryPolicy } from "./retry.js";
import {
  CONTENT_TYPES,
  guessContentType,
  isTerminal,
  type DeadLetter,
  type DeadLetterPage,
  type Document,
  type DocumentInfo,
  type DocumentOptions,
  type Hit,
  type Job,
  type Stage,
} from "./types.js";

export const DEFAULT_GATEWAY = "127.0.0.1:50051";

/** How long each unary call may take, retries included, unless the client or the call says. */
export const DEFAULT_TIMEOUT_MS = 30_000;

// Documents may be up to 64 MiB; leave room for the rest of the request.
const MAX_MESSAGE_BYTES = 80 * 1024 * 1024;
// How often `wait` polls GetJob when the gateway cannot stream.
const POLL_INTERVAL_MS = 500;

/** How to reach and talk to a gateway; every field is optional. */
export interface ClientOptions {
  /**
   * The gateway's API key (`rl_...`), sent with every call, streams included, as
   * `authorization: Bearer <apiKey>`. Unset sends none (a gateway without auth). It never appears
   * in an error message.
   */
  apiKey?: string;
  /** PEM CA certificate(s) to verify the gateway with; turns TLS on. */
  ca?: string | Buffer;
  /** A file holding `ca`. */
  caFile?: string;
  /** A PEM client certificate (chain) for mutual TLS; needs `key`/`keyFile`. */
  cert?: string | Buffer;
  /** A file holding `cert`. */
  certFile?: string;
  /** The client certificate's unencrypted PEM private key. */
  key?: string | Buffer;
  /** A file holding `key`. */
  keyFile?: string;
  /** TLS trusting the system's CAs, when no `ca` is given. Plaintext is the default. */
  tls?: boolean;
  /** Ready-made channel credentials instead of all the TLS options above. */
  credentials?: ChannelCredentials;
  /** Metadata sent with every call. */
  metadata?: Record<string, string>;
  /** How long each unary call may take, retries included; null waits forever. 30 s by default. */
  timeoutMs?: number | null;
  /** How UNAVAILABLE and RESOURCE_EXHAUSTED are retried; false turns retrying off. */
  retry?: Partial<RetryPolicy> | false;
  /** Further grpc-js channel options, e.g. `{ "grpc.keepalive_time_ms": 30000 }`. */
  channelOptions?: Partial<GrpcClientOptions>;
}

/** What any one call may say for itself. */
export interface CallOptions {
  /** Overrides the client's `timeoutMs` for this call; null waits forever. */
  timeoutMs?: number | null;
  /** Cancels the call (and any wait between retries): it rejects with a CancelledError. */
  signal?: AbortSignal;
}

/** Options for ingesting one document. */
export interface IngestOptions extends DocumentOptions, CallOptions {
  documentId: string;
}

/** Options for ingesting a file; `documentId` defaults to the file's name. */
export interface IngestFileOptions extends DocumentOptions, CallOptions {
  documentId?: string;
}

/** Options for a search. */
export interface SearchOptions extends CallOptions {
  /** How many hits, 1 to 1000; 10 by default. */
  topK?: number;
  /** Search only the chunks of these documents. */
  documentIds?: readonly string[];
}

/** Options for following a job. */
export interface WatchOptions {
  /** Bounds the whole watch or wait (DeadlineExceededError); unset waits as long as it takes. */
  timeoutMs?: number | null;
  /** Stops following the job: the iterator or the wait rejects with a CancelledError. */
  signal?: AbortSignal;
}

/** Options for a page of dead letters. */
export interface ListDeadLettersOptions extends CallOptions {
  /** 1 to 1000; 100 by default. */
  pageSize?: number;
  /** The previous page's `nextPageToken`; "" (the default) for the first page. */
  pageToken?: string;
}

// A generated stub method, called with all four arguments.
type Unary<Req, Resp> = (
  request: Req,
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response: Resp) => void,
) => ClientUnaryCall;

/**
 * A connection to a ragline gateway. Every method rejects with a RaglineClientError subclass when
 * the call fails; call `close()` when done.
 *
 * ```ts
 * const client = new RaglineClient("127.0.0.1:50051", { apiKey: process.env.RAGLINE_API_KEY });
 * const job = await client.ingest("Hello.", { documentId: "hello" });
 * await client.wait(job.jobId, { timeoutMs: 60_000 });
 * const hits = await client.search("greeting");
 * ```
 */
export class RaglineClient {
  /** The gateway's `host:port`. */
  readonly address: string;
  readonly #stub: IngestServiceClient;
  readonly #metadata: Metadata;
  readonly #timeoutMs: number | null;
  readonly #retry: RetryPolicy;
  readonly #tls: boolean;

  /**
   * Opens a channel to the gateway at `address` (it connects on the first call). Throws
   * RangeError or TypeError for options that make no sense, and the file system's error for a
   * TLS file that cannot be read.
   */
  constructor(address: string = DEFAULT_GATEWAY, options: ClientOptions = {}) {
    this.address = address;
    this.#metadata = callMetadata(options.metadata ?? {}, options.apiKey);
    this.#timeoutMs = checkTimeout(
      options.timeoutMs === undefined ? DEFAULT_TIMEOUT_MS : options.timeoutMs,
    );
    this.#retry = retryPolicy(options.retry);
    const { credentials, tls } = channelCredentials(options);
    this.#tls = tls;
    this.#stub = new IngestServiceClient(address, credentials, {
      "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
      "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
      // grpc-js waits ever longer between reconnects to a gateway that is down (up to 120 s),
      // failing calls at once meanwhile; capped at 1 s, the default retries outlast the wait.
      "grpc.max_reconnect_backoff_ms": 1000,
      ...options.channelOptions,
    });
  }

  /** What console.log and util.inspect show: never the metadata, which holds the API key. */
  [inspect.custom](): string {
    return `RaglineClient { address: ${JSON.stringify(this.address)}, tls: ${this.#tls} }`;
  }

  /** Closes the channel; calls in flight are cancelled. */
  close(): void {
    this.#stub.close();
  }

  /**
   * Queues one document and returns its job at once, normally in state "accepted". Ingesting an
   * existing `documentId` again replaces that document. A retried call with the same `requestId`
   * returns the first call's job instead of making another.
   */
  async ingest(content: Uint8Array | string, options: IngestOptions): Promise<Job> {
    const request = documentToProto(withRequestId({ ...options, content }));
    const response = await this.unary(this.#stub.ingest.bind(this.#stub), request, options);
    return jobFromProto(response.job);
  }

  /**
   * Queues the file at `path`. `documentId` and `metadata.originalFilename` default to the file's
   * name and `contentType` to the one its extension implies (see CONTENT_TYPES): an
   * InvalidArgumentError for an extension ragline does not support when no `contentType` is given.
   */
  async ingestFile(path: string, options: IngestFileOptions = {}): Promise<Job> {
    const name = basename(path);
    const contentType = options.contentType ?? guessContentType(name);
    if (contentType === undefined) {
      const problem =
        `${path}: unsupported file type; use one of ${Object.keys(CONTENT_TYPES).join(", ")} ` +
        "or pass contentType";
      throw new InvalidArgumentError(problem, {
        violations: [{ field: "content_type", description: problem }],
      });
    }
    const content = await readFile(path);
    const metadata = {
      ...options.metadata,
      originalFilename: options.metadata?.originalFilename || name,
    };
    return this.ingest(content, {
      ...options,
      documentId: options.documentId ?? name,
      contentType,
      metadata,
    });
  }

  /**
   * Queues many documents in one call and returns their jobs in the same order. The gateway
   * validates the batch whole: if one document is invalid, none is queued (the error's `field`
   * names it, e.g. `documents[3].content_type`). One call carries at most 80 MiB and the gateway's
   * batch limit (1000 documents by default).
   */
  async ingestMany(documents: readonly Document[], options: CallOptions = {}): Promise<Job[]> {
    const request = { documents: documents.map((doc) => documentToProto(withRequestId(doc))) };
    const response = await this.unary(this.#stub.ingestBatch.bind(this.#stub), request, options);
    return response.jobs.map(jobFromProto);
  }

  /** The job's current state and progress. NotFoundError for an unknown job id. */
  async getJob(jobId: string, options: CallOptions = {}): Promise<Job> {
    const response = await this.unary(this.#stub.getJob.bind(this.#stub), { jobId }, options);
    return jobFromProto(response.job);
  }

  /**
   * Yields the job each time it changes, starting with its current state, and ends after a
   * terminal state. A dropped stream is opened again (as the retry policy allows), which yields
   * the current state again. NotFoundError for an unknown job id.
   *
   * ```ts
   * for await (const job of client.watch(jobId)) console.log(job.state, job.progress);
   * ```
   */
  async *watch(jobId: string, options: WatchOptions = {}): AsyncGenerator<Job, void, undefined> {
    const { signal } = options;
    const deadline = deadlineOf(checkTimeout(options.timeoutMs ?? null));
    for (let failures = 0; ;) {
      if (signal?.aborted) {
        throw cancelled(signal);
      }
      const stream = this.#stub.watchJob(
        { jobId },
        this.#metadata.clone(),
        deadline === undefined ? {} : { deadline },
      );
      // grpc-js emits the status of a cancelled stream as an 'error' event after the iterator has
      // let go of it; without a listener that event would crash the process.
      stream.on("error", () => {});
      const stop = (): void => stream.cancel();
      signal?.addEventListener("abort", stop, { once: true });
      try {
        for await (const response of stream as AsyncIterable<WatchJobResponse>) {
          failures = 0;
          const job = jobFromProto(response.job);
          yield job;
          if (isTerminal(job.state)) {
            return;
          }
        }
        return; // the gateway ended the stream early; `wait` polls from here
      } catch (err) {
        if (signal?.aborted) {
          throw cancelled(signal);
        }
        if (!isServiceError(err)) {
          throw err;
        }
        const error = fromServiceError(err, this.address, this.#tls);
        failures += 1;
        const delay = nextRetryDelay(this.#retry, failures, error, deadline);
        if (delay === undefined) {
          throw error;
        }
        await pause(delay, signal);
      } finally {
        signal?.removeEventListener("abort", stop);
        stream.cancel();
      }
    }
  }

  /**
   * Waits until the job is completed, failed or cancelled, and returns it. DeadlineExceededError
   * when `timeoutMs` passes first (the job goes on in the background).
   */
  async wait(jobId: string, options: WatchOptions = {}): Promise<Job> {
    const timeoutMs = checkTimeout(options.timeoutMs ?? null);
    const deadline = deadlineOf(timeoutMs);
    try {
      for await (const job of this.watch(jobId, options)) {
        if (isTerminal(job.state)) {
          return job;
        }
      }
    } catch (err) {
      if (err instanceof DeadlineExceededError) {
        throw waitTimeout(jobId, timeoutMs, err);
      }
      if (!(err instanceof RaglineClientError) || err.code !== "UNIMPLEMENTED") {
        throw err;
      }
    }
    // The stream ended early or the gateway cannot stream: poll instead.
    for (;;) {
      const left = deadline === undefined ? null : deadline - Date.now();
      if (left !== null && left <= 0) {
        throw waitTimeout(jobId, timeoutMs);
      }
      const job = await this.getJob(jobId, {
        signal: options.signal,
        timeoutMs: left ?? this.#timeoutMs,
      });
      if (isTerminal(job.state)) {
        return job;
      }
      if (deadline !== undefined && Date.now() + POLL_INTERVAL_MS > deadline) {
        throw waitTimeout(jobId, timeoutMs);
      }
      await pause(POLL_INTERVAL_MS, options.signal);
    }
  }

  /** The `topK` chunks closest to `query`, best first, optionally only from `documentIds`. */
  async search(query: string, options: SearchOptions = {}): Promise<Hit[]> {
    const request = {
      query,
      topK: options.topK ?? 10,
      documentIds: [...(options.documentIds ?? [])],
    };
    const response = await this.unary(this.#stub.search.bind(this.#stub), request, options);
    return response.hits.map(hitFromProto);
  }

  /** Which version of the document is searchable and how many chunks it has. */
  async getDocument(documentId: string, options: CallOptions = {}): Promise<DocumentInfo> {
    const response = await this.unary(
      this.#stub.getDocument.bind(this.#stub),
      { documentId },
      options,
    );
    return documentInfoFromProto(response);
  }

  /** Removes every chunk of the document from the index; resolves to how many were removed. */
  async delete(documentId: string, options: CallOptions = {}): Promise<number> {
    const response = await this.unary(
      this.#stub.deleteDocument.bind(this.#stub),
      { documentId },
      options,
    );
    return response.chunksDeleted;
  }

  /**
   * Stops all further work on the job and removes the vectors it already wrote; resolves to the
   * job, normally in state "cancelled". Cancelling a cancelled job returns it unchanged.
   * NotFoundError for an unknown job; FailedPreconditionError for a job that already completed.
   */
  async cancel(jobId: string, options: CallOptions = {}): Promise<Job> {
    const response = await this.unary(this.#stub.cancelJob.bind(this.#stub), { jobId }, options);
    return jobFromProto(response.job);
  }

  /**
   * One page of the stage's dead-letter queue, oldest first. Pass its `nextPageToken` as
   * `pageToken` for the next page; it is "" on the last.
   */
  async listDeadLetters(
    stage: Stage,
    options: ListDeadLettersOptions = {},
  ): Promise<DeadLetterPage> {
    const request = {
      stage: stageToProto(stage),
      pageSize: options.pageSize ?? 100,
      pageToken: options.pageToken ?? "",
    };
    const response = await this.unary(
      this.#stub.listDeadLetters.bind(this.#stub),
      request,
      options,
    );
    return deadLetterPageFromProto(response);
  }

  /** Every dead letter in the stage's queue, oldest first, fetched `pageSize` at a time. */
  async *iterDeadLetters(
    stage: Stage,
    options: ListDeadLettersOptions = {},
  ): AsyncGenerator<DeadLetter, void, undefined> {
    let pageToken = options.pageToken ?? "";
    do {
      const page = await this.listDeadLetters(stage, { ...options, pageToken });
      yield* page.deadLetters;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /**
   * Puts dead letters back on the stage's queue with a fresh attempt count and reopens their jobs;
   * resolves to how many were requeued. No `ids` requeues the whole dead-letter queue.
   */
  async requeueDeadLetters(
    stage: Stage,
    ids: readonly string[] = [],
    options: CallOptions = {},
  ): Promise<number> {
    const request = { stage: stageToProto(stage), deadLetterIds: checkIds(ids) };
    const response = await this.unary(
      this.#stub.requeueDeadLetters.bind(this.#stub),
      request,
      options,
    );
    return response.requeued;
  }

  /**
   * Deletes dead letters for good (their jobs stay failed); resolves to how many were deleted.
   * No `ids` empties the stage's dead-letter queue.
   */
  async purgeDeadLetters(
    stage: Stage,
    ids: readonly string[] = [],
    options: CallOptions = {},
  ): Promise<number> {
    const request = { stage: stageToProto(stage), deadLetterIds: checkIds(ids) };
    const response = await this.unary(
      this.#stub.purgeDeadLetters.bind(this.#stub),
      request,
      options,
    );
    return response.purged;
  }

  /** One unary call, under the call's deadline and retried as the policy says. */
  private unary<Req, Resp>(
    method: Unary<Req, Resp>,
    request: Req,
    options: CallOptions,
  ): Promise<Resp> {
    const timeoutMs =
      options.timeoutMs === undefined ? this.#timeoutMs : checkTimeout(options.timeoutMs);
    const deadline = deadlineOf(timeoutMs);
    const { signal } = options;
    return withRetries(this.#retry, { deadline, signal }, () =>
      this.attempt(method, request, deadline, signal),
    );
  }

  private attempt<Req, Resp>(
    method: Unary<Req, Resp>,
    request: Req,
    deadline: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Resp> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(cancelled(signal));
        return;
      }
      const stop = (): void => call.cancel();
      const call = method(
        request,
        this.#metadata.clone(),
        deadline === undefined ? {} : { deadline },
        (err, response) => {
          signal?.removeEventListener("abort", stop);
          if (err === null) {
            resolve(response);
          } else {
            reject(
              signal?.aborted ? cancelled(signal) : fromServiceError(err, this.address, this.#tls),
            );
          }
        },
      );
      signal?.addEventListener("abort", stop, { once: true });
    });
  }
}

/** `doc` with a request id: its own, or a fresh one, so that the client's retries are idempotent. */
function withRequestId<T extends Document>(doc: T): T {
  return doc.requestId ? doc : { ...doc, requestId: randomUUID() };
}

function deadlineOf(timeoutMs: number | null): number | undefined {
  return timeoutMs === null ? undefined : Date.now() + timeoutMs;
}

function checkTimeout(timeoutMs: number | null): number | null {
  if (timeoutMs !== null && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new RangeError(
      `timeoutMs must be a positive number of milliseconds or null, not ${timeoutMs}`,
    );
  }
  return timeoutMs;
}

function waitTimeout(
  jobId: string,
  timeoutMs: number | null,
  cause?: unknown,
): DeadlineExceededError {
  const within = timeoutMs === null ? "in time" : `within ${timeoutMs / 1000} s`;
  return new DeadlineExceededError(
    `job ${jobId} did not finish ${within}; it continues in the background ` +
      `(check it with \`ragline job ${jobId}\`)`,
    { code: "DEADLINE_EXCEEDED", cause },
  );
}

function checkIds(ids: readonly string[]): string[] {
  // A lone string would be sent as nothing useful; say so rather than guess.
  if (typeof ids === "string" || !Array.isArray(ids)) {
    throw new TypeError("ids must be an array of dead-letter ids, not a single string");
  }
  return [...ids];
}

/** The metadata every call carries: `extra` and the API key's authorization entry. */
function callMetadata(extra: Record<string, string>, apiKey: string | undefined): Metadata {
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(extra)) {
    metadata.add(key, value);
  }
  if (apiKey === undefined) {
    return metadata;
  }
  if (typeof apiKey !== "string" || apiKey === "") {
    throw new TypeError(
      "apiKey must be a non-empty string (the key `ragline keys create` printed)",
    );
  }
  // Printable ASCII without spaces: the key is never quoted, as it may be a secret.
  if (!/^[\x21-\x7e]+$/.test(apiKey)) {
    throw new RangeError(
      "apiKey holds spaces or characters a key never has; pass the key exactly as " +
        "`ragline keys create` printed it (not shown here, as it may be a secret)",
    );
  }
  if (Object.keys(extra).some((key) => key.toLowerCase() === "authorization")) {
    throw new TypeError("pass the key as apiKey or as authorization metadata, not both");
  }
  metadata.set("authorization", `Bearer ${apiKey}`);
  return metadata;
}

/** The channel's credentials from the TLS options, and whether they speak TLS. */
function channelCredentials(options: ClientOptions): {
  credentials: ChannelCredentials;
  tls: boolean;
} {
  const { ca, caFile, cert, certFile, key, keyFile } = options;
  const pems = [ca, caFile, cert, certFile, key, keyFile].some((v) => v !== undefined);
  if (options.credentials !== undefined) {
    if (pems || options.tls !== undefined) {
      throw new TypeError(
        "give credentials or the TLS options (tls, ca, cert, key and their files), not both",
      );
    }
    return { credentials: options.credentials, tls: true };
  }
  if (!pems && !options.tls) {
    return { credentials: grpcCredentials.createInsecure(), tls: false };
  }
  if (options.tls === false) {
    throw new TypeError("tls: false contradicts the ca, cert or key options given");
  }
  const rootCerts = pem("ca", ca, caFile, "CERTIFICATE-----");
  const certChain = pem("cert", cert, certFile, "CERTIFICATE-----");
  const privateKey = pem("key", key, keyFile, "KEY-----");
  if ((certChain === null) !== (privateKey === null)) {
    throw new TypeError("cert and key go together: give both for mutual TLS, or neither");
  }
  return { credentials: grpcCredentials.createSsl(rootCerts, privateKey, certChain), tls: true };
}

/** The PEM given inline or in a file (not both), checked to hold a PEM block; null when neither. */
function pem(
  name: string,
  inline: string | Buffer | undefined,
  file: string | undefined,
  marker: string,
): Buffer | null {
  if (inline !== undefined && file !== undefined) {
    throw new TypeError(`give ${name} or ${name}File, not both`);
  }
  if (inline === undefined && file === undefined) {
    return null;
  }
  const data = file === undefined ? Buffer.from(inline as string | Buffer) : readFileSync(file);
  const text = data.toString("latin1");
  if (!text.includes("-----BEGIN ") || !text.includes(marker)) {
    const what = marker === "KEY-----" ? "private key" : "certificate";
    const where = file === undefined ? name : `${name}File ${JSON.stringify(file)}`;
    throw new RangeError(`${where} holds no PEM ${what} (a '-----BEGIN' block)`);
  }
  return data;
}
