"""Split text into chunks measured in tokens of the embedding model's own tokenizer.

semantic-text-splitter does the cutting: it fills each chunk with the largest semantic units
that fit (paragraphs, then lines, sentences, words, graphemes), so chunks end at paragraph and
sentence boundaries wherever the size allows.

It measures many candidate chunks per chunk it makes. Running the tokenizer on each costs about
7 CPU-seconds per MB of text; when the tokenizer splits words on whitespace first (BERT-style
models), a text's token count is the sum of its words' counts, so a count per distinct word,
kept in a table, gives the same chunks about 20 times faster. The splitter measures about a
dozen candidate pieces of a section per chunk it makes; summing each piece's words again was
nearly all of the time left, so each section's word counts are summed once, and a piece is
measured as the difference of two of those running sums (`_SectionCounter`).
"""

from __future__ import annotations

import json
import re
import threading
from bisect import bisect_left
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from semantic_text_splitter import MarkdownSplitter, TextSplitter
from tokenizers import Tokenizer

from ragline.errors import PermanentTaskError

__all__ = ["Chunk", "TokenSplitter", "section_end"]

# semantic-text-splitter's time grows with the square of the text's length (a 4 MB text costs
# 3x per MB what a 0.5 MB one does), so long texts are split a section of about this many
# characters at a time, each cut at a paragraph break (see `split`).
SECTION_CHARS = 131_072


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
        self._word_counts: WordTokenCounter | None = (
            WordTokenCounter(tokenizer) if _splits_on_whitespace(tokenizer) else None
        )
        # The tokenizer's splitters, one per configuration (see `_section_splitter`).
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
        chunks: list[Chunk] = []
        start = 0
        while start < len(text):
            end = section_end(text, start, SECTION_CHARS)
            section = text[start:end]
            splitter = self._section_splitter(section, chunk_size, chunk_overlap, markdown)
            pieces = splitter.chunk_indices(section)
            if end < len(text) and len(pieces) > 1:
                # The section's last chunk was cut short by the section's end: the next section
                # starts where it did, so it is made again whole, overlapping the one before it
                # as any two chunks do.
                offset, _ = pieces.pop()
                end = start + offset
            for _, piece in pieces:
                if not piece.strip():
                    continue
                for part, tokens in self._fit(piece, chunk_size):
                    chunks.append(Chunk(len(chunks), part, tokens))
            start = end
        return chunks

    def _section_splitter(
        self, section: str, chunk_size: int, overlap: int, markdown: bool
    ) -> TextSplitter | MarkdownSplitter:
        """A splitter for one section: with the word table, one measuring by that section's
        running sums (built in under a microsecond); else the tokenizer's, built once."""
        kind = MarkdownSplitter if markdown else TextSplitter
        if self._word_counts is not None:
            counter = _SectionCounter(section, self._word_counts)
            return kind.from_callback(counter, capacity=chunk_size, overlap=overlap)
        key = (chunk_size, overlap, markdown)
        with self._lock:
            splitter = self._splitters.get(key)
            if splitter is None:
                # Building this one costs tens of milliseconds; it is immutable and any thread
                # may call it.
                splitter = kind.from_huggingface_tokenizer(
                    self._tokenizer, capacity=chunk_size, overlap=overlap
                )
                self._splitters[key] = splitter
            return splitter

    def _fit(self, text: str, chunk_size: int) -> list[tuple[str, int]]:
        """`text` and its token count when it fits in `chunk_size` tokens, else its halves, cut
        until each fits.

        A safety net, measured exactly (by the word table where it is exact, else by the
        tokenizer): the splitter emits a single grapheme whole even when that is more tokens
        than allowed, and its word-table sizes can be off on a few control characters.
        """
        words = self._word_counts
        if words is not None and words.exact_for(text):
            tokens = words.count(text)
        else:
            tokens = self.count_tokens(text)
        if tokens <= chunk_size:
            return [(text, tokens)]
        if len(text) == 1:
            raise PermanentTaskError(
                f"chunk_size {chunk_size} is too small for this document: the character "
                f"{text!r} alone is {tokens} tokens"
            )
        middle = len(text) // 2
        # Prefer to cut at a space near the middle, so no word is split.
        space = text.rfind(" ", 0, middle)
        if space > 0:
            middle = space
        halves = (text[:middle].strip(), text[middle:].strip())
        return [part for half in halves if half for part in self._fit(half, chunk_size)]


