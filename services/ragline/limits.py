"""Limits of the public API that more than one stage enforces: the gateway refuses a request past
them (INVALID_ARGUMENT naming the field), and the indexer checks the rows it writes against the
same numbers. One constant each, here."""

from __future__ import annotations

# A document id, in UTF-8 bytes.
MAX_DOCUMENT_ID_BYTES = 512
# Hits one Search may ask for.
MAX_TOP_K = 1000
