// The example page: upload a document, show "processing" as soon as the gateway accepts it, and
// turn the row to "ready" or "failed" when the job's event stream says so, without a reload.

import { Gateway, GatewayError, TERMINAL_STATES } from "./gateway.js";

const DEFAULT_GATEWAY = "http://127.0.0.1:8080";
// A dropped event stream is reopened this often before the row gives up following the job.
const MAX_RECONNECTS = 5;
const RECONNECT_DELAY_MS = 1000;

const $ = (id) => document.getElementById(id);
const gatewayInput = $("gateway-url");
const keyInput = $("api-key");
const fileInput = $("file-input");
const rows = $("documents");
const message = $("message");
// The document ids this page uploaded, for "only the documents uploaded here".
const uploaded = new Set();

gatewayInput.value = new URLSearchParams(location.search).get("gateway") || DEFAULT_GATEWAY;
// The settings apply to the next call; pressing Enter in them must not reload the page.
$("gateway-form").addEventListener("submit", (event) => event.preventDefault());

function gateway() {
  return new Gateway(gatewayInput.value.trim(), keyInput.value.trim());
}

function showError(err) {
  message.textContent = err instanceof GatewayError ? err.message : `Something went wrong: ${err}`;
}

function addRow(documentId) {
  const row = document.createElement("tr");
  row.dataset.testid = "doc-row";
  row.dataset.documentId = documentId;
  for (const name of ["document", "status", "job"]) {
    const cell = document.createElement("td");
    cell.className = name;
    cell.dataset.testid = `doc-${name}`;
    row.append(cell);
  }
  row.querySelector(".document").textContent = documentId;
  rows.prepend(row);
  return row;
}

// data-state is one of uploading, processing, ready, failed, rejected, lost.
function setState(row, state, text) {
  row.dataset.state = state;
  row.querySelector(".status").textContent = text;
}

function showJob(row, job) {
  row.dataset.jobId = job.jobId;
  row.querySelector(".job").textContent = job.jobId;
  const progress = job.progress || {};
  switch (job.state) {
    case "JOB_STATE_COMPLETED": {
      const n = progress.chunksTotal;
      setState(row, "ready", n ? `ready (${n} chunk${n === 1 ? "" : "s"})` : "ready");
      break;
    }
    case "JOB_STATE_FAILED":
      setState(row, "failed", `failed: ${job.lastError || "the pipeline gave up on it"}`);
      break;
    case "JOB_STATE_CANCELLED":
      setState(row, "failed", `failed: ${job.lastError || "the job was cancelled"}`);
      break;
    default: {
      const done = progress.chunksTotal
        ? `, ${progress.chunksIndexed || 0} of ${progress.chunksTotal} chunks indexed`
        : "";
      setState(row, "processing", `processing${done}`);
    }
  }
}

// Follows the job until it ends. A stream that drops before a terminal state is reopened a few
// times; the job keeps running on the server either way.
async function follow(row, jobId) {
  let failures = 0;
  let lastError = null;
  while (failures <= MAX_RECONNECTS) {
    const gw = gateway();
    try {
      for await (const job of gw.watch(jobId)) {
        showJob(row, job);
        failures = 0;
        if (TERMINAL_STATES.has(job.state)) return;
      }
      lastError = new GatewayError("The gateway closed the event stream before the job ended.", {
        retryable: true,
      });
    } catch (err) {
      if (!(err instanceof GatewayError) || !err.retryable) {
        setState(row, "lost", `lost track: ${err.message || err}`);
        return;
      }
      lastError = err;
    }
    failures += 1;
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_DELAY_MS));
  }
  setState(row, "lost", `lost track: ${lastError.message}`);
}

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  message.textContent = "";
  const file = fileInput.files[0];
  if (!file) {
    message.textContent = "Choose a file first.";
    return;
  }
  const row = addRow(file.name);
  setState(row, "uploading", "uploading");
  let job;
  try {
    job = await gateway().upload(file);
  } catch (err) {
    setState(row, "rejected", "not accepted");
    showError(err);
    return;
  }
  uploaded.add(file.name);
  showJob(row, job);
  fileInput.value = "";
  follow(row, job.jobId);
});

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  message.textContent = "";
  const list = $("hits");
  list.replaceChildren();
  const query = $("search-query").value;
  const documentIds = $("search-these").checked ? [...uploaded] : [];
  if ($("search-these").checked && documentIds.length === 0) {
    // An empty filter means "every document" to the gateway: not what the box asks for.
    message.textContent = "Nothing was uploaded here yet: upload a document, or untick the box to search them all.";
    return;
  }
  let hits;
  try {
    hits = await gateway().search(query, { topK: 5, documentIds });
  } catch (err) {
    showError(err);
    return;
  }
  list.dataset.count = String(hits.length);
  if (hits.length === 0) {
    const none = document.createElement("li");
    none.textContent = "No hits.";
    list.append(none);
  }
  for (const hit of hits) {
    const item = document.createElement("li");
    item.dataset.testid = "hit";
    item.dataset.documentId = hit.documentId;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${hit.documentId}, chunk ${hit.chunkIndex || 0}, score ${(hit.score || 0).toFixed(3)}`;
    const text = document.createElement("div");
    text.textContent = hit.text.length > 400 ? `${hit.text.slice(0, 400)}…` : hit.text;
    item.append(meta, text);
    list.append(item);
  }
});
