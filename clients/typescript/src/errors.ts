// The client's errors. Every failed call rejects with one of these, never a bare grpc-js error.
//
// RaglineClientError               .code: the gRPC status name; .details: the server's words
// ├── InvalidArgumentError         INVALID_ARGUMENT: a request field is malformed (.field names it)
// ├── NotFoundError                NOT_FOUND: an unknown job or document
// ├── UnauthenticatedError         UNAUTHENTICATED: no API key, a malformed one, or an unknown one
// ├── PermissionDeniedError        PERMISSION_DENIED: the API key lacks the scope the call needs
// ├── ResourceExhaustedError       RESOURCE_EXHAUSTED: too large, or the pipeline is busy
// ├── FailedPreconditionError      FAILED_PRECONDITION: not possible in the current state
// ├── UnavailableError             UNAVAILABLE: the gateway cannot be reached
// ├── DeadlineExceededError        DEADLINE_EXCEEDED: no answer in time
// └── CancelledError               CANCELLED: the caller's AbortSignal fired

import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { BadRequest, RetryInfo } from "./gen/google/rpc/error_details.js";
import { Status } from "./gen/google/rpc/status.js";

/** A malformed request field, as the gateway's google.rpc.BadRequest detail names it. */
export interface FieldViolation {
  field: string;
  description: string;
}

/** What the constructor of every client error takes besides the message. */
export interface ErrorInit {
  code?: string;
  details?: string;
  cause?: unknown;
  /** Whether trying the same call again later may succeed (see `retryable`). */
  retryable?: boolean;
}

/** Base of every error the client raises. `message` is a sentence a person can act on. */
export class RaglineClientError extends Error {
  /** The gRPC status name, e.g. "NOT_FOUND"; "UNKNOWN" when there was none. */
  readonly code: string;
  /** The server's own words ("" when it said none). */
  readonly details: string;

  constructor(message: string, init: ErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code ?? "UNKNOWN";
    this.details = init.details ?? "";
    this.retryable = init.retryable ?? false;
  }

  /**
   * Whether the same call may succeed if tried again later, as the Python client decides:
   * UNAVAILABLE unless the TLS settings are the cause, and RESOURCE_EXHAUSTED only with the
   * gateway's RetryInfo (without one it is a size limit). Every other error is an answer.
   */
  readonly retryable: boolean;
}

/** The request was malformed; `field` names the field, e.g. `documents[3].content_type`. */
export class InvalidArgumentError extends RaglineClientError {
  /** The path of the first malformed field, or "" when the gateway named none. */
  readonly field: string;
  /** Every malformed field the gateway named. */
  readonly violations: readonly FieldViolation[];

  constructor(message: string, init: ErrorInit & { violations?: FieldViolation[] } = {}) {
    super(message, { code: "INVALID_ARGUMENT", ...init });
    this.violations = init.violations ?? [];
    this.field = this.violations[0]?.field ?? "";
  }
}

/** The job or document is unknown to the gateway. */
export class NotFoundError extends RaglineClientError {}

/**
 * The gateway wants an API key and got none, a malformed one, or one it does not know (or no
 * longer knows: revoked). Pass a valid key as `new RaglineClient(address, { apiKey })`.
 */
export class UnauthenticatedError extends RaglineClientError {}

/** The API key is valid but lacks the scope the call needs; `details` names the scope. */
export class PermissionDeniedError extends RaglineClientError {}

