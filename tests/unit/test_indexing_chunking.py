"""Chunker invariants: no text lost, sizes and overlap bounded, stable content ids, structure.

Sizes are measured with MiniLM's real WordPiece tokenizer, loaded separately through transformers,
never with the counter the chunker itself used."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from transformers import AutoTokenizer

from indexing.chunking import Chunker, approximate_tokens
from indexing.types import SourceDocument
from models.fetch import minilm_path

WORDS = ("cell protein gene expression tumour mouse patient trial dose risk model signal pathway "
         "receptor binding effect increase reduce level response analysis").split()


def random_document(seed: int, *, tenant: str = "default") -> SourceDocument:
    """Headings, paragraphs of several sentences, a list, and one enormous unpunctuated sentence."""
    rng = random.Random(seed)
    blocks: list[str] = []
    for section in range(rng.randint(2, 5)):
        blocks.append(f"Section {section} {rng.choice(WORDS).title()}")
        for _ in range(rng.randint(1, 4)):
            sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30))).capitalize() + "."
                         for _ in range(rng.randint(1, 8))]
            blocks.append(" ".join(sentences))
    blocks.insert(rng.randint(1, len(blocks)), "- first item\n- second item\n- third item")
    blocks.append(" ".join(rng.choice(WORDS) for _ in range(400)))  # longer than any chunk
    return SourceDocument(id=f"doc-{seed}", tenant=tenant, title="A title", text="\n\n".join(blocks),
                          access=["team-a"], metadata={"origin": "test"})


def spans(chunks):
    return [(c.metadata["char_start"], c.metadata["char_end"]) for c in chunks]


@pytest.fixture(scope="module")
def minilm_tokens() -> Callable[[str], int]:
    """The measuring stick: MiniLM's token count of a text, without special tokens."""
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.fixture(scope="module")
def minilm_chunker(minilm_tokens) -> Chunker:
    """A chunker sizing with MiniLM's own tokenizer, as a deployment wanting exact sizes would configure it."""
    return Chunker(max_tokens=60, overlap_tokens=12, token_counter=minilm_tokens)


@pytest.mark.parametrize("seed", range(20))
def test_every_chunk_is_an_exact_slice_of_the_document(seed):
    doc = random_document(seed)
    for chunk in Chunker(max_tokens=60, overlap_tokens=12).split(doc):
        start, end = chunk.metadata["char_start"], chunk.metadata["char_end"]
        assert doc.text[start:end] == chunk.text


@pytest.mark.parametrize("seed", range(20))
def test_no_text_is_lost(seed):
    doc = random_document(seed)
    covered = [False] * len(doc.text)
    for start, end in spans(Chunker(max_tokens=60, overlap_tokens=12).split(doc)):
        covered[start:end] = [True] * (end - start)
    lost = "".join(ch for ch, ok in zip(doc.text, covered) if not ok)
    assert lost.strip() == ""


@pytest.mark.parametrize("seed", range(20))
def test_chunks_fit_the_token_budget(seed, minilm_chunker, minilm_tokens):
    sizes = [minilm_tokens(c.text) for c in minilm_chunker.split(random_document(seed))]
    assert max(sizes) <= 60 and sum(sizes) / len(sizes) > 30  # bounded, yet not cut needlessly small


@pytest.mark.parametrize("seed", range(20))
def test_overlap_between_neighbours_is_bounded(seed, minilm_chunker, minilm_tokens):
    doc = random_document(seed)
    chunks = minilm_chunker.split(doc)
    overlaps = [minilm_tokens(doc.text[start:prev_end])
                for (_, prev_end), (start, _) in zip(spans(chunks), spans(chunks)[1:]) if start < prev_end]
    assert overlaps and max(overlaps) <= 12


@pytest.mark.parametrize("seed", range(20))
def test_default_chunks_fit_minilms_window_with_their_title(seed, minilm_tokens):
    """The default sizes by estimate (no tokenizer); the embedder sees title + text plus [CLS] and [SEP] in 256."""
    chunks = Chunker().split(random_document(seed))
    assert max(minilm_tokens(f"{c.title}: {c.text}") + 2 for c in chunks) <= 256


def test_a_cut_inside_a_paragraph_carries_overlap():
    sentences = [f"Sentence number {i} talks about protein binding." for i in range(40)]
    doc = SourceDocument(id="d", text=" ".join(sentences))
    chunks = Chunker(max_tokens=50, overlap_tokens=12).split(doc)
    assert len(chunks) > 2
    pairs = list(zip(spans(chunks), spans(chunks)[1:]))
    assert all(start < prev_end for (_, prev_end), (start, _) in pairs)


def test_zero_overlap_gives_disjoint_chunks():
    chunks = Chunker(max_tokens=40, overlap_tokens=0).split(random_document(3))
    for (_, prev_end), (start, _) in zip(spans(chunks), spans(chunks)[1:]):
        assert start >= prev_end


