"""ONNX Runtime copies of a sentence-transformers model: the fast CPU path of ``TextEmbedder``.

Why: on CPU, one short query through sentence-transformers on torch spends much of its time
in Python and torch dispatch around a tiny matrix workload. The same graph in ONNX Runtime
skips that dispatch and gives the same vectors; an int8 copy (dynamic, per-channel weights,
MatMul only) is faster still, at vectors that move slightly. The speeds and the retrieval
quality of each are measured in benchmarks/README.md ("Query embedding and dense search speed").

The whole sentence-transformers pipeline (transformer, pooling, dense layers, normalisation) is
exported once, so any model path works without knowing its pooling. The export is cached like
the converted SmolLM2 (``models.fetch``): built in a temporary folder under a file lock, checked
against the torch model, then renamed into place; ``ragloop models fetch`` builds it ahead, so
serving never exports::

    folder = ensure_onnx_export(minilm_path(), "all-MiniLM-L6-v2")   # the first call exports
    encoder = OnnxEncoder(folder, quantized=True, threads=1)
    encoder.encode(["a query"], batch_size=64)                       # (1, 384) float32, unit rows
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.fetch import _READY_MARKER, _file_lock, default_model_cache

# Bump when the export recipe changes: old cached folders are then ignored, not reused.
EXPORT_VERSION = 1
FP32_FILE, INT8_FILE, META_FILE = "model.onnx", "model.int8.onnx", "embedder.json"
# An export whose vectors differ from torch's by more than this is refused (wrong tokenizer
# settings or an untraceable module), rather than silently serving different embeddings.
_MIN_EXPORT_COSINE = 0.9999
_PROBES = ["What is the capital of France?", "  Mixed CASE text, with punctuation; and numbers 1,234.  ",
           "a", "Aspirin reduces the risk of stroke in patients with atrial fibrillation. " * 12]


def export_folder(model_path: Path, name: str, cache_dir: Path | None = None) -> Path:
    """Where the export of this model lives: keyed by its path and weight files, so changed
    weights get a new export instead of a stale one."""
    cache = Path(cache_dir) if cache_dir is not None else default_model_cache()
    return cache / "onnx" / f"{name}-{_fingerprint(model_path)}"


def ensure_onnx_export(model_path: str | Path, name: str, cache_dir: Path | None = None) -> Path:
    """Return a folder with ``model.onnx``, ``model.int8.onnx``, the tokenizer and
    ``embedder.json``; export it first if needed. Idempotent and safe under concurrent callers."""
    source = Path(model_path)
    target = export_folder(source, name, cache_dir)
    if (target / _READY_MARKER).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f".{target.name}.lock"):
        if (target / _READY_MARKER).exists():  # another caller finished while we waited
            return target
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
            out = Path(tmp) / "export"
            _export(source, out)
            (out / _READY_MARKER).write_text(f"{source}\n")
            if target.exists():  # a stale, incomplete folder from a crashed run
                import shutil

                shutil.rmtree(target)
            os.replace(out, target)
    return target

# Texts per ONNX Runtime call. Its CPU kernels slow down on big batches (their attention
# activations outgrow the caches): 128-token SciFact chunks embed at 42-47 texts/s in runs of 8,
# 40-42 in 16, 36 in 32 and 32 in 64 (2 cores).
RUN_BATCH = 8

class OnnxEncoder:
    """Batched sentence embeddings from an export folder: tokenizer + one ONNX Runtime session."""

    def __init__(self, folder: Path, *, quantized: bool = False, threads: int | None = None) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        meta = json.loads((folder / META_FILE).read_text())
        self.dimension = int(meta["dimension"])
        self.max_seq_length = int(meta["max_seq_length"])
        self._inputs: list[str] = list(meta["inputs"])
        self._tokenizer = AutoTokenizer.from_pretrained(str(folder))
        options = ort.SessionOptions()
        if threads:
            # One short query is fastest on one thread on a shared CPU, as for torch.
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        model = folder / (INT8_FILE if quantized else FP32_FILE)
        self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str], *, batch_size: int) -> np.ndarray:
        """Unit-length float32 rows in input order; batches are length-sorted (as
        sentence-transformers does) so little compute goes to padding, and run at most
        ``RUN_BATCH`` texts at a time (ONNX Runtime on a CPU is fastest on small runs)."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        batch_size = min(batch_size, RUN_BATCH)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            out[rows] = self._run([texts[i] for i in rows])
        return out

    def _run(self, texts: list[str]) -> np.ndarray:
        encoded = self._tokenizer(texts, padding=True, truncation=True, max_length=self.max_seq_length,
                                  return_tensors="np")
        feed = {name: np.asarray(encoded[name], dtype=np.int64) for name in self._inputs}
        vectors = np.asarray(self._session.run(None, feed)[0], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)


