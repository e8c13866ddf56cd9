from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ragline.chunker.parsers import extract_text
from ragline.content_types import check_content, content_type_for_path
from tests.corpus import CorpusDoc, mixed_corpus, write_corpus

pytestmark = pytest.mark.unit


def test_the_corpus_is_twenty_documents_five_of_each_type() -> None:
    docs = mixed_corpus()
    assert len(docs) == 20
    assert Counter(doc.content_type for doc in docs) == {
        "text/plain": 5,
        "text/markdown": 5,
        "text/html": 5,
        "application/pdf": 5,
    }
    for field in ("document_id", "filename", "query"):
        assert len({getattr(doc, field) for doc in docs}) == 20


@pytest.mark.parametrize("doc", mixed_corpus(), ids=lambda doc: doc.filename)
def test_every_document_parses_to_prose(doc: CorpusDoc) -> None:
    assert content_type_for_path(doc.filename) == doc.content_type
    check_content(doc.content, doc.content_type)
    text = extract_text(doc.content, doc.content_type)
    assert 150 <= len(text.split()) <= 650
    assert "<" not in text
    assert "analytics" not in text  # the HTML pages' scripts are dropped


def test_the_corpus_is_deterministic() -> None:
    assert mixed_corpus() == mixed_corpus()


def test_write_corpus_writes_every_file(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "corpus")
    for doc in docs:
        assert (tmp_path / "corpus" / doc.filename).read_bytes() == doc.content
