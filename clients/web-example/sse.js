// Server-sent events read from a fetch() response body. EventSource would be simpler, but it
// cannot send an Authorization header, and the gateway wants the API key there.

const LINE_END = /\r\n|\r|\n/;

/**
 * Yields each event in `body` (a ReadableStream of bytes) as {type, data}, in order, until the
 * server closes the stream. Comment lines (": keepalive") are skipped; an event without an
 * "event:" field has type "message", as in the SSE specification.
 */
export async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let type = "";
  let data = [];
  let closed = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        closed = true;
        break;
      }
      buffer += value;
      for (;;) {
        const end = LINE_END.exec(buffer);
        // A lone "\r" at the end may be the first half of "\r\n": wait for the next chunk.
        if (!end || (end[0] === "\r" && end.index === buffer.length - 1)) break;
        const line = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        if (line === "") {
          if (data.length > 0) yield { type: type || "message", data: data.join("\n") };
          type = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let val = colon === -1 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") type = val;
        else if (field === "data") data.push(val);
      }
    }
  } finally {
    // The caller stopped early (or reading failed): close the connection rather than leave it open.
    if (!closed) await reader.cancel().catch(() => {});
  }
}
