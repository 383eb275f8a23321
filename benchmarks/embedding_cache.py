"""An embedder wrapper that remembers vectors on disk, so benchmark reruns skip re-embedding.

Embedding SciFact's ~12k chunks takes 10-17 minutes on two CPU cores; fusion, BM25 and peer
comparisons need the same vectors every time. Vectors are keyed by the SHA-1 of the exact text,
so a change of chunking simply misses the cache for the texts that changed. Benchmarks give
every system (ragloop and its peers) the vectors from one cache, so all rank the same vectors.
Query vectors are never taken from here when timing: throughput includes embedding the query.

    >>> embedder = CachedEmbedder(TextEmbedder(), cache_file("scifact"))   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def cache_file(dataset: str) -> Path:
    """``$RAGLOOP_MODEL_CACHE/../benchmarks/<dataset>-minilm-vectors.npz`` (shared by all benchmarks)."""
    models = Path(os.environ.get("RAGLOOP_MODEL_CACHE", Path.home() / ".cache" / "ragloop" / "models"))
    return models.parent / "benchmarks" / f"{dataset}-minilm-vectors.npz"


class CachedEmbedder:
    """``embed``/``embed_query`` like the wrapped embedder; misses are embedded and remembered."""

    def __init__(self, embedder, path: Path | None) -> None:
        self.inner = embedder
        self.dimension = embedder.dimension
        self.path = path
        self.cache: dict[str, np.ndarray] = {}
        self.misses = 0
        if path and path.exists():
            with np.load(path) as data:
                self.cache = dict(zip(data["keys"].tolist(), data["vectors"]))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self.key(t) for t in texts]
        missing = [i for i, key in enumerate(keys) if key not in self.cache]
        if missing:
            self.misses += len(missing)
            fresh = self.inner.embed([texts[i] for i in missing])
            for i, vector in zip(missing, fresh):
                self.cache[keys[i]] = vector
        if not keys:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self.cache[key] for key in keys]).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def save(self) -> None:
        if self.path and self.cache:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp.npz")
            np.savez(tmp, keys=np.array(list(self.cache), dtype="U40"), vectors=np.stack(list(self.cache.values())))
            os.replace(tmp, self.path)
