"""The ONNX Runtime embedder backends: same vectors as torch (fp32), close ones (int8), chosen by a setting."""

from __future__ import annotations

import os

import numpy as np
import pytest
from pydantic import ValidationError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models.embedder import EMBEDDER_BACKENDS, TextEmbedder, resolve_backend
from models.fetch import minilm_path
from models.onnx_embedder import ensure_onnx_export, export_folder
from schemas.settings import Settings

TEXTS = ["Which city is the Eiffel Tower in?", "  Leading and trailing spaces, MIXED case.  ", "a",
         "Aspirin lowers the risk of stroke in atrial fibrillation. " * 40]  # longer than 256 tokens


@pytest.fixture(scope="module")
def torch_embedder() -> TextEmbedder:
    return TextEmbedder(backend="torch", threads=1)


@pytest.fixture(scope="module", params=["onnx", "onnx-int8"])
def onnx_embedder(request) -> TextEmbedder:
    return TextEmbedder(backend=request.param, batch_size=2, threads=1)


def test_onnx_backends_give_unit_vectors_of_the_model_dimension(onnx_embedder):
    vectors = onnx_embedder.embed(TEXTS)
    assert onnx_embedder.dimension == 384 and onnx_embedder.name == "all-MiniLM-L6-v2"
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_onnx_vectors_match_torch(onnx_embedder, torch_embedder):
    cosine = np.sum(onnx_embedder.embed(TEXTS) * torch_embedder.embed(TEXTS), axis=1)
    # fp32 is the same computation; int8 weights move vectors slightly (nDCG@10 within 0.002 on SciFact).
    assert cosine.min() > (0.9999 if onnx_embedder.backend == "onnx" else 0.97)
    assert np.median(cosine) > 0.99


def test_batches_are_returned_in_input_order_whatever_their_lengths(onnx_embedder):
    """Batches are length-sorted inside; the rows must still follow the input. (int8 scales its
    activations per batch, so its vectors move a little with the batch company.)"""
    texts = [*TEXTS, "short", "a somewhat longer sentence about the weather in spring"]
    together = onnx_embedder.embed(texts)  # batch_size=2: four batches of mixed lengths
    one_by_one = np.stack([onnx_embedder.embed_query(t) for t in texts])
    similarity = together @ one_by_one.T
    assert list(similarity.argmax(axis=1)) == list(range(len(texts)))
    assert np.diag(similarity).min() > (0.99999 if onnx_embedder.backend == "onnx" else 0.98)


def test_empty_input_gives_an_empty_matrix(onnx_embedder):
    assert onnx_embedder.embed([]).shape == (0, 384)


def test_the_export_is_cached_and_not_redone():
    folder = ensure_onnx_export(minilm_path(), "all-MiniLM-L6-v2")
    model = folder / "model.onnx"
    stamp = model.stat().st_mtime_ns
    assert ensure_onnx_export(minilm_path(), "all-MiniLM-L6-v2") == folder
    assert model.stat().st_mtime_ns == stamp
    assert {"model.onnx", "model.int8.onnx", "embedder.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}


def test_changed_weights_get_a_new_export_folder(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"v1")
    before = export_folder(tmp_path, "m", tmp_path / "cache")
    (tmp_path / "model.safetensors").write_bytes(b"v2, longer")
    assert export_folder(tmp_path, "m", tmp_path / "cache") != before
    assert before.parent == tmp_path / "cache" / "onnx"


def test_the_setting_selects_the_backend(monkeypatch):
    monkeypatch.setenv("RAGLOOP_EMBEDDER_BACKEND", "onnx-int8")
    assert resolve_backend(Settings().embedder.backend) == "onnx-int8"
    assert resolve_backend("torch") == "torch"


def test_the_default_backend_is_onnx():
    assert Settings().embedder.backend == "onnx"
    assert set(EMBEDDER_BACKENDS) == {"torch", "onnx", "onnx-int8"}


def test_an_unknown_backend_is_refused_naming_the_choices():
    with pytest.raises(ValidationError, match="onnx-int8"):
        Settings(embedder={"backend": "tensorrt"})
    with pytest.raises(ValueError, match="'tensorrt' is not one of"):
        TextEmbedder(backend="tensorrt")


def test_onnx_backends_refuse_a_gpu_device():
    with pytest.raises(ValueError, match="CPU only"):
        TextEmbedder(backend="onnx", device="cuda")
