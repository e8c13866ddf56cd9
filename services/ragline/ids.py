"""Random identifiers for jobs and messages."""

from __future__ import annotations

import os


def new_id() -> str:
    """128 random bits as 32 hex digits: the format of uuid4().hex at a quarter of its cost
    (the gateway makes two per accepted document)."""
    return os.urandom(16).hex()
