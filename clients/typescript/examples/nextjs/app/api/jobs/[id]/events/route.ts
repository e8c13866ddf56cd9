// GET /api/jobs/{id}/events: the job's changes as server-sent events, one "job" event each, until
// it is completed, failed or cancelled; an "error" event if following it fails. In the page:
//   new EventSource(`/api/jobs/${jobId}/events`).addEventListener("job", (e) => ...)

import { RaglineClient, RaglineClientError } from "ragline-client";

export const runtime = "nodejs"; // gRPC needs Node's runtime, not the Edge one
export const dynamic = "force-dynamic"; // a stream, never cached

const ragline = new RaglineClient(process.env.RAGLINE_GATEWAY, {
  apiKey: process.env.RAGLINE_API_KEY,
});

export async function GET(
  request: Request,
  { params }: { params: Promise<{ id: string }> },
): Promise<Response> {
  const { id } = await params;
  const stop = new AbortController(); // the browser went away: stop watching the job
  request.signal.addEventListener("abort", () => stop.abort(), { once: true });
  const encoder = new TextEncoder();

  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      const send = (event: string, data: unknown): void =>
        controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
      try {
        for await (const job of ragline.watch(id, {
          signal: stop.signal,
          timeoutMs: 30 * 60_000,
        })) {
          send("job", {
            jobId: job.jobId,
            state: job.state,
            progress: job.progress,
            lastError: job.lastError,
          });
        }
      } catch (err) {
        if (stop.signal.aborted) {
          return; // nobody is listening any more
        }
        const code = err instanceof RaglineClientError ? err.code : "UNKNOWN";
        send("error", { error: err instanceof Error ? err.message : String(err), code });
      }
      controller.close();
    },
    cancel() {
      stop.abort();
    },
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream", "cache-control": "no-cache, no-transform" },
  });
}
