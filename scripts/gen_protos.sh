#!/usr/bin/env bash
# Regenerates the Python code for protos/ragline/v1.
#   The public API (job.proto, ingest_service.proto) goes into the client distribution,
#   clients/python/ragline_client/v1 (package ragline_client.v1): the client ships it, so it
#   installs without the server. The services' own protos go into services/ragline/v1.
# protoc names imports after the .proto paths (ragline.v1.*); the public modules' imports are
# rewritten to ragline_client.v1, so both packages share one copy of each descriptor.
# OUT=dir writes both packages under dir instead (the tests compare that with the committed code).
# Generates into a scratch folder first, so a failure never leaves a package half-deleted.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
# The protoc plugins (protoc-gen-mypy, protoc-gen-mypy_grpc) live beside that Python.
PATH="$(cd "$(dirname "$PY")" && pwd):$PATH"
PUBLIC="job ingest_service"
server_out=${OUT:-services}/ragline/v1
client_out=${OUT:-clients/python}/ragline_client/v1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$PY" -m grpc_tools.protoc -Iprotos \
  --python_out="$scratch" --mypy_out="$scratch" \
  --grpc_python_out="$scratch" --mypy_grpc_out="$scratch" \
  protos/ragline/v1/*.proto 2>&1 >/dev/null | { grep -v '^Writing mypy to' >&2 || true; }
# (pipefail: if protoc failed, its errors above name the file and line, and the script stops
# here, before touching the packages.)
public_re=$(echo "$PUBLIC" | sed 's/ /|/g')
sed -E -i \
  -e "s/^from ragline\.v1 import (($public_re)_pb2)/from ragline_client.v1 import \1/" \
  -e "s/'ragline\.v1\.(($public_re)_pb2)'/'ragline_client.v1.\1'/" \
  "$scratch"/ragline/v1/*_pb2*.py "$scratch"/ragline/v1/*_pb2*.pyi
mkdir -p "$server_out" "$client_out"
rm -f "$server_out"/*_pb2*.py "$server_out"/*_pb2*.pyi "$client_out"/*_pb2*.py "$client_out"/*_pb2*.pyi
for name in $PUBLIC; do
  mv "$scratch"/ragline/v1/"$name"_pb2*.py "$scratch"/ragline/v1/"$name"_pb2*.pyi "$client_out"/
done
cp "$scratch"/ragline/v1/*_pb2*.py "$scratch"/ragline/v1/*_pb2*.pyi "$server_out"/
touch "$server_out"/__init__.py "$client_out"/__init__.py
