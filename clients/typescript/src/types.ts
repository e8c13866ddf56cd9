// The plain values the client takes in and hands out instead of generated protobuf messages.

/** Where an ingestion job stands. A job moves forward only: accepted -> active -> a terminal state. */
export type JobState = "accepted" | "active" | "completed" | "failed" | "cancelled";

/** The states a job ends in: it changes no more after one of these. */
export const TERMINAL_STATES: readonly JobState[] = ["completed", "failed", "cancelled"];

/** Whether a job in `state` is done: completed, failed or cancelled. */
export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.includes(state);
}

/** A pipeline stage, each with its own queue and dead-letter queue. */
export type Stage = "chunk" | "embed" | "index";

/** The stages, in pipeline order. */
export const STAGES: readonly Stage[] = ["chunk", "embed", "index"];

/** Media types the gateway accepts, by file extension (lower case, with the dot). */
export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".txt": "text/plain",
  ".text": "text/plain",
  ".md": "text/markdown",
  ".markdown": "text/markdown",
  ".html": "text/html",
  ".htm": "text/html",
  ".pdf": "application/pdf",
};

/** Where a document came from; stored beside every chunk and returned with search hits. */
export interface Metadata {
  uploadedBy?: string;
  /** When unset at ingest, the gateway fills in the time it accepted the document. */
  uploadTime?: Date;
  originalFilename?: string;
  attributes?: Record<string, string>;
}

/** How to chunk and embed a document; unset fields take the deployment's defaults. */
export interface ChunkingOptions {
  /** The largest chunk, in tokens of the embedding model's tokenizer. */
  chunkSize?: number;
  /** How many tokens consecutive chunks share; less than chunkSize. */
  chunkOverlap?: number;
  /** Must be the model the deployment serves; unset means that model. */
  embeddingModel?: string;
}

/** Everything about a document to ingest except its content and id. */
export interface DocumentOptions extends ChunkingOptions {
  /** text/plain (the default), text/markdown, text/html or application/pdf. */
  contentType?: string;
  metadata?: Metadata;
  /**
   * An idempotency key: a retried ingest with the same key returns the first job. When unset the
   * client makes one up per call, so that its own retries never queue a document twice.
   */
  requestId?: string;
}

/** One document to ingest. A string `content` is sent UTF-8 encoded. */
export interface Document extends DocumentOptions {
  content: Uint8Array | string;
  documentId: string;
}

/** A job's chunks through the stages; `chunksTotal` is zero until chunking is done. */
export interface JobProgress {
  chunksTotal: number;
  chunksEmbedded: number;
  chunksIndexed: number;
}

/** One document's way through the pipeline. */
export interface Job {
  jobId: string;
  documentId: string;
  documentVersion: number;
  state: JobState;
  progress: JobProgress;
  /** The last error any stage met, in words; "" when none. */
  lastError: string;
  /** The stage that met `lastError`; "" when there was no error. */
  lastErrorStage: Stage | "";
  attempts: number;
  requestId: string;
  createTime?: Date;
  updateTime?: Date;
  /** Unset until the job reaches a terminal state. */
  finishTime?: Date;
  /** Unfinished, and nothing has changed it for the server's RAGLINE_STUCK_AFTER_S. */
  stuck: boolean;
}

/** One chunk that matched a search; `score` is cosine similarity, higher is closer. */
export interface Hit {
  documentId: string;
  chunkIndex: number;
  text: string;
  score: number;
  metadata: Metadata;
  documentVersion: number;
}

/**
 * A document in the index: its searchable version (`liveVersion`, 0 while the first version is in
 * flight), its newest accepted version, and how many chunks the index holds for it.
 */
export interface DocumentInfo {
  documentId: string;
  liveVersion: number;
  latestVersion: number;
  chunkCount: number;
}

/** A task a stage gave up on, kept in the stage's dead-letter queue until requeued or purged. */
export interface DeadLetter {
  deadLetterId: string;
  stage: Stage;
  /** "" when the gateway could not read the original message. */
  jobId: string;
  /** "" when unknown. */
  documentId: string;
  errorType: string;
  errorMessage: string;
  attempts: number;
  firstFailureTime?: Date;
  lastFailureTime?: Date;
  /** The size of the original message. */
  messageBytes: number;
}

/** One page of a dead-letter queue, oldest first; `nextPageToken` is "" on the last page. */
export interface DeadLetterPage {
  deadLetters: DeadLetter[];
  nextPageToken: string;
}

/** The media type ragline uses for a file with this name, or undefined for an unsupported one. */
export function guessContentType(path: string): string | undefined {
  const base = path.split(/[\\/]/).pop() ?? "";
  const dot = base.lastIndexOf(".");
  return dot <= 0 ? undefined : CONTENT_TYPES[base.slice(dot).toLowerCase()];
}
