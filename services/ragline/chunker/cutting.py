"""From a document's bytes to its chunks: parse, then split by tokens. Pure and synchronous."""

from __future__ import annotations

from ragline.chunker.parsers import extract_text
from ragline.chunker.splitter import Chunk, TokenSplitter
from ragline.errors import PermanentTaskError


def cut_document(
    splitter: TokenSplitter, content: bytes, content_type: str, chunk_size: int, chunk_overlap: int
) -> list[Chunk]:
    """The document's chunks in order; PermanentTaskError when it has no text to index."""
    return split_text(
        splitter, extract_text(content, content_type), content_type, chunk_size, chunk_overlap
    )


def split_text(
    splitter: TokenSplitter, text: str, content_type: str, chunk_size: int, chunk_overlap: int
) -> list[Chunk]:
    """A parsed document's text in chunks (cut_document's second step, timed on its own by the
    chunker's trace); PermanentTaskError when it has no text to index."""
    chunks = splitter.split(
        text, chunk_size, chunk_overlap, markdown=content_type == "text/markdown"
    )
    if not chunks:
        raise PermanentTaskError("the document has no text to index after parsing")
    return chunks
