"""Split text into chunks measured in tokens of the embedding model's own tokenizer.

semantic-text-splitter does the cutting: it fills each chunk with the largest semantic units
that fit (paragraphs, then lines, sentences, words, graphemes), so chunks end at paragraph and
sentence boundaries wherever the size allows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from semantic_text_splitter import MarkdownSplitter, TextSplitter
from tokenizers import Tokenizer

from ragline.errors import PermanentTaskError

__all__ = ["Chunk", "TokenSplitter"]


@dataclass(frozen=True)
class Chunk:
    """One piece of a document, small enough to embed whole."""

    index: int  # position in the document from 0
    text: str
    token_count: int  # tokens of the model's tokenizer, special tokens NOT counted


class TokenSplitter:
    """Splits text into chunks of at most `chunk_size` tokens; safe to share between threads.

    Token counts leave out the special tokens the model adds ([CLS], [SEP]), so a model whose
    input limit is 256 tokens takes chunks of up to 254.
    """

    def __init__(self, tokenizer_file: Path) -> None:
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        # Model tokenizer files often pad and truncate every input to a fixed length; with either
        # on, every text would seem to have that many tokens and chunk sizes would be wrong.
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        # Building a splitter costs tens of milliseconds, so each configuration is built once.
        # The splitters are immutable Rust objects that any thread may call.
        self._splitters: dict[tuple[int, int, bool], TextSplitter | MarkdownSplitter] = {}
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """How many tokens `text` is, special tokens not counted."""
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def split(
        self, text: str, chunk_size: int, chunk_overlap: int, *, markdown: bool = False
    ) -> list[Chunk]:
        """Chunks of `text`, each at most `chunk_size` tokens, in document order.

        Consecutive chunks share up to `chunk_overlap` tokens. With `markdown`, the text's
        Markdown structure (headings, lists, code blocks) guides the cuts. Whitespace-only
        chunks are dropped. Raises ValueError unless 1 <= chunk_size and
        0 <= chunk_overlap < chunk_size.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError(
                f"chunk_overlap must be from 0 to chunk_size - 1 ({chunk_size - 1}), "
                f"not {chunk_overlap}"
            )
        splitter = self._splitter(chunk_size, chunk_overlap, markdown)
        chunks: list[Chunk] = []
        for piece in splitter.chunks(text):
            if not piece.strip():
                continue
            for part in self._fit(piece, chunk_size):
                chunks.append(Chunk(len(chunks), part, self.count_tokens(part)))
        return chunks

    def _splitter(
        self, chunk_size: int, overlap: int, markdown: bool
    ) -> TextSplitter | MarkdownSplitter:
        key = (chunk_size, overlap, markdown)
        with self._lock:
            splitter = self._splitters.get(key)
            if splitter is None:
                kind = MarkdownSplitter if markdown else TextSplitter
                splitter = kind.from_huggingface_tokenizer(
                    self._tokenizer, capacity=chunk_size, overlap=overlap
                )
                self._splitters[key] = splitter
            return splitter

    def _fit(self, text: str, chunk_size: int) -> list[str]:
        """`text` as it is when it fits in `chunk_size` tokens, else cut in halves until each fits.

        A safety net: the splitter measures every chunk it makes with the same tokenizer, but it
        emits a single grapheme whole even when that is more tokens than allowed.
        """
        if self.count_tokens(text) <= chunk_size:
            return [text]
        if len(text) == 1:
            raise PermanentTaskError(
                f"chunk_size {chunk_size} is too small for this document: the character "
                f"{text!r} alone is {self.count_tokens(text)} tokens"
            )
        middle = len(text) // 2
        # Prefer to cut at a space near the middle, so no word is split.
        space = text.rfind(" ", 0, middle)
        if space > 0:
            middle = space
        halves = (text[:middle].strip(), text[middle:].strip())
        return [part for half in halves if half for part in self._fit(half, chunk_size)]