def test_ids_are_stable_across_runs():
    doc = random_document(7)
    first = [c.id for c in Chunker(max_tokens=60, overlap_tokens=12).split(doc)]
    second = [c.id for c in Chunker(max_tokens=60, overlap_tokens=12).split(doc.model_copy())]
    assert first == second and len(set(first)) == len(first)


def test_ids_depend_on_tenant_and_document():
    doc = random_document(7)
    chunker = Chunker(max_tokens=60, overlap_tokens=12)
    base = {c.id for c in chunker.split(doc)}
    other_tenant = {c.id for c in chunker.split(doc.model_copy(update={"tenant": "acme"}))}
    other_document = {c.id for c in chunker.split(doc.model_copy(update={"id": "elsewhere"}))}
    assert base.isdisjoint(other_tenant) and base.isdisjoint(other_document)


def test_editing_one_section_keeps_the_other_sections_ids():
    intro = "Intro\n\n" + " ".join(f"Intro sentence {i} is here." for i in range(12))
    body = "Body\n\n" + " ".join(f"Body sentence {i} is here." for i in range(12))
    chunker = Chunker(max_tokens=80, overlap_tokens=10)
    before = chunker.split(SourceDocument(id="d", text=f"{intro}\n\n{body}"))
    after = chunker.split(SourceDocument(id="d", text=f"{intro}\n\n{body.replace('sentence 11', 'line 11')}"))
    intro_ids = {c.id for c in before if c.metadata["section"] == "Intro"}
    assert intro_ids and intro_ids <= {c.id for c in after}
    assert {c.id for c in before} != {c.id for c in after}


def test_repeated_passages_get_distinct_ids():
    paragraph = " ".join(["The same boilerplate sentence repeats here."] * 8)
    doc = SourceDocument(id="d", text=f"{paragraph}\n\nSomething else entirely.\n\n{paragraph}")
    chunks = Chunker(max_tokens=60, overlap_tokens=0).split(doc)
    assert len({c.id for c in chunks}) == len(chunks)


def test_a_heading_starts_a_chunk_and_never_ends_one():
    doc = SourceDocument(id="d", text=(
        "Background\n\n" + " ".join(f"Background fact {i} holds." for i in range(20)) +
        "\n\nMethods\n\n" + " ".join(f"Method step {i} is done." for i in range(20))),
        metadata={"headings": ["Background", "Methods"]})
    chunks = Chunker(max_tokens=60, overlap_tokens=10).split(doc)
    assert any(c.text.startswith("Methods") for c in chunks)
    assert not any(c.text.rstrip().endswith(("Background", "Methods")) for c in chunks)
    assert {c.metadata["section"] for c in chunks} == {"Background", "Methods"}


def test_small_sections_are_packed_together():
    text = "\n\n".join(f"Part {i}\n\nShort note {i}." for i in range(4))
    chunks = Chunker(max_tokens=200, overlap_tokens=10).split(SourceDocument(id="d", text=text))
    assert len(chunks) == 1


def test_a_paragraph_that_fits_is_not_split_when_it_can_move_whole():
    first = " ".join(f"Alpha {i} is a fact." for i in range(8))     # about 48 tokens
    second = " ".join(f"Beta {i} is a fact." for i in range(8))
    chunks = Chunker(max_tokens=80, overlap_tokens=8).split(SourceDocument(id="d", text=f"{first}\n\n{second}"))
    assert [c.text for c in chunks] == [first, second]


def test_chunks_carry_document_title_access_and_metadata():
    doc = random_document(1)
    for ordinal, chunk in enumerate(Chunker().split(doc)):
        assert (chunk.ordinal, chunk.title, chunk.access, chunk.tenant, chunk.document_id) == \
            (ordinal, "A title", ["team-a"], "default", doc.id)
        assert chunk.metadata["origin"] == "test"


def test_whitespace_only_text_gives_no_chunks():
    assert Chunker().split(SourceDocument(id="d", text=" \n\n \t ")) == []


def test_a_custom_token_counter_sizes_the_chunks():
    count_words = lambda text: len(text.split())  # noqa: E731
    text = " ".join(f"word{i}" for i in range(100))
    chunks = Chunker(max_tokens=30, overlap_tokens=0, token_counter=count_words).split(SourceDocument(id="d", text=text))
    assert [len(c.text.split()) for c in chunks] == [30, 30, 30, 10]


def test_approximate_tokens_counts_words_numbers_and_punctuation():
    assert approximate_tokens("The cat sat.") == 4  # one per short word and per mark
    assert approximate_tokens("immunohistochemistry") == 3  # one per 7 letters begun
    assert approximate_tokens("1987") == 2  # one per 2 digits begun
    assert approximate_tokens("a, b!\n\n\t c") == 5  # whitespace counts nothing


@pytest.mark.parametrize("max_tokens, overlap", [(4, 0), (100, 50), (100, -1)])
def test_bad_sizes_are_rejected(max_tokens, overlap):
    with pytest.raises(ValueError):
        Chunker(max_tokens=max_tokens, overlap_tokens=overlap)