def section_end(text: str, start: int, size: int) -> int:
    """Where the section of `text` from `start` ends: after at most `size` characters, just after
    a paragraph break in its last quarter if it has one, else a line break, else a space."""
    if len(text) - start <= size:
        return len(text)
    end = start + size
    for separator in ("\n\n", "\n", " "):
        cut = text.rfind(separator, start + size * 3 // 4, end)
        if cut >= 0:
            return cut + len(separator)
    return end


class WordTokenCounter:
    """Token counts of texts as sums of their whitespace-separated words' counts, each word
    tokenized once. Exact for BERT-style tokenizers on text without the few characters that
    Python and BERT disagree on as whitespace (see `exact_for`)."""

    # Distinct words kept; the table starts over beyond this (about 30 MB).
    MAX_WORDS = 200_000

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._counts: dict[str, int] = {}

    def count(self, text: str) -> int:
        """How many tokens `text` is, special tokens not counted."""
        return sum(self.counts(text.split()))

    def counts(self, words: list[str]) -> list[int]:
        """Each word's token count, in order."""
        counts = self._counts
        try:
            return list(map(counts.__getitem__, words))
        except KeyError:
            if len(counts) >= self.MAX_WORDS:
                counts.clear()
            for word in words:
                if word not in counts:
                    counts[word] = len(self._tokenizer.encode(word, add_special_tokens=False))
            # Another thread may have cleared the table meanwhile: such a word is counted again.
            return [counts[w] if w in counts else self._count_word(w) for w in words]

    def _count_word(self, word: str) -> int:
        count = len(self._tokenizer.encode(word, add_special_tokens=False))
        self._counts[word] = count
        return count

    @staticmethod
    def exact_for(text: str) -> bool:
        """Whether `count(text)` is the tokenizer's own count: Python splits words at these
        characters, while BERT deletes them (control characters) or keeps them in a word."""
        return _WHITESPACE_DISAGREEMENTS.search(text) is None


class _SectionCounter:
    """Token counts of pieces of one section, as `WordTokenCounter.count` gives them, from
    running sums of the section's word counts.

    A piece the splitter measures is a substring of the section. Found in the section (any
    occurrence: the same characters are the same words), a piece that cuts no word in two is
    the words from its start to its end: a find and two bisections, not a split and a sum.
    Any other piece is counted word by word as before.
    """

    def __init__(self, section: str, words: WordTokenCounter) -> None:
        self._section = section
        self._words = words
        self._starts = [m.start() for m in _WORD.finditer(section)]
        self._sums = list(accumulate(words.counts(section.split()), initial=0))
        # `\S+` and str.split() agree on whitespace; should they ever not, every piece is
        # counted word by word.
        self._exact = len(self._sums) == len(self._starts) + 1
        # Where the last piece was found: the splitter moves forward through the section.
        self._hint = 0

    def __call__(self, piece: str) -> int:
        section = self._section
        at = section.find(piece, self._hint) if piece else -1
        if at < 0 and piece:
            at = section.find(piece)
        end = at + len(piece)
        if (
            at < 0
            or not self._exact
            or (at > 0 and not section[at - 1].isspace() and not section[at].isspace())
            or (
                end < len(section) and not section[end - 1].isspace() and not section[end].isspace()
            )
        ):
            return self._words.count(piece)
        self._hint = at
        return (
            self._sums[bisect_left(self._starts, end)] - self._sums[bisect_left(self._starts, at)]
        )


_WORD = re.compile(r"\S+")
_WHITESPACE_DISAGREEMENTS = re.compile("[\x0b\x0c\x1c-\x1f\x85\u2028\u2029]")


def _splits_on_whitespace(tokenizer: Tokenizer) -> bool:
    """Whether the tokenizer is BERT-style: its counts add up word by word."""
    config = json.loads(tokenizer.to_str())
    pre = config.get("pre_tokenizer") or {}
    normalizer = config.get("normalizer") or {}
    return pre.get("type") == "BertPreTokenizer" and normalizer.get("type") == "BertNormalizer"
