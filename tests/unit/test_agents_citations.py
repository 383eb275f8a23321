"""agents.citations: `[n]` markers in an answer map to the n-th context passage's chunk id."""

from agents.citations import cited_ids, cited_numbers

IDS = ["chunk-a", "chunk-b", "chunk-c"]


def test_a_marker_names_the_passage_at_that_position():
    assert cited_ids("The river is 612 km long [2].", IDS) == ["chunk-b"]


def test_citations_keep_the_order_of_first_mention_without_duplicates():
    assert cited_ids("A [3]. B [1]. Again A [3].", IDS) == ["chunk-c", "chunk-a"]


def test_grouped_and_adjacent_markers_all_count():
    assert cited_numbers("Both [1, 3] and [2][1].") == [1, 3, 2]


def test_a_marker_beyond_the_passages_is_not_a_citation():
    assert cited_ids("Made up [7] and [0].", IDS) == []


def test_an_answer_without_markers_cites_nothing():
    assert cited_ids("I don't know.", IDS) == []