/** The document is over the size limit or the pipeline's queue is full; retry later. */
export class ResourceExhaustedError extends RaglineClientError {
  /** How long the gateway asked to wait before retrying (its RetryInfo), if it said. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, init: ErrorInit & { retryAfterMs?: number } = {}) {
    super(message, { code: "RESOURCE_EXHAUSTED", ...init });
    this.retryAfterMs = init.retryAfterMs;
  }
}

/**
 * The call cannot be carried out in the current state, e.g. cancelling a completed job.
 * Retrying the same call will not help.
 */
export class FailedPreconditionError extends RaglineClientError {}

/** The gateway could not be reached or could not serve the call right now. */
export class UnavailableError extends RaglineClientError {}

/** The call, or a wait for a job, did not finish in the time allowed. */
export class DeadlineExceededError extends RaglineClientError {}

/** The call was given up because the caller's AbortSignal fired (`cause` holds its reason). */
export class CancelledError extends RaglineClientError {}

/** The error for a call whose AbortSignal fired. */
export function cancelled(signal: AbortSignal): CancelledError {
  return new CancelledError("the call was cancelled: its AbortSignal fired", {
    code: "CANCELLED",
    cause: signal.reason,
  });
}

/** The details a gateway packs into a failed call's grpc-status-details-bin trailer. */
interface StatusDetails {
  violations: FieldViolation[];
  retryAfterMs: number | undefined;
}

const DETAILS_KEY = "grpc-status-details-bin";

/** The RetryInfo and BadRequest details of a failed call; empty when it sent none we can read. */
export function decodeStatusDetails(trailers: Metadata | undefined): StatusDetails {
  const found: StatusDetails = { violations: [], retryAfterMs: undefined };
  const raw = trailers?.get(DETAILS_KEY)[0];
  if (!(raw instanceof Uint8Array)) {
    return found;
  }
  let rpcStatus: Status;
  try {
    rpcStatus = Status.decode(raw);
  } catch {
    return found; // not a google.rpc.Status: the status code and message still say enough
  }
  for (const detail of rpcStatus.details) {
    const type = detail.typeUrl.slice(detail.typeUrl.lastIndexOf("/") + 1);
    try {
      if (type === "google.rpc.RetryInfo" && found.retryAfterMs === undefined) {
        const delay = RetryInfo.decode(detail.value).retryDelay;
        if (delay !== undefined) {
          found.retryAfterMs = Math.max(0, delay.seconds * 1000 + delay.nanos / 1e6);
        }
      } else if (type === "google.rpc.BadRequest") {
        for (const v of BadRequest.decode(detail.value).fieldViolations) {
          found.violations.push({ field: v.field, description: v.description });
        }
      }
    } catch {
      // An undecodable detail is skipped, as an unknown one is.
    }
  }
  return found;
}

const BY_CODE: Record<string, new (message: string, init: ErrorInit) => RaglineClientError> = {
  NOT_FOUND: NotFoundError,
  UNAUTHENTICATED: UnauthenticatedError,
  PERMISSION_DENIED: PermissionDeniedError,
  FAILED_PRECONDITION: FailedPreconditionError,
  UNAVAILABLE: UnavailableError,
  DEADLINE_EXCEEDED: DeadlineExceededError,
  CANCELLED: CancelledError,
};

// How the details begin that grpc-js itself writes when no connection could be made (as opposed
// to the gateway's words, which may quote such details about its own calls onward).
const CONNECT_FAILURE_HINTS = [
  "no connection established",
  "connection dropped",
  "failed to connect",
  "name resolution failed",
  "dns resolution failed",
  "connect econnrefused",
  "read econnreset",
];

/** Whether `err` is a grpc-js error for a call that got a status (not a programming error). */
export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === "number";
}

/** The client error for a failed call to the gateway at `address`, over TLS if `tls`. */
export function fromServiceError(
  err: ServiceError,
  address: string,
  tls: boolean,
): RaglineClientError {
  const code = status[err.code] ?? "UNKNOWN";
  const details = err.details ?? "";
  const init = { code, details, cause: err };
  if (code === "INVALID_ARGUMENT") {
    const { violations } = decodeStatusDetails(err.metadata);
    return new InvalidArgumentError(describe(code, details, address), { ...init, violations });
  }
  if (code === "RESOURCE_EXHAUSTED") {
    const { retryAfterMs } = decodeStatusDetails(err.metadata);
    return new ResourceExhaustedError(describe(code, details, address), {
      ...init,
      retryAfterMs,
      retryable: retryAfterMs !== undefined,
    });
  }
  const tlsProblem = code === "UNAVAILABLE" ? tlsMessage(details, address, tls) : undefined;
  const Kind = BY_CODE[code] ?? RaglineClientError;
  return new Kind(tlsProblem ?? describe(code, details, address), {
    ...init,
    retryable: code === "UNAVAILABLE" && tlsProblem === undefined,
  });
}

