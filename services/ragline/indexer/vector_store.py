"""The vector store: chunks of every tenant's document versions in one Milvus collection.

Each chunk row is keyed by ``chunk_key(document_id, document_version, chunk_index, tenant)``, so
a redelivered batch upserts over itself. When a version completes, the indexer deletes the
document's older versions; readers filter search hits to each document's live version.

Every row carries its tenant, the collection's partition key (a server keeps each tenant's rows
in their own partitions; Milvus Lite accepts the key and filters), and every query, search,
count and delete is restricted to one tenant by a filter this class adds itself: no method
reads or deletes across tenants unless it says so (`count(tenant=None)`, the migration). A
collection made before tenancy has no tenant field; `migrate_to_tenancy` copies it once into the
new schema with every row given to the default tenant (`ragline migrate-vectors`).

Works against Milvus Lite (a ``.db`` file path: one process only) and any Milvus server
(``http://host:19530``). Filters are built as escaped string literals because Milvus Lite does
not support pymilvus filter templating (``filter_params``).

Errors:
- :class:`ConfigurationError`: bad URI or collection name, an existing collection whose vector
  dimension differs, a query vector whose length is not the collection's.
- :class:`PermanentTaskError`: a row that can never be stored (wrong vector length, non-finite
  values, a document id over MAX_DOCUMENT_ID_BYTES (512) bytes, a job id over 64 bytes, metadata that is not JSON),
  checked before anything is written, or rejected by pymilvus' own data checks.
- :class:`StoreUnavailable` (retryable): every other Milvus or connection failure, including a
  Lite file held by another process (e.g. an old indexer still shutting down).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.client import entity_helper
from pymilvus.exceptions import (
    DataNotMatchException,
    DataTypeNotMatchException,
    MilvusException,
    ParamError,
)

from ragline.errors import (
    ConfigurationError,
    InvalidArgument,
    PermanentTaskError,
    StoreUnavailable,
)
from ragline.indexer.keys import CHUNK_KEY_LENGTH, chunk_key
from ragline.limits import MAX_DOCUMENT_ID_BYTES
from ragline.tenants import DEFAULT_TENANT, MAX_TENANT_CHARS, check_tenant, is_valid_tenant

__all__ = ["ChunkRow", "Hit", "LegacyCollection", "VectorStore"]

MAX_JOB_ID_BYTES = 64
MAX_TEXT_BYTES = 65535
# Milvus' own limit on the results of one search (the indexer fetches up to this many to find
# top_k hits of live versions).
MILVUS_MAX_RESULTS = 16384
# The document id column's width: room above the API's MAX_DOCUMENT_ID_BYTES, and what every
# existing collection was made with (a column cannot be narrowed in place).
_DOCUMENT_ID_COLUMN_BYTES = 1024

_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_OUTPUT_FIELDS = ["document_id", "document_version", "chunk_index", "text", "metadata"]
_TENANT_FIELD = "tenant"
# What a migration copies per round trip; a batch of 384-dim rows with text is a few MB.
_MIGRATION_BATCH = 1000
_STRONG = "Strong"
# Milvus string literals accept only these escapes (Lite rejects \x and \u); every other
# character, control characters and non-ASCII included, is matched verbatim.
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})

# Milvus Lite runs one in-process server per file and keeps it (and the file lock) until exit;
# counting our own users lets close() release it so the file can be reopened or handed over.
_lite_users: dict[str, int] = {}
_lite_users_lock = threading.Lock()

# pymilvus checks each VARCHAR value of a row by iterating over it character by character (it
# expects a list of strings), which is half the CPU of an upsert of ~1 KB chunks. `_entity`
# checks every string's length in bytes, which is stricter, so the module's switch goes off.
entity_helper.CHECK_STR_ARRAY = False


class LegacyCollection(ConfigurationError):
    """The collection was made before tenancy: its rows carry no tenant until migrated."""


@dataclass(frozen=True)
class ChunkRow:
    """One embedded chunk of one document version, as the indexer writes it."""

    document_id: str
    document_version: int
    chunk_index: int
    text: str
    vector: Sequence[float]
    metadata: Mapping[str, Any]  # JSON-able: uploaded_by, upload_time, original_filename, ...
    job_id: str
    tenant: str


@dataclass(frozen=True)
class Hit:
    """One search result; `score` is the cosine similarity (1.0 = same direction)."""

    document_id: str
    document_version: int
    chunk_index: int
    text: str
    score: float
    metadata: dict[str, Any]


class VectorStore:
    """Chunk storage and similarity search over one Milvus collection.

    Synchronous and safe for one caller at a time (calls are serialised by a lock); async code
    calls it through ``asyncio.to_thread``.
    """

    def __init__(
        self,
        uri: str,
        collection: str,
        dimension: int,
        *,
        token: str = "",
        timeout: float | None = 30.0,
    ) -> None:
        """Connect to Milvus. A ``.db`` path opens Milvus Lite, creating its parent folders."""
        if not _COLLECTION_NAME.fullmatch(collection):
            raise ConfigurationError(
                f"Milvus collection name {collection!r} is invalid: use letters, digits and "
                "underscores, starting with a letter or underscore (RAGLINE_MILVUS_COLLECTION)"
            )
        if dimension <= 0:
            raise ConfigurationError(f"vector dimension must be positive, got {dimension}")
        self._collection = collection
        self._dimension = dimension
        self._timeout = timeout
        self._lock = threading.Lock()
        self._lite_path: str | None = None
        if "://" not in uri:
            if not uri.endswith(".db"):
                raise ConfigurationError(
                    f"Milvus URI {uri!r} is neither a server URI (http://host:19530) nor a "
                    "Milvus Lite file path ending in .db"
                )
            path = Path(uri).expanduser().resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            uri = str(path)
            self._lite_path = uri
        self._uri = uri
        with _lite_users_lock:
            try:
                self._client = MilvusClient(uri=uri, token=token, timeout=timeout)
            except Exception as exc:
                _raise_store_error(
                    exc,
                    f"cannot open Milvus at {uri}"
                    + (
                        " (Milvus Lite allows one process per file: is another indexer "
                        "running on it?)"
                        if self._lite_path
                        else ""
                    ),
                )
            if self._lite_path is not None:
                _lite_users[self._lite_path] = _lite_users.get(self._lite_path, 0) + 1
        self._closed = False

    @property
    def collection(self) -> str:
        """The collection's name."""
        return self._collection

    @property
    def dimension(self) -> int:
        """The vector dimension this store expects."""
        return self._dimension

    def ensure_collection(self) -> None:
        """Create the collection if missing and load it; check an existing one's dimension and
        that it has tenants (LegacyCollection, telling how to migrate, if not)."""
        with self._call("create or check the collection"):
            if self._client.has_collection(self._collection, timeout=self._timeout):
                self._check_schema()
            else:
                self._create()
            # Idempotent; a collection reopened from a Lite file or a restarted server may be
            # released, and searches need it loaded.
            self._client.load_collection(self._collection, timeout=self._timeout)

    def upsert(self, rows: Sequence[ChunkRow]) -> None:
        """Write `rows` in one batched upsert; rows already stored (same key) are replaced."""
        if not rows:
            return
        # The indexer gives every chunk of one task the same metadata object: it is checked
        # (a JSON encoding, ~10% of the entity's cost) and copied once per object, not per row.
        metadata: dict[int, dict[str, Any]] = {}
        # Keyed by pk so a batch holding one chunk twice sends it once (last wins).
        data = {pk: entity for pk, entity in (self._entity(row, metadata) for row in rows)}
        with self._call(f"upsert {len(data)} chunks"):
            try:
                self._client.upsert(self._collection, list(data.values()), timeout=self._timeout)
            except (ParamError, DataNotMatchException, DataTypeNotMatchException) as exc:
                raise PermanentTaskError(f"Milvus rejected the chunks: {exc.message}") from exc

    def delete_document(
        self,
        tenant: str,
        document_id: str,
        *,
        below_version: int | None = None,
        only_version: int | None = None,
    ) -> int:
        """Delete one tenant's document's chunks and return how many were deleted.

        With no version arguments every version goes; `below_version` keeps that version and
        newer; `only_version` deletes one version. Both given means both conditions hold.
        """
        expr = _document_filter(tenant, document_id, below_version, only_version)
        with self._call(f"delete chunks of document {document_id!r}"):
            # Counted first: Milvus Lite answers a delete with the pks, a server with a count
            # that is not exact in every version. The lock keeps this store's own writes out.
            matched = self._count(expr)
            if matched:
                self._client.delete(self._collection, filter=expr, timeout=self._timeout)
        return matched

    def discard(
        self,
        tenant: str,
        document_id: str,
        *,
        below_version: int | None = None,
        only_version: int | None = None,
    ) -> None:
        """`delete_document` without the count: the indexer's clean-up, which needs no answer
        and so saves a filtered query (a scan of the whole collection on Milvus Lite)."""
        expr = _document_filter(tenant, document_id, below_version, only_version)
        with self._call(f"delete chunks of document {document_id!r}"):
            self._client.delete(self._collection, filter=expr, timeout=self._timeout)

    def search(
        self,
        tenant: str,
        vector: Sequence[float],
        top_k: int,
        *,
        document_ids: Sequence[str] = (),
    ) -> list[Hit]:
        """The `top_k` chunks of `tenant` nearest to `vector`, best first, optionally within
        `document_ids`."""
        if not 1 <= top_k <= MILVUS_MAX_RESULTS:
            raise InvalidArgument(
                "top_k", f"must be between 1 and {MILVUS_MAX_RESULTS}, got {top_k}"
            )
        if len(vector) != self._dimension:
            raise ConfigurationError(
                f"query vector has {len(vector)} dimensions but collection "
                f"{self._collection!r} holds {self._dimension}: the embedding model and the "
                "collection disagree"
            )
        expr = _tenant_filter(tenant)
        if document_ids:
            expr += f" and document_id in [{', '.join(_literal(d) for d in document_ids)}]"
        with self._call("search"):
            result = self._client.search(
                self._collection,
                data=[[float(x) for x in vector]],
                filter=expr,
                limit=top_k,
                output_fields=_OUTPUT_FIELDS,
                search_params={"metric_type": "COSINE"},
                consistency_level=_STRONG,
                timeout=self._timeout,
            )
        return [_hit(h) for h in result[0]] if result else []

    def count(self, document_id: str | None = None, *, tenant: str | None) -> int:
        """How many chunks are stored: of one tenant (or, with `tenant=None`, of every tenant),
        in all or for one document (every version)."""
        clauses = [] if tenant is None else [_tenant_filter(tenant)]
        if document_id is not None:
            clauses.append(f"document_id == {_literal(document_id)}")
        with self._call("count chunks"):
            return self._count(" and ".join(clauses))

    def migrate_to_tenancy(
        self, progress: Callable[[int, int], None] = lambda done, total: None
    ) -> int:
        """Moves a collection made before tenancy into the current schema, every row given to
        the default tenant with its primary key unchanged; returns the rows moved (0 when the
        collection is current or missing). `progress(done, total)` is called after each batch.

        The rows are copied into a new collection, the old one dropped and the copy renamed to
        its name. Stop the indexer first. A run cut short is safe to repeat: a copy left without
        its original (dropped, not yet renamed) is renamed; one left beside it is made again.
        """
        staging = f"{self._collection}__tenancy"
        if len(staging) > 255:
            raise ConfigurationError(f"collection name {self._collection!r} is too long to migrate")
        with self._call("migrate the collection to tenancy"):
            has = self._client.has_collection
            if not has(self._collection, timeout=self._timeout):
                if has(staging, timeout=self._timeout):
                    self._client.rename_collection(staging, self._collection, timeout=self._timeout)
                return 0
            schema = self._fields()
            if _has_tenants(schema):
                return 0
            self._check_dimension(schema)
            if has(staging, timeout=self._timeout):
                self._client.drop_collection(staging, timeout=self._timeout)
            self._create(staging)
            self._client.load_collection(self._collection, timeout=self._timeout)
            total = self._count("")
            moved = 0
            fields = ["pk", "document_id", "document_version", "chunk_index", "job_id", "text"]
            rows = self._client.query_iterator(
                self._collection,
                batch_size=_MIGRATION_BATCH,
                filter="",
                output_fields=[*fields, "metadata", "vector"],
                timeout=self._timeout,
            )
            try:
                while batch := rows.next():
                    self._client.insert(
                        staging,
                        [{**row, _TENANT_FIELD: DEFAULT_TENANT} for row in batch],
                        timeout=self._timeout,
                    )
                    moved += len(batch)
                    progress(moved, total)
            finally:
                rows.close()
            self._client.drop_collection(self._collection, timeout=self._timeout)
            self._client.rename_collection(staging, self._collection, timeout=self._timeout)
            self._client.load_collection(self._collection, timeout=self._timeout)
        return moved

    def close(self) -> None:
        """Close the connection; for Milvus Lite, stop its server when no store here uses it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(Exception):  # closing must not fail shutdown
                self._client.close()
            if self._lite_path is None:
                return
            with _lite_users_lock:
                users = _lite_users.get(self._lite_path, 1) - 1
                if users > 0:
                    _lite_users[self._lite_path] = users
                    return
                _lite_users.pop(self._lite_path, None)
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self._lite_path)

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _call(self, action: str) -> Iterator[None]:
        """Serialise one operation and re-raise library errors as ragline's own."""
        with self._lock:
            if self._closed:
                raise StoreUnavailable(f"vector store is closed; cannot {action}")
            try:
                yield
            except Exception as exc:
                _raise_store_error(exc, f"cannot {action} in collection {self._collection!r}")

    def _count(self, expr: str) -> int:
        rows = self._client.query(
            self._collection,
            filter=expr,
            output_fields=["count(*)"],
            consistency_level=_STRONG,
            timeout=self._timeout,
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def _create(self, name: str | None = None) -> None:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, max_length=CHUNK_KEY_LENGTH * 2, is_primary=True)
        # The partition key: a server hashes tenants over the collection's partitions, so one
        # tenant's search reads its own partitions only. The filter stays the guarantee.
        schema.add_field(
            _TENANT_FIELD, DataType.VARCHAR, max_length=MAX_TENANT_CHARS + 1, is_partition_key=True
        )
        schema.add_field("document_id", DataType.VARCHAR, max_length=_DOCUMENT_ID_COLUMN_BYTES)
        schema.add_field("document_version", DataType.INT64)
        schema.add_field("chunk_index", DataType.INT64)
        schema.add_field("job_id", DataType.VARCHAR, max_length=MAX_JOB_ID_BYTES)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self._dimension)
        index = MilvusClient.prepare_index_params()
        # AUTOINDEX works on Milvus Lite and lets a server pick its best index (HNSW today).
        index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
        self._client.create_collection(
            name or self._collection,
            schema=schema,
            index_params=index,
            consistency_level=_STRONG,
            timeout=self._timeout,
        )

    def _check_schema(self) -> None:
        fields = self._fields()  # one description of the collection for both checks
        self._check_dimension(fields)
        if not _has_tenants(fields):
            raise LegacyCollection(
                f"Milvus collection {self._collection!r} at {self._uri} was made before tenancy: "
                "its chunks carry no tenant. Stop the indexer and run `ragline migrate-vectors` "
                "once (it gives every chunk to tenant 'default'), then start it again"
            )

    def _fields(self) -> list[dict[str, Any]]:
        info = self._client.describe_collection(self._collection, timeout=self._timeout)
        return list(info.get("fields", []))

    def _check_dimension(self, fields: list[dict[str, Any]]) -> None:
        vector = next((f for f in fields if f.get("name") == "vector"), None)
        found = None if vector is None else int(vector.get("params", {}).get("dim", 0))
        if found != self._dimension:
            what = "no 'vector' field" if found is None else f"{found}-dimensional vectors"
            raise ConfigurationError(
                f"Milvus collection {self._collection!r} at {self._uri} holds {what}, but the "
                f"embedding model makes {self._dimension}-dimensional vectors: set "
                "RAGLINE_MILVUS_COLLECTION to another collection, or drop this one and "
                "re-ingest its documents"
            )

    def _entity(
        self, row: ChunkRow, checked: dict[int, dict[str, Any]]
    ) -> tuple[str, dict[str, Any]]:
        """The row as a Milvus entity, or PermanentTaskError if it can never be stored.

        `checked` holds the metadata already checked in this batch, by the id of the row's
        mapping (the batch's rows keep every mapping alive, so an id is not reused meanwhile).
        """
        where = f"chunk {row.chunk_index} of document {row.document_id!r} v{row.document_version}"
        if not is_valid_tenant(row.tenant):
            raise PermanentTaskError(f"{where}: tenant {row.tenant!r} is not a valid tenant id")
        if len(row.document_id.encode("utf-8")) > MAX_DOCUMENT_ID_BYTES:
            raise PermanentTaskError(f"{where}: document id over {MAX_DOCUMENT_ID_BYTES} bytes")
        if len(row.job_id.encode("utf-8")) > MAX_JOB_ID_BYTES:
            raise PermanentTaskError(f"{where}: job id over {MAX_JOB_ID_BYTES} bytes")
        if len(row.vector) != self._dimension:
            raise PermanentTaskError(
                f"{where}: vector has {len(row.vector)} dimensions, collection "
                f"{self._collection!r} expects {self._dimension}"
            )
        if not np.isfinite(np.asarray(row.vector, dtype=np.float32)).all():
            raise PermanentTaskError(f"{where}: vector holds NaN or infinity")
        # Handed on as it came: the indexer's vectors are the index task's own repeated float
        # field, which pymilvus copies into its request in C. An array it would turn into a
        # list of Python floats first, and a list it copies one float at a time (~20 us a row).
        vector = row.vector
        metadata = checked.get(id(row.metadata))
        if metadata is None:
            metadata = dict(row.metadata)
            try:
                json.dumps(metadata, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise PermanentTaskError(f"{where}: metadata is not JSON: {exc}") from exc
            checked[id(row.metadata)] = metadata
        pk = chunk_key(row.document_id, row.document_version, row.chunk_index, row.tenant)
        return pk, {
            "pk": pk,
            _TENANT_FIELD: row.tenant,
            "document_id": row.document_id,
            "document_version": row.document_version,
            "chunk_index": row.chunk_index,
            "job_id": row.job_id,
            "text": _truncate_utf8(row.text, MAX_TEXT_BYTES),
            "metadata": metadata,
            "vector": vector,
        }


def _has_tenants(fields: list[dict[str, Any]]) -> bool:
    return any(f.get("name") == _TENANT_FIELD for f in fields)


def _tenant_filter(tenant: str) -> str:
    # Checked, not escaped: a tenant id that is not one is a bug upstream, never a query.
    check_tenant(tenant, "a query of the vector store")
    return f"{_TENANT_FIELD} == {_literal(tenant)}"


def _document_filter(
    tenant: str, document_id: str, below_version: int | None, only_version: int | None
) -> str:
    expr = f"{_tenant_filter(tenant)} and document_id == {_literal(document_id)}"
    if below_version is not None:
        expr += f" and document_version < {int(below_version)}"
    if only_version is not None:
        expr += f" and document_version == {int(only_version)}"
    return expr


def _literal(value: str) -> str:
    """`value` as a double-quoted Milvus filter string literal."""
    return f'"{value.translate(_ESCAPES)}"'


def _truncate_utf8(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` UTF-8 bytes, never inside a character."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    # "ignore" drops only the partial character the byte cut left at the end.
    return data[:max_bytes].decode("utf-8", errors="ignore")


def _hit(raw: Mapping[str, Any]) -> Hit:
    entity = raw["entity"]
    metadata = entity.get("metadata") or {}
    if isinstance(metadata, str | bytes):  # older servers hand JSON fields back undecoded
        metadata = json.loads(metadata)
    return Hit(
        document_id=str(entity["document_id"]),
        document_version=int(entity["document_version"]),
        chunk_index=int(entity["chunk_index"]),
        text=str(entity["text"]),
        score=float(raw["distance"]),
        metadata=dict(metadata),
    )


def _is_store_failure(exc: BaseException) -> bool:
    # grpc errors can escape pymilvus; matched by module since adapters may not import grpc.
    return isinstance(exc, MilvusException | OSError | TimeoutError) or type(
        exc
    ).__module__.startswith("grpc")


def _raise_store_error(exc: Exception, context: str) -> NoReturn:
    """Re-raise `exc` as StoreUnavailable if it is a store failure; otherwise unchanged."""
    if not _is_store_failure(exc):
        raise exc
    detail = exc.message if isinstance(exc, MilvusException) else str(exc) or type(exc).__name__
    raise StoreUnavailable(f"{context}: {detail}") from exc
