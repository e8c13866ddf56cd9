#!/usr/bin/env bash
# Regenerates the Python code for protos/ragline/v1 into services/ragline/v1 (package ragline.v1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
out=services
rm -f "$out"/ragline/v1/*_pb2*.py "$out"/ragline/v1/*_pb2*.pyi
"$PY" -m grpc_tools.protoc -Iprotos \
  --python_out="$out" --mypy_out="$out" \
  --grpc_python_out="$out" --mypy_grpc_out="$out" \
  protos/ragline/v1/*.proto
touch "$out"/ragline/v1/__init__.py
