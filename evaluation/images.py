"""Text → image recall of a CLIP model on a captions file (`image,caption` CSV, one row per caption,
several captions per image: the layout of Flickr8k and of ../shared/data/flickr8k-300).

Every image is encoded once; each caption ranks all images by cosine similarity, and recall@k is
the share of captions whose own image is among the top k. Meaningful only with real weights; it runs
with any checkpoint (a random one scores near k / images).

    report = image_recall(clip, Path("flickr8k-300"))
    report.model_dump(by_alias=True)   # {"recall@1": …, "recall@5": …, "recall@10": …, "images": 300, "captions": 1500}
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from models.clip import ClipModel

CAPTIONS_FILES = ("captions.txt", "captions.csv")


class ImageRecallReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    recall_at_1: float = Field(alias="recall@1")
    recall_at_5: float = Field(alias="recall@5")
    recall_at_10: float = Field(alias="recall@10")
    images: int
    captions: int


def read_captions(dataset: Path) -> list[tuple[str, str]]:
    """(image file name, caption) rows of the dataset's captions file; ValueError naming what is missing."""
    path = next((dataset / name for name in CAPTIONS_FILES if (dataset / name).is_file()), None)
    if path is None:
        raise ValueError(f"{dataset} has no {' or '.join(CAPTIONS_FILES)} (an `image,caption` CSV)")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"image", "caption"} <= set(reader.fieldnames):
            raise ValueError(f"{path} must start with the header `image,caption`, got {reader.fieldnames}")
        return [(row["image"], row["caption"]) for row in reader if row.get("image") and row.get("caption")]


def image_folder(dataset: Path) -> Path:
    return dataset / "images" if (dataset / "images").is_dir() else dataset


def image_recall(clip: ClipModel, dataset: Path, *, progress: Callable[[str, int, int], None] | None = None) -> ImageRecallReport:
    rows = read_captions(dataset)
    names = sorted({name for name, _ in rows})
    folder = image_folder(dataset)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{len(missing)} images named in the captions are not in {folder}, e.g. {missing[0]}")
    vectors = []
    for start in range(0, len(names), 32):
        batch = []
        for name in names[start:start + 32]:
            with Image.open(folder / name) as image:
                batch.append(image.convert("RGB"))
        vectors.append(clip.encode_images(batch))
        if progress:
            progress("images", min(start + 32, len(names)), len(names))
    image_vectors = np.concatenate(vectors)
    text_vectors = clip.encode_texts([caption for _, caption in rows])
    truth = np.array([names.index(name) for name, _ in rows])
    scores = text_vectors @ image_vectors.T
    # the rank of each caption's own image: how many images score strictly higher
    ranks = (scores > scores[np.arange(len(rows)), truth][:, None]).sum(axis=1)
    return ImageRecallReport(**{f"recall@{k}": float((ranks < k).mean()) for k in (1, 5, 10)}, images=len(names), captions=len(rows))
