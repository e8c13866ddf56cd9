"""Logging set-up shared by every ragline process: one readable line per event, naming the service."""

from __future__ import annotations

import logging
import sys


def configure_logging(service: str, level: str = "INFO") -> None:
    """Logs to stderr as `time LEVEL [service] message`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)-7s [{service}] %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that chat at INFO about every connection.
    for noisy in ("httpx", "urllib3", "pymilvus", "milvus_lite", "aio_pika", "aiormq"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
