"""ragline's throughput benchmark: `python -m bench` (or `make bench`).

Measures, on one corpus chunked once: a hand-written transformers loop, the embedder's own
encode path without queues, the whole pipeline end to end, and the gateway alone beside a bare
gRPC echo and raw Redis XADD. See `python -m bench --help`.
"""
