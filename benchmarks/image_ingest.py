"""Image ingestion throughput against raw CLIP encoding of the same images, in the same run.

Ingestion is the ingest worker's work on image documents (indexing/loaders/ingest_event.py
`load_image_events` on each batch of up to RAGLOOP_INGEST_BATCH events, as the worker polls them,
plus the captions through the text pipeline): decode the event, decode the image with the limits and
EXIF orientation, store the file and a thumbnail, CLIP-encode in batches, write the image vectors,
chunk/embed/index the captions. Raw is
`ClipModel.encode_images` on the same images, already decoded, in batches of 32. The ratio
(ingest images/s ÷ raw images/s) is what the pipeline around the model costs.

    python benchmarks/image_ingest.py --dataset ../shared/data/flickr8k-300 [--checkpoint PATH --model NAME] [--limit N]

Without --checkpoint a random-weight ViT-S-32-alt is built from open_clip's config (timing only:
throughput does not depend on the weights).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from PIL import Image

from evaluation.images import image_folder, read_captions
from indexing.images.ingest import LazyImages
from indexing.loaders.ingest_event import load_image_events
from indexing.types import SourceDocument
from schemas.events import DocumentIngest
from schemas.settings import Settings
from streams.services import Services
from streams.workers.ingest import byte_bounded


def random_checkpoint(folder: Path, model: str) -> Path:
    import open_clip
    import torch

    path = folder / f"{model}.pt"
    torch.save(open_clip.create_model(model, pretrained=None).state_dict(), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k-300")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--model", default="ViT-S-32-alt")
    parser.add_argument("--limit", type=int, default=300)
    args = parser.parse_args()
    rows = read_captions(args.dataset)
    captions: dict[str, str] = {}
    for name, caption in rows:
        captions.setdefault(name, caption)
    names = sorted(captions)[: args.limit]
    files = [(name, (image_folder(args.dataset) / name).read_bytes()) for name in names]
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or random_checkpoint(Path(tmp), args.model)
        settings = Settings(home=Path(tmp) / "home", clip={"model": args.model, "checkpoint": checkpoint})
        services = Services(settings)
        images = LazyImages(settings)
        ingester = images.get()  # the one loaded CLIP, for the ingestion and the raw timing alike
        ingester.clip.encode_images([Image.new("RGB", (64, 64))])  # warm-up, outside both timings
        services.pipeline.embedder.embed(["warm-up"])  # loads the text embedder outside the timing too

        events = [DocumentIngest(tenant="bench", document_id=name, filename=name, source=name, metadata={"caption": captions[name]},
                                 content_b64=base64.b64encode(data).decode()) for name, data in files]
        started = time.perf_counter()
        for start in range(0, len(events), settings.ingest.batch):  # one worker poll at a time
            for group in byte_bounded(events[start:start + settings.ingest.batch], settings.ingest.batch_bytes):
                documents = load_image_events(group, images=images)
                services.pipeline.ingest_many([d for d in documents if isinstance(d, SourceDocument)])
        ingest_s = time.perf_counter() - started

        decoded = [ingester.decode(data, name).image for name, data in files]
        started = time.perf_counter()
        ingester.clip.encode_images(decoded)
        raw_s = time.perf_counter() - started
        services.close()
    report = {"images": len(files), "model": args.model, "batch": settings.ingest.batch, "load_1min": os.getloadavg()[0],
              "ingest_images_per_s": round(len(files) / ingest_s, 2),
              "raw_clip_images_per_s": round(len(files) / raw_s, 2), "ratio": round(raw_s / ingest_s, 3)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
