"""The CLIP model (open_clip) that puts images and texts in one vector space: image ingestion,
text-to-image and image-to-image search.

Weights come only from a local checkpoint (`RAGLOOP_CLIP_CHECKPOINT`, loaded for the architecture
`RAGLOOP_CLIP_MODEL`) through `open_clip.create_model_and_transforms(name, pretrained=PATH)`, the path
users take with real weights; nothing is downloaded and nothing runs on random weights: without a
checkpoint `load_clip` returns None and every entry point says image features are off
(`CLIP_OFF_MESSAGE`).

    clip = load_clip(settings)                          # None when RAGLOOP_CLIP_CHECKPOINT is unset
    vectors = clip.encode_images([Image.open(path)])    # (n, clip.dimension) float32, L2-normalised
    query = clip.encode_texts(["a dog on a beach"])[0]
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

    from schemas.settings import Settings

CLIP_OFF_MESSAGE = ("image features are off: set RAGLOOP_CLIP_CHECKPOINT to a local open_clip checkpoint "
                    "for RAGLOOP_CLIP_MODEL (no CLIP weights are downloaded)")


class ClipUnavailable(RuntimeError):
    """Image features were asked for but no CLIP checkpoint is configured (or it cannot be loaded)."""


class ClipModel:
    """An open_clip model with its image preprocessing and tokenizer, in eval mode on CPU (or `device`).

    Encoding is serialised by a lock: torch modules are not safe to call from several threads at once
    with autograd state, and the ingest worker and the API may share one model."""

    def __init__(self, name: str, checkpoint: Path, *, device: str = "cpu", batch: int = 32) -> None:
        import open_clip  # heavy import: only when images are used
        import torch

        if not Path(checkpoint).is_file():
            raise ClipUnavailable(f"RAGLOOP_CLIP_CHECKPOINT={checkpoint} is not a file")
        if name not in open_clip.list_models():
            raise ClipUnavailable(f"RAGLOOP_CLIP_MODEL={name!r} is not an open_clip architecture (see open_clip.list_models())")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(checkpoint), device=device)
        except Exception as error:  # open_clip raises RuntimeError, AssertionError, KeyError… for a wrong file
            raise ClipUnavailable(f"RAGLOOP_CLIP_CHECKPOINT={checkpoint} does not load as RAGLOOP_CLIP_MODEL={name!r} "
                                  f"(is it a checkpoint of that architecture?): {str(error)[:300]}") from error
        self.name = name
        self.checkpoint = Path(checkpoint)
        self._model: Any = model.eval()
        self._preprocess: Any = preprocess
        self._tokenizer: Any = open_clip.get_tokenizer(name)
        self._device = device
        self._batch = batch
        self._torch: Any = torch
        self._lock = threading.Lock()
        self.dimension = int(self.encode_texts(["dimension probe"]).shape[1])

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """One L2-normalised float32 row per image (converted to RGB first)."""
        rows = [self._encode(lambda part: self._model.encode_image(part),
                             self._torch.stack([self._preprocess(image.convert("RGB")) for image in images[start:start + self._batch]]))
                for start in range(0, len(images), self._batch)]
        return np.concatenate(rows) if rows else np.zeros((0, getattr(self, "dimension", 0)), dtype=np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised float32 row per text (CLIP's tokenizer truncates at its context length)."""
        rows = [self._encode(lambda part: self._model.encode_text(part), self._tokenizer(list(texts[start:start + self._batch])))
                for start in range(0, len(texts), self._batch)]
        return np.concatenate(rows) if rows else np.zeros((0, getattr(self, "dimension", 0)), dtype=np.float32)

    def _encode(self, encode: Any, batch: Any) -> np.ndarray:
        with self._lock, self._torch.inference_mode():
            features = encode(batch.to(self._device)).float()
            features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return np.ascontiguousarray(features.cpu().numpy(), dtype=np.float32)


_CACHE: dict[tuple[str, str], ClipModel] = {}
_CACHE_LOCK = threading.Lock()


def load_clip(settings: Settings) -> ClipModel | None:
    """The configured CLIP model (one per process and checkpoint), or None when no checkpoint is set."""
    checkpoint = settings.clip.checkpoint
    if checkpoint is None:
        return None
    key = (settings.clip.model, str(Path(checkpoint).resolve()))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = ClipModel(settings.clip.model, Path(checkpoint))
        return _CACHE[key]


def require_clip(settings: Settings) -> ClipModel:
    """`load_clip`, raising `ClipUnavailable` with `CLIP_OFF_MESSAGE` when image features are off."""
    clip = load_clip(settings)
    if clip is None:
        raise ClipUnavailable(CLIP_OFF_MESSAGE)
    return clip
