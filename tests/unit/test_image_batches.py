"""Image documents of one worker batch are loaded together: CLIP encodes them in one call, not one call
per image, and a bad one is refused alone with its reason while the others are indexed."""

from __future__ import annotations

import base64

import numpy as np

from indexing.images.ingest import LazyImages
from indexing.loaders.errors import CorruptDocumentError, LoadError
from indexing.loaders.ingest_event import is_image_event, load_image_events
from indexing.types import SourceDocument
from schemas.events import DocumentIngest
from schemas.settings import Settings
from tests.images_support import image_bytes


def event(document_id: str, content_b64: str, filename: str) -> DocumentIngest:
    return DocumentIngest(tenant="acme", document_id=document_id, content_b64=content_b64, filename=filename,
                          metadata={"caption": f"picture {document_id}"})


def test_a_batch_of_images_is_encoded_in_one_call_and_a_bad_one_fails_alone(clip_settings: Settings) -> None:
    images = LazyImages(clip_settings)
    clip = images.get().clip
    batches: list[int] = []
    encode = clip.encode_images

    def counted(pictures: list) -> np.ndarray:  # type: ignore[type-arg]
        batches.append(len(pictures))
        return encode(pictures)

    clip.encode_images = counted  # type: ignore[method-assign]
    events = [event("red", base64.b64encode(image_bytes("PNG")).decode(), "red.png"),
              event("cut", "@@not base64@@", "cut.png"),
              event("junk", base64.b64encode(b"plain text").decode(), "junk.webp"),
              event("blue", base64.b64encode(image_bytes("JPEG", color=(30, 30, 200))).decode(), "blue.jpg")]
    assert all(is_image_event(e) for e in events)
    outcomes = load_image_events(events, images=images)
    assert batches == [2]
    assert [o.id if isinstance(o, SourceDocument) else type(o) for o in outcomes][::3] == ["red", "blue"]
    assert isinstance(outcomes[1], CorruptDocumentError) and "not valid base64" in str(outcomes[1])
    assert isinstance(outcomes[2], LoadError) and "JPEG, PNG or WebP" in str(outcomes[2])
    indexed = images.get().index.search(tenant="acme", vector=clip.encode_texts(["a picture"])[0], k=5)
    assert {h.image.document_id for h in indexed} == {"red", "blue"}


def test_with_image_features_off_each_image_is_refused_saying_so(settings: Settings) -> None:
    outcomes = load_image_events([event("red", base64.b64encode(image_bytes("PNG")).decode(), "red.png"), event("bad", "@@", "bad.png")],
                                 images=LazyImages(settings))
    assert "RAGLOOP_CLIP_CHECKPOINT" in str(outcomes[0]) and "not valid base64" in str(outcomes[1])
