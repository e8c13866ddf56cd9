// The few calls of the gateway's HTTP/JSON API that the page makes, and its errors in words.
// Nothing here touches the page: app.js does.

import { readEvents } from "./sse.js";

export const TERMINAL_STATES = new Set([
  "JOB_STATE_COMPLETED",
  "JOB_STATE_FAILED",
  "JOB_STATE_CANCELLED",
]);

// Statuses worth another try; anything else would only fail the same way again.
const RETRYABLE = new Set(["UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "RESOURCE_EXHAUSTED"]);

// What a person can do about each kind of refusal, added after the gateway's own message.
const ADVICE = {
  UNAUTHENTICATED: "Check the API key field: the gateway needs a valid key (rl_...).",
  PERMISSION_DENIED: "This API key lacks the scope for this call; use a key that has it.",
  UNAVAILABLE: "The gateway or a service behind it is down or starting; try again shortly.",
};

/** A refusal or failure, with a message meant for a person. */
export class GatewayError extends Error {
  constructor(message, { status = "", retryable = false } = {}) {
    super(message);
    this.name = "GatewayError";
    this.status = status;
    this.retryable = retryable;
  }
}

/** The gateway's JSON error body (`{"error": {...}}`) in words. */
export function describeError(error, httpStatus, action = "the call") {
  if (!error || typeof error !== "object") {
    const text = `The gateway answered ${action} with HTTP ${httpStatus} without saying why.`;
    return new GatewayError(text, { retryable: httpStatus >= 500 });
  }
  const status = error.status || "";
  const parts = [error.message || `HTTP ${error.code || httpStatus}`];
  for (const detail of error.details || []) {
    for (const v of detail.fieldViolations || []) {
      const said = `${v.field}: ${v.description}`;
      if (!parts[0].includes(v.description)) parts.push(said);
    }
    if (detail.retryDelay) parts.push(`Try again in ${detail.retryDelay}.`);
  }
  if (ADVICE[status]) parts.push(ADVICE[status]);
  const label = status ? `${error.code || httpStatus} ${status}` : `${httpStatus}`;
  return new GatewayError(`The gateway refused ${action} (${label}): ${parts.join(" ")}`, {
    status,
    retryable: RETRYABLE.has(status),
  });
}

export class Gateway {
  /** `baseUrl` like "http://127.0.0.1:8080"; `apiKey` may be empty when auth is off. */
  constructor(baseUrl, apiKey) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = apiKey;
  }

  /** Uploads a file as a document named after it; resolves to the accepted Job. */
  async upload(file) {
    const form = new FormData();
    form.append("file", file, file.name);
    // A type the browser does not know goes as application/octet-stream; the gateway then
    // takes the type from the file name's extension.
    form.append("documentId", file.name);
    const body = await this.#call("the upload", "POST", "/v1/documents", form);
    return body.job;
  }

  async search(query, { topK = 5, documentIds = [] } = {}) {
    const request = { query, topK };
    if (documentIds.length) request.documentIds = documentIds;
    const body = await this.#call("the search", "POST", "/v1/search", JSON.stringify(request), {
      "content-type": "application/json",
    });
    return body.hits || [];
  }

  /**
   * Yields each update of the job from the gateway's event stream; the stream ends after a
   * terminal state. Throws GatewayError when the gateway refuses or reports an error mid-stream.
   */
  async *watch(jobId, signal) {
    const response = await this.#fetch(
      "GET",
      `/v1/jobs/${encodeURIComponent(jobId)}:watch`,
      undefined,
      { accept: "text/event-stream" },
      signal,
    );
    const action = "the job's event stream";
    if (!response.ok) throw await errorFrom(response, action);
    for await (const event of readEvents(response.body)) {
      if (event.type === "job") yield JSON.parse(event.data);
      else if (event.type === "error") throw describeError(parseJson(event.data)?.error, 200, action);
    }
  }

  async #call(action, method, path, body, headers = {}) {
    const response = await this.#fetch(method, path, body, headers);
    if (!response.ok) throw await errorFrom(response, action);
    return response.json();
  }

  async #fetch(method, path, body, headers = {}, signal = undefined) {
    const all = { ...headers };
    if (this.apiKey) all.authorization = `Bearer ${this.apiKey}`;
    try {
      return await fetch(this.baseUrl + path, { method, body, headers: all, signal });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      // fetch() says only "Failed to fetch": the gateway is down, or its answer was withheld
      // because CORS does not allow this origin (a simple POST may still have reached it).
      throw new GatewayError(
        `No answer from the gateway at ${this.baseUrl} that this page may read. Check that it runs with ` +
          `RAGLINE_HTTP_ADDRESS set and that RAGLINE_HTTP_CORS_ORIGINS allows this page's ` +
          `origin (${location.origin}).`,
        { status: "UNREACHABLE", retryable: true },
      );
    }
  }
}

async function errorFrom(response, action) {
  const body = parseJson(await response.text().catch(() => ""));
  return describeError(body?.error, response.status, action);
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
