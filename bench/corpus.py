"""The benchmark corpus: `pydoc` text of standard-library modules, chunked once.

Every measurement runs on the same chunks, cut by the chunker's own code
(`ragline.chunker.cutting.cut_document`) with the gateway's defaults for the default model.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pydoc
import statistics
import sys
import warnings
from dataclasses import dataclass
from typing import Any

# Modules that open windows or browsers, print on import, or are slow or unsafe to import.
_SKIP = frozenset(
    {
        "antigravity",
        "this",
        "idlelib",
        "tkinter",
        "turtle",
        "turtledemo",
        "msilib",
        "winreg",
        "winsound",
        "_winapi",
        "msvcrt",
        "nt",
        "ensurepip",
        "venv",
        "lib2to3",
        "pydoc_data",
        "xxsubtype",
    }
)

CHUNK_SIZE = 254  # the default model's input limit (256) less [CLS] and [SEP]
CHUNK_OVERLAP = 32  # the gateway's default overlap


@dataclass(frozen=True)
class Document:
    """One module's documentation as a text/plain document."""

    document_id: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """The documents and, in document order, every chunk the chunker makes of them."""

    documents: list[Document]
    chunks: list[str]
    chunk_tokens: list[int]  # per chunk, special tokens not counted
    chunks_per_document: list[int]

    def stats(self) -> dict[str, Any]:
        """Sizes and token statistics for the report."""
        tokens = self.chunk_tokens
        return {
            "documents": len(self.documents),
            "bytes": sum(len(d.text.encode()) for d in self.documents),
            "chunks": len(self.chunks),
            "tokens": sum(tokens),
            "tokens_mean": round(statistics.fmean(tokens), 1) if tokens else 0.0,
            "tokens_median": statistics.median(tokens) if tokens else 0,
            "tokens_min": min(tokens, default=0),
            "tokens_max": max(tokens, default=0),
            "chunk_size": CHUNK_SIZE,
            "chunk_overlap": CHUNK_OVERLAP,
        }


def module_names(limit: int) -> list[str]:
    """Up to `limit` public standard-library module names, sorted, that import cleanly."""
    names: list[str] = []
    for name in sorted(sys.stdlib_module_names):
        if len(names) >= limit:
            break
        if name.startswith("_") or name in _SKIP:
            continue
        if _import(name) is not None:
            names.append(name)
    return names


def render(name: str, max_chars: int = 0) -> str:
    """The module's plain-text `pydoc` page, cut to `max_chars` (0: whole)."""
    module = _import(name)
    with _quiet():
        text = pydoc.render_doc(module, renderer=pydoc.plaintext)  # type: ignore[attr-defined]
    return text[:max_chars] if max_chars > 0 else text


def build(n_modules: int, max_chars: int = 0) -> Corpus:
    """Render `n_modules` modules and chunk each with the chunker's code and defaults."""
    from ragline.chunker.cutting import cut_document
    from ragline.chunker.splitter import TokenSplitter
    from ragline.model_info import resolve_model

    splitter = TokenSplitter(
        resolve_model("sentence-transformers/all-MiniLM-L6-v2").path / "tokenizer.json"
    )
    documents: list[Document] = []
    chunks: list[str] = []
    tokens: list[int] = []
    per_doc: list[int] = []
    for name in module_names(n_modules):
        text = render(name, max_chars)
        if not text.strip():
            continue
        cut = cut_document(splitter, text.encode(), "text/plain", CHUNK_SIZE, CHUNK_OVERLAP)
        documents.append(Document(f"pydoc-{name}", text))
        chunks.extend(c.text for c in cut)
        tokens.extend(c.token_count for c in cut)
        per_doc.append(len(cut))
    return Corpus(documents, chunks, tokens, per_doc)


def _import(name: str) -> Any:
    try:
        with _quiet():
            return importlib.import_module(name)
    except Exception:  # any import failure just leaves the module out
        return None


@contextlib.contextmanager
def _quiet() -> Any:
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield
