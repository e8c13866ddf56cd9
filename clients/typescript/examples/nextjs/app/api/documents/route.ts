// POST /api/documents: takes an upload (multipart form, field "file") and answers at once with the
// job, 202 Accepted, so the page can show "processing" while ragline works in the background. The
// page then follows the job through /api/jobs/{jobId}/events.

import {
  guessContentType,
  InvalidArgumentError,
  RaglineClient,
  RaglineClientError,
  ResourceExhaustedError,
} from "ragline-client";

export const runtime = "nodejs"; // gRPC needs Node's runtime, not the Edge one

// One client per server process: its channel is shared by every request.
const ragline = new RaglineClient(process.env.RAGLINE_GATEWAY, {
  apiKey: process.env.RAGLINE_API_KEY,
});

export async function POST(request: Request): Promise<Response> {
  const form = await request.formData();
  const file = form.get("file");
  if (file === null || typeof file === "string") {
    return Response.json(
      { error: "send the document as the multipart form field 'file'" },
      { status: 400 },
    );
  }
  try {
    const job = await ragline.ingest(new Uint8Array(await file.arrayBuffer()), {
      documentId: String(form.get("documentId") || file.name),
      contentType: guessContentType(file.name) ?? file.type,
      metadata: { originalFilename: file.name, uploadedBy: "web" },
      signal: request.signal,
    });
    return Response.json(
      { jobId: job.jobId, documentId: job.documentId, state: job.state },
      { status: 202 },
    );
  } catch (err) {
    return errorResponse(err);
  }
}

function errorResponse(err: unknown): Response {
  if (err instanceof InvalidArgumentError) {
    return Response.json({ error: err.message, field: err.field }, { status: 400 });
  }
  if (err instanceof ResourceExhaustedError) {
    const headers =
      err.retryAfterMs === undefined
        ? undefined
        : { "retry-after": String(Math.ceil(err.retryAfterMs / 1000)) };
    return Response.json({ error: err.message }, { status: 429, headers });
  }
  if (err instanceof RaglineClientError) {
    return Response.json({ error: err.message, code: err.code }, { status: 502 });
  }
  throw err;
}
