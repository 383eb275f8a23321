"""agents.grading: lexical relevance of passages and the keyword rewrite of a failed search."""

from agents.grading import content_terms, grade, rewrite
from indexing.types import Chunk, SearchHit


def hit(text: str, title: str = "") -> SearchHit:
    return SearchHit(chunk=Chunk(id=text[:8], document_id="d", tenant="default", ordinal=0, text=text, title=title), score=1.0)


RIVER = hit("The Ostra river flows 612 kilometres from the Kessel glacier to the Northern Sea.", "The Ostra river")
BAKERY = hit("Harbor Street Bakery is famous for its rye sourdough.", "Harbor Street Bakery")


def test_question_words_and_stopwords_are_not_content():
    assert content_terms("How long is the Ostra river?") == ["ostra", "river"]


def test_terms_are_stemmed_so_inflections_match():
    assert grade("When were the rivers flowing?", [RIVER]) == [1.0]


def test_a_passage_scores_the_share_of_question_terms_it_contains():
    assert grade("How long is the Ostra river?", [RIVER, BAKERY]) == [1.0, 0.0]


def test_the_title_counts_as_part_of_the_passage():
    assert grade("Where is Harbor Street?", [hit("Famous for rye sourdough.", "Harbor Street Bakery")]) == [1.0]


def test_a_question_without_content_terms_finds_nothing_relevant():
    assert grade("What is it?", [RIVER]) == [0.0]


def test_rewrite_adds_the_subject_of_earlier_questions():
    assert rewrite("How high is it?", ["Where is the Veltrin Observatory?"]) == "high veltrin observatory"


def test_rewrite_prefers_the_latest_earlier_question_and_skips_repeated_terms():
    assert rewrite("And its length?", ["Tell me about the bakery", "What about the Ostra river?"]) == "length ostra river bakery"


def test_rewrite_without_history_keeps_only_content_words():
    assert rewrite("What is the capital of the planet Zorblax?") == "capital planet zorblax"
