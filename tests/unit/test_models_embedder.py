"""models.embedder.TextEmbedder: unit-length float32 vectors of a fixed dimension."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models.embedder import TextEmbedder


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder(batch_size=4)


def test_default_model_is_minilm_with_384_dimensions(embedder):
    assert embedder.dimension == 384
    assert embedder.name == "all-MiniLM-L6-v2"


def test_embed_returns_float32_matrix_of_n_by_dimension(embedder):
    vectors = embedder.embed(["one", "two", "three", "four", "five"])  # more than one batch
    assert vectors.shape == (5, embedder.dimension)
    assert vectors.dtype == np.float32


def test_embeddings_are_l2_normalised(embedder):
    vectors = embedder.embed(["a short text", "a much longer text about something else entirely"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embed_query_returns_one_vector_equal_to_batch_embedding(embedder):
    query = embedder.embed_query("where is the Eiffel Tower?")
    assert query.shape == (embedder.dimension,)
    np.testing.assert_allclose(query, embedder.embed(["where is the Eiffel Tower?"])[0], atol=1e-5)


def test_empty_input_gives_an_empty_matrix(embedder):
    assert embedder.embed([]).shape == (0, embedder.dimension)


def test_related_texts_score_higher_than_unrelated(embedder):
    q = embedder.embed_query("Which city is the Eiffel Tower in?")
    docs = embedder.embed(["The Eiffel Tower stands in Paris.", "Photosynthesis happens in leaves."])
    assert docs[0] @ q > docs[1] @ q
