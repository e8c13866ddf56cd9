// Conversions between the generated protobuf messages and the client's own types.

import { RaglineClientError } from "./errors.js";
import type {
  DeadLetter as DeadLetterMessage,
  GetDocumentResponse,
  IngestRequest,
  ListDeadLettersResponse,
  SearchHit,
} from "./gen/ragline/v1/ingest_service.js";
import {
  type DocumentMetadata,
  type Job as JobMessage,
  JobState as JobStateEnum,
  Stage as StageEnum,
} from "./gen/ragline/v1/job.js";
import {
  STAGES,
  type DeadLetter,
  type DeadLetterPage,
  type Document,
  type DocumentInfo,
  type Hit,
  type Job,
  type JobState,
  type Metadata,
  type Stage,
} from "./types.js";

const STATES = new Map<JobStateEnum, JobState>([
  [JobStateEnum.JOB_STATE_ACCEPTED, "accepted"],
  [JobStateEnum.JOB_STATE_ACTIVE, "active"],
  [JobStateEnum.JOB_STATE_COMPLETED, "completed"],
  [JobStateEnum.JOB_STATE_FAILED, "failed"],
  [JobStateEnum.JOB_STATE_CANCELLED, "cancelled"],
]);

const STAGE_NAMES = new Map<StageEnum, Stage>([
  [StageEnum.STAGE_CHUNK, "chunk"],
  [StageEnum.STAGE_EMBED, "embed"],
  [StageEnum.STAGE_INDEX, "index"],
]);

const STAGE_VALUES = new Map<Stage, StageEnum>(
  [...STAGE_NAMES].map(([value, name]) => [name, value]),
);

function unknownValue(what: string, value: number): RaglineClientError {
  return new RaglineClientError(
    `the gateway returned ${what} ${value}, which this client does not know; upgrade ragline-client`,
  );
}

/** The state name for a proto enum value; an unknown value (a newer server) throws. */
export function stateFromProto(value: JobStateEnum): JobState {
  const state = STATES.get(value);
  if (state === undefined) {
    throw unknownValue("job state", value);
  }
  return state;
}

/** The stage name for a proto enum value; an unset or unknown value (a newer server) throws. */
export function stageFromProto(value: StageEnum): Stage {
  const stage = STAGE_NAMES.get(value);
  if (stage === undefined) {
    throw unknownValue("stage", value);
  }
  return stage;
}

/** The proto enum value for a stage name (any case); RangeError for a name that is not a stage. */
export function stageToProto(stage: Stage | string): StageEnum {
  const value = STAGE_VALUES.get(String(stage).toLowerCase() as Stage);
  if (value === undefined) {
    const names = STAGES.map((s) => `"${s}"`).join(", ");
    throw new RangeError(`unknown stage ${JSON.stringify(stage)}: expected one of ${names}`);
  }
  return value;
}

/** The DocumentMetadata message for `meta`. */
export function metadataToProto(meta: Metadata): DocumentMetadata {
  return {
    uploadedBy: meta.uploadedBy ?? "",
    uploadTime: meta.uploadTime,
    originalFilename: meta.originalFilename ?? "",
    attributes: { ...meta.attributes },
  };
}

/** The Metadata in a DocumentMetadata message. */
export function metadataFromProto(msg: DocumentMetadata | undefined): Metadata {
  return {
    uploadedBy: msg?.uploadedBy ?? "",
    uploadTime: msg?.uploadTime,
    originalFilename: msg?.originalFilename ?? "",
    attributes: { ...msg?.attributes },
  };
}

/** The IngestRequest for `doc`; string content is UTF-8 encoded. */
export function documentToProto(doc: Document): IngestRequest {
  const content =
    typeof doc.content === "string" ? Buffer.from(doc.content, "utf8") : Buffer.from(doc.content);
  return {
    documentId: doc.documentId,
    content,
    contentType: doc.contentType ?? "text/plain",
    metadata: doc.metadata === undefined ? undefined : metadataToProto(doc.metadata),
    config: chunkingToProto(doc),
    requestId: doc.requestId ?? "",
  };
}

/** The ChunkingConfig for the options given, or none when none is (the deployment's defaults). */
function chunkingToProto(doc: Document): IngestRequest["config"] {
  if (doc.chunkSize === undefined && doc.chunkOverlap === undefined && !doc.embeddingModel) {
    return undefined;
  }
  return {
    chunkSize: doc.chunkSize,
    chunkOverlap: doc.chunkOverlap,
    embeddingModel: doc.embeddingModel ?? "",
    vectorDimension: 0,
  };
}

/** The Job in a Job message (undefined: an answer without one, which the gateway never sends). */
export function jobFromProto(msg: JobMessage | undefined): Job {
  if (msg === undefined) {
    throw new RaglineClientError(
      "the gateway's answer held no job; upgrade ragline-client or the gateway",
    );
  }
  return {
    jobId: msg.jobId,
    documentId: msg.documentId,
    documentVersion: msg.documentVersion,
    state: stateFromProto(msg.state),
    progress: {
      chunksTotal: msg.progress?.chunksTotal ?? 0,
      chunksEmbedded: msg.progress?.chunksEmbedded ?? 0,
      chunksIndexed: msg.progress?.chunksIndexed ?? 0,
    },
    lastError: msg.lastError,
    // Informational here: an unset or unknown stage reads as none.
    lastErrorStage: STAGE_NAMES.get(msg.lastErrorStage) ?? "",
    attempts: msg.attempts,
    requestId: msg.requestId,
    createTime: msg.createTime,
    updateTime: msg.updateTime,
    finishTime: msg.finishTime,
    stuck: msg.stuck,
  };
}

/** The Hit in a SearchHit message. */
export function hitFromProto(msg: SearchHit): Hit {
  return {
    documentId: msg.documentId,
    chunkIndex: msg.chunkIndex,
    text: msg.text,
    // The wire value is a float32: keep its meaningful digits, not float64 noise like 0.87300002.
    score: Number(msg.score.toPrecision(7)),
    metadata: metadataFromProto(msg.metadata),
    documentVersion: msg.documentVersion,
  };
}

/** The DocumentInfo in a GetDocumentResponse. */
export function documentInfoFromProto(msg: GetDocumentResponse): DocumentInfo {
  return {
    documentId: msg.documentId,
    liveVersion: msg.liveVersion,
    latestVersion: msg.latestVersion,
    chunkCount: msg.chunkCount,
  };
}

/** The DeadLetter in a DeadLetter message. */
export function deadLetterFromProto(msg: DeadLetterMessage): DeadLetter {
  return {
    deadLetterId: msg.deadLetterId,
    stage: stageFromProto(msg.stage),
    jobId: msg.jobId,
    documentId: msg.documentId,
    errorType: msg.errorType,
    errorMessage: msg.errorMessage,
    attempts: msg.attempts,
    firstFailureTime: msg.firstFailureTime,
    lastFailureTime: msg.lastFailureTime,
    messageBytes: msg.messageBytes,
  };
}

/** The DeadLetterPage in a ListDeadLettersResponse. */
export function deadLetterPageFromProto(msg: ListDeadLettersResponse): DeadLetterPage {
  return {
    deadLetters: msg.deadLetters.map(deadLetterFromProto),
    nextPageToken: msg.nextPageToken,
  };
}