function isConnectFailure(details: string): boolean {
  const words = details.toLowerCase();
  return CONNECT_FAILURE_HINTS.some((hint) => words.startsWith(hint));
}

/**
 * What a failed connection says about TLS, if anything: grpc-js's own words name the cause
 * (OpenSSL's reason, or a closed socket), not which option to change.
 */
function tlsMessage(details: string, address: string, tls: boolean): string | undefined {
  if (!isConnectFailure(details)) {
    return undefined; // the gateway's own words, e.g. about its call to the embedder
  }
  const words = details.toLowerCase();
  if (words.includes("wrong version number") || words.includes("packet length too long")) {
    return (
      `the ragline gateway at ${address} does not speak TLS (it serves plaintext): connect ` +
      "without the ca/caFile option, or turn TLS on at the gateway"
    );
  }
  if (
    words.includes("self-signed certificate") ||
    words.includes("unable to verify") ||
    words.includes("unable to get local issuer") ||
    words.includes("certificate has expired")
  ) {
    return (
      `TLS handshake with the ragline gateway at ${address} failed: its certificate is not ` +
      "signed by the CA you gave (or has expired); check the ca/caFile option"
    );
  }
  if (words.includes("does not match certificate's altnames")) {
    const host = address.slice(0, address.lastIndexOf(":"));
    return (
      `TLS handshake with the ragline gateway at ${address} failed: its certificate does not ` +
      `name ${host}; connect by a name the certificate holds, or reissue it with ${host} among ` +
      "its subject alternative names"
    );
  }
  // The server's TLS alert (certificate required, unknown CA, bad certificate), or a connection
  // it closed once the handshake was done: with TLS 1.3 a server checks the client's certificate
  // after the client thinks it has connected, and grpc-js then says no more than this.
  const refused = [
    "alert certificate required",
    "alert unknown ca",
    "alert bad certificate",
    "alert handshake failure",
    "last error: failed to connect",
    "econnreset",
    "socket hang up",
  ];
  if (tls && refused.some((why) => words.includes(why))) {
    return (
      `the ragline gateway at ${address} closed the connection during the TLS handshake: it ` +
      "may require mutual TLS, with a client certificate signed by a CA it trusts; give one " +
      "(the cert/certFile and key/keyFile options), or check that yours was signed by that CA"
    );
  }
  return undefined;
}

function describe(code: string, details: string, address: string): string {
  const said = details ? `: ${details}` : "";
  switch (code) {
    case "UNAVAILABLE":
      if (!details || isConnectFailure(details)) {
        return (
          `cannot reach the ragline gateway at ${address}: is it running? ` +
          "(start it with `ragline up`)"
        );
      }
      return `the ragline gateway at ${address} is unavailable${said} (retry in a moment)`;
    case "INVALID_ARGUMENT":
      return `the gateway rejected the request${said}`;
    case "NOT_FOUND":
      return details || "not found";
    case "RESOURCE_EXHAUSTED":
      return (
        `the gateway refused the request${said} (the document is over the size limit or the ` +
        "pipeline is busy: send smaller documents or retry later)"
      );
    case "FAILED_PRECONDITION":
      return details || "the gateway cannot do that in the current state";
    case "DEADLINE_EXCEEDED":
      return `the ragline gateway at ${address} did not answer in time${said}`;
    case "UNAUTHENTICATED":
      return `the gateway at ${address} did not accept the call's API key${said}`;
    case "PERMISSION_DENIED":
      return `the gateway at ${address} refused the call${said}`;
    case "CANCELLED":
      return `the call to the ragline gateway at ${address} was cancelled${said}`;
    default:
      return `the call to the ragline gateway at ${address} failed with ${code}${said}`;
  }
}
