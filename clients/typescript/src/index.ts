// ragline-client: the TypeScript client for ragline's gRPC IngestService.
//
// Calls resolve to the plain objects in types.ts, never protobuf messages, and reject with a
// RaglineClientError subclass, never a bare grpc-js error.

export {
  DEFAULT_GATEWAY,
  DEFAULT_TIMEOUT_MS,
  RaglineClient,
  type CallOptions,
  type ClientOptions,
  type IngestFileOptions,
  type IngestOptions,
  type ListDeadLettersOptions,
  type SearchOptions,
  type WatchOptions,
} from "./client.js";
export {
  CancelledError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  RaglineClientError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  type FieldViolation,
} from "./errors.js";
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./retry.js";
export {
  CONTENT_TYPES,
  guessContentType,
  isTerminal,
  STAGES,
  TERMINAL_STATES,
  type ChunkingOptions,
  type DeadLetter,
  type DeadLetterPage,
  type Document,
  type DocumentInfo,
  type DocumentOptions,
  type Hit,
  type Job,
  type JobProgress,
  type JobState,
  type Metadata,
  type Stage,
} from "./types.js";
