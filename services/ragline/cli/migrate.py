"""`ragline migrate-vectors`: moves a Milvus collection made before tenancy into the current
schema, once, every chunk given to the default tenant (see VectorStore.migrate_to_tenancy).

Redis needs no such step: the default tenant's keys are the ones written before tenancy. Run it
where the indexer runs, with the indexer stopped (Milvus Lite lets one process open a file).
"""

from __future__ import annotations

import argparse
import os
import sys

from ragline.config import Settings
from ragline.indexer.vector_store import VectorStore
from ragline.model_info import resolve_model


def run_migrate_vectors(args: argparse.Namespace) -> int:
    settings = Settings.from_env(os.environ)
    model = resolve_model(settings.model)
    where = f"collection {settings.milvus_collection!r} at {settings.milvus_uri}"

    def progress(done: int, total: int) -> None:
        print(f"\r  copied {done:,} of {total:,} chunks", end="", file=sys.stderr, flush=True)

    with VectorStore(
        settings.milvus_uri,
        settings.milvus_collection,
        model.dimension,
        token=settings.milvus_token,
    ) as store:
        moved = store.migrate_to_tenancy(progress)
    if moved:
        print(file=sys.stderr)
        print(f"moved {moved:,} chunks of {where} to tenant 'default'; start the indexer again")
    else:
        print(f"nothing to move: {where} already has tenants (or does not exist yet)")
    return 0
