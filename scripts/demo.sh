#!/usr/bin/env bash
# The demo: start the whole stack, ingest this project's own documentation, search it, stop.
set -euo pipefail
cd "$(dirname "$0")/.."
RAGLINE=.venv/bin/ragline
export HF_HUB_OFFLINE=1
export RAGLINE_NAMESPACE=${RAGLINE_NAMESPACE:-ragline-demo}
export RAGLINE_MILVUS_URI=${RAGLINE_MILVUS_URI:-ragline-data/demo.db}
mkdir -p ragline-data
log=ragline-data/demo-stack.log

echo "== starting the stack (gateway, chunker, embedder, indexer as separate processes)"
$RAGLINE up >"$log" 2>&1 &
stack=$!
stop_stack() {
  if kill -0 "$stack" 2>/dev/null; then
    echo "== stopping the stack"
    kill -TERM "$stack"; wait "$stack" || true
  fi
}
trap stop_stack EXIT

for _ in $(seq 360); do
  grep -q "ready" "$log" && break
  kill -0 "$stack" 2>/dev/null || { echo "the stack did not start:"; cat "$log"; exit 1; }
  sleep 0.5
done
grep -q "ready" "$log" || { echo "the stack was not ready after 3 minutes:"; tail -40 "$log"; exit 1; }
grep "ready" "$log"

echo
echo "== ingesting the project's documentation"
$RAGLINE ingest README.md docs deploy --uploaded-by demo

for query in "what happens when a worker crashes in the middle of a document?" \
             "how do I scale the embedder on Kubernetes?" \
             "which commands set everything up on a fresh machine?"; do
  echo
  echo "== search: $query"
  $RAGLINE search "$query" --top-k 3
done
echo
