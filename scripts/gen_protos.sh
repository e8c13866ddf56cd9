#!/usr/bin/env bash
# Regenerates the Python code for protos/ragline/v1 into services/ragline/v1 (package ragline.v1).
# OUT=dir writes the package under dir instead (the tests compare that with the committed code).
# Generates into a scratch folder first, so a failure never leaves the package half-deleted.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
# The protoc plugins (protoc-gen-mypy, protoc-gen-mypy_grpc) live beside that Python.
PATH="$(cd "$(dirname "$PY")" && pwd):$PATH"
out=${OUT:-services}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$PY" -m grpc_tools.protoc -Iprotos \
  --python_out="$scratch" --mypy_out="$scratch" \
  --grpc_python_out="$scratch" --mypy_grpc_out="$scratch" \
  protos/ragline/v1/*.proto 2>&1 >/dev/null | { grep -v '^Writing mypy to' >&2 || true; }
# (pipefail: if protoc failed, its errors above name the file and line, and the script stops
# here, before touching the package.)
mkdir -p "$out"/ragline/v1
rm -f "$out"/ragline/v1/*_pb2*.py "$out"/ragline/v1/*_pb2*.pyi
cp "$scratch"/ragline/v1/*_pb2*.py "$scratch"/ragline/v1/*_pb2*.pyi "$out"/ragline/v1/
touch "$out"/ragline/v1/__init__.py