def _fingerprint(model_path: Path) -> str:
    """Short hash of the model's location and of its weight files' sizes and times."""
    path = model_path.expanduser().resolve()
    parts = [f"v{EXPORT_VERSION}", str(path)]
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        stat = weights.stat()
        parts.append(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:12]


def _export(source: Path, out: Path) -> None:
    """Trace the torch pipeline to ONNX, quantise a copy, and check both against torch."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(source), device="cpu").eval()
    tokenizer, max_seq_length = model.tokenizer, model.max_seq_length
    if tokenizer is None:
        raise ValueError(f"{source} has no text tokenizer; only text sentence-transformers models export to ONNX")
    if max_seq_length is None:  # the export's metadata needs it, and the tokenizer truncates to it
        raise ValueError(f"{source} sets no max_seq_length; only models with one export to ONNX")
    out.mkdir(parents=True)
    sample = tokenizer(_PROBES[:2], padding=True, truncation=True, max_length=max_seq_length, return_tensors="pt")
    inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    # The tracer warns about shape-dependent Python branches (mask padding, pooling); they hold
    # for every input shape because mask and tokens always have the same length.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _pipeline_class()(model, inputs).eval(), tuple(sample[n] for n in inputs), str(out / FP32_FILE),
            input_names=inputs, output_names=["sentence_embedding"], opset_version=17, dynamo=False,
            dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in inputs}, "sentence_embedding": {0: "batch"}},
        )
    # Per-channel int8 weights on MatMul only: per-tensor scales or quantised Gather/Add cost
    # retrieval quality for little speed (benchmarks/README.md, "Query embedding and dense search speed").
    quantize_dynamic(str(out / FP32_FILE), str(out / INT8_FILE), per_channel=True,
                     op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
    tokenizer.save_pretrained(str(out))
    reference = model.encode(_PROBES, convert_to_numpy=True, normalize_embeddings=True)
    meta: dict[str, Any] = {"dimension": int(reference.shape[1]), "max_seq_length": int(max_seq_length),
                            "inputs": inputs, "source": str(source), "export_version": EXPORT_VERSION}
    (out / META_FILE).write_text(json.dumps(meta, indent=1))
    _check_export(out, reference)


def _check_export(folder: Path, reference: np.ndarray) -> None:
    """Refuse an fp32 export that does not reproduce the torch vectors (int8 is approximate by
    design; its quality is measured in benchmarks/retrieval_quality.py)."""
    got = OnnxEncoder(folder, threads=1).encode(_PROBES, batch_size=len(_PROBES))
    cosine = float(np.min(np.sum(got * reference, axis=1)))
    if cosine < _MIN_EXPORT_COSINE:
        raise RuntimeError(
            f"the ONNX export of {folder.name} gives vectors with cosine {cosine:.5f} to the torch model's "
            f"(need >= {_MIN_EXPORT_COSINE}); use RAGLOOP_EMBEDDER_BACKEND=torch for this model"
        )


def _pipeline_class() -> type:
    """Defined on first use so importing this module does not import torch."""
    import torch

    class Pipeline(torch.nn.Module):
        """The sentence-transformers forward pass with positional tensors, as ONNX export wants."""

        def __init__(self, model: Any, inputs: list[str]) -> None:
            super().__init__()
            self.model = model
            self.inputs = inputs

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(self.inputs, tensors)))["sentence_embedding"]

    return Pipeline
