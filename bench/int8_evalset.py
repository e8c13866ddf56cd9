"""The int8 trial's texts: a retrieval set built from the bench corpus, and calibration texts
from other modules.

No PyPI package was found that ships a small retrieval set (queries and relevance judgements)
inside its wheel: BEIR, ir_datasets and MTEB fetch theirs at run time. So the queries come from
the corpus itself: each module's one-line pydoc summary (the NAME section) is a query, that
module's chunks are its relevant texts, and the summary is cut out of the page before it is
chunked, so no query is among the indexed texts. Calibration uses the chunks and summaries of
the modules that sort after the evaluated ones: no evaluated text is seen while calibrating.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from bench import corpus

# Object addresses in reprs ("<function f at 0x7f...>") differ from run to run.
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")


@dataclass(frozen=True)
class EvalSet:
    """Indexed chunks, held-out queries with the chunks relevant to each, calibration texts."""

    modules: list[str]
    chunks: list[str]
    chunk_module: list[int]
    queries: list[str]
    query_module: list[int]
    calibration: list[str]
    calibration_modules: list[str] = field(default_factory=list)

    @property
    def relevant(self) -> list[set[int]]:
        """For each query, the indices of its module's chunks."""
        by_module: dict[int, set[int]] = {}
        for i, m in enumerate(self.chunk_module):
            by_module.setdefault(m, set()).add(i)
        return [by_module.get(m, set()) for m in self.query_module]

    def fingerprint(self) -> str:
        """A hash of every text, so cached vectors are only reused for the same set."""
        h = hashlib.sha256()
        for part in (self.chunks, self.queries, self.calibration):
            for text in part:
                h.update(text.encode())
                h.update(b"\0")
            h.update(b"\1")
        return h.hexdigest()[:16]

    def stats(self) -> dict[str, int]:
        """Sizes for the report."""
        return {
            "modules": len(self.modules),
            "chunks": len(self.chunks),
            "queries": len(self.queries),
            "calibration_modules": len(self.calibration_modules),
            "calibration_texts": len(self.calibration),
        }


def split_summary(page: str) -> tuple[str, str]:
    """A pydoc plain-text page's summary and the page without it.

    The summary is the text after "name - " in the NAME section (the docstring's first line,
    when a blank line follows it); failing that, the first paragraph of DESCRIPTION (pydoc puts
    the whole docstring there otherwise); "" when the page has neither. What is returned as
    the summary is cut out of the page."""
    lines = page.split("\n")
    name = _section(lines, "NAME")
    if name is not None:
        start, end = name
        text = " ".join(line.strip() for line in lines[start + 1 : end])
        _, sep, summary = text.partition(" - ")
        if sep and summary.strip():
            return summary.strip(), "\n".join(lines[:start] + lines[end + 1 :])
    description = _section(lines, "DESCRIPTION")
    if description is not None:
        start, end = description
        summary = " ".join(line.strip() for line in lines[start + 1 : end])
        # The heading stays when more paragraphs follow it.
        rest = (
            lines[:start] + lines[end + 1 :]
            if _blank_to_next(lines, end)
            else (lines[: start + 1] + lines[end + 1 :])
        )
        return summary.strip(), "\n".join(rest)
    return "", page


def _section(lines: list[str], heading: str) -> tuple[int, int] | None:
    """The heading's line and the first line after its first paragraph (a blank, or a line
    holding only spaces, as pydoc writes within sections)."""
    try:
        start = lines.index(heading)
    except ValueError:
        return None
    end = start + 1
    while end < len(lines) and lines[end].strip():
        end += 1
    return start, end


def _blank_to_next(lines: list[str], end: int) -> bool:
    """Whether the paragraph ending at `end` is the section's last (a heading comes next)."""
    nxt = end + 1
    return nxt >= len(lines) or (bool(lines[nxt]) and not lines[nxt][0].isspace())


def build(n_modules: int, n_calibration_modules: int, max_chars: int) -> EvalSet:
    """The first `n_modules` standard-library modules as the retrieval set, the next
    `n_calibration_modules` as calibration texts; pages cut to `max_chars` (0: whole)."""
    from ragline.chunker.cutting import cut_document
    from ragline.chunker.splitter import TokenSplitter
    from ragline.model_info import resolve_model

    splitter = TokenSplitter(
        resolve_model("sentence-transformers/all-MiniLM-L6-v2").path / "tokenizer.json"
    )
    names = corpus.module_names(n_modules + n_calibration_modules)
    evaluated, calibrating = names[:n_modules], names[n_modules:]

    def cut(page: str) -> list[str]:
        body = page[:max_chars] if max_chars > 0 else page
        if not body.strip():
            return []
        chunks = cut_document(
            splitter, body.encode(), "text/plain", corpus.CHUNK_SIZE, corpus.CHUNK_OVERLAP
        )
        return [c.text for c in chunks]

    chunks: list[str] = []
    chunk_module: list[int] = []
    queries: list[str] = []
    query_module: list[int] = []
    for m, name in enumerate(evaluated):
        summary, body = split_summary(_stable(corpus.render(name)))
        pieces = cut(body)
        chunks.extend(pieces)
        chunk_module.extend([m] * len(pieces))
        if summary and pieces:
            queries.append(summary)
            query_module.append(m)
    calibration: list[str] = []
    for name in calibrating:
        summary, body = split_summary(_stable(corpus.render(name)))
        calibration.extend(cut(body))
        if summary:
            calibration.append(summary)
    return EvalSet(evaluated, chunks, chunk_module, queries, query_module, calibration, calibrating)


def _stable(page: str) -> str:
    """The page without what changes between runs: object addresses. (The order of sets in
    reprs follows the hash seed: `bench.int8_trial` runs with PYTHONHASHSEED=0.)"""
    return _ADDRESS.sub("0x...", page)
