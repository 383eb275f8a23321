"""The one image store (ingested and generated images): the same behaviour in a folder and in an
S3-compatible bucket, the bucket driven through the real minio client against the S3 double the
artifact store's tests use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from indexing.images.blobs import BucketBlobs, FolderBlobs
from indexing.images.store import ImageStore, StoredImage, open_image_store
from schemas.settings import Settings
from tests.images_support import image_bytes, stored_names
from tests.s3_double import S3Double, s3_double


@pytest.fixture(params=["folder", "bucket"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ImageStore]:
    if request.param == "folder":
        yield open_image_store(Settings(home=tmp_path, images={"thumbnail_px": 16}))
        return
    with s3_double() as endpoint:
        settings = Settings(home=tmp_path, images={"thumbnail_px": 16, "store_url": "s3://media/images"},
                            artifact_store={"endpoint": endpoint, "access_key": "ak", "secret_key": "sk"})
        yield open_image_store(settings)


def test_the_store_keeps_image_and_thumbnail_per_tenant(store: ImageStore) -> None:
    data = image_bytes("PNG", size=(64, 48))
    record = store.put("acme", data, caption="red", source="red.png")
    assert store.put("acme", data).id == record.id  # content-addressed: storing again is idempotent
    assert store.read("acme", record.id) == data
    assert (store.get("acme", record.id) or record).caption == ""  # the second put replaced the record
    thumb = store.thumbnail("acme", record.id)
    assert thumb is not None and thumb[:2] == b"\xff\xd8"
    assert store.get("other", record.id) is None and store.read("other", record.id) is None
    assert store.thumbnail("other", record.id) is None
    assert store.get("acme", "../../etc/passwd") is None
    assert store.delete("acme", record.id) and store.get("acme", record.id) is None and store.read("acme", record.id) is None
    assert not store.delete("acme", record.id)


def test_a_bucket_store_writes_its_objects_under_the_prefix(tmp_path: Path) -> None:
    with s3_double() as endpoint:
        settings = Settings(home=tmp_path, images={"store_url": "s3://media/images"},
                            artifact_store={"endpoint": endpoint, "access_key": "ak", "secret_key": "sk"})
        store = open_image_store(settings)
        record = store.put("acme", image_bytes("JPEG"))
        assert isinstance(store.blobs, BucketBlobs)
        assert {key.rsplit("/", 1)[-1] for key in S3Double.objects if key.startswith("/media/images/")} == {
            f"{record.id}.bin", f"{record.id}.thumb.jpg", f"{record.id}.json"}
        assert not (tmp_path / "images").exists()  # nothing on the local disk


def test_the_older_generation_setting_still_names_the_store_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    older = open_image_store(Settings(home=tmp_path, image_gen={"store_url": (tmp_path / "shared").as_uri()}))
    assert isinstance(older.blobs, FolderBlobs) and older.blobs.root == tmp_path / "shared"
    with pytest.raises(ValueError, match="RAGLOOP_IMAGES_STORE_URL must be file:///path or s3://"):
        open_image_store(Settings(home=tmp_path, images={"store_url": "ftp://host/x"}))


def test_an_image_held_by_two_documents_goes_with_the_last_of_them_only(store: ImageStore) -> None:
    data = image_bytes("PNG", size=(40, 30))
    first = store.put("acme", data, document_id="report-2025")
    assert store.put("acme", data, document_id="slides/q4 ✓").id == first.id  # the same bytes in a second document: one image
    elsewhere = store.put("globex", data, document_id="report-2025")
    assert elsewhere.id != first.id  # another tenant's identical bytes are another image
    assert store.images_of("acme", "report-2025") == [first.id]

    assert store.release_document("acme", "report-2025") == []  # the slides still hold it
    assert store.read("acme", first.id) == data and store.thumbnail("acme", first.id) is not None
    assert (store.get("acme", first.id) or first).documents == ["slides/q4 ✓"]
    assert store.release_document("acme", "report-2025") == []  # a redelivered delete changes nothing

    assert store.release_document("acme", "slides/q4 ✓") == [first.id]
    assert store.get("acme", first.id) is None and store.read("acme", first.id) is None and store.thumbnail("acme", first.id) is None
    assert not {name for name in stored_names(store) if name.startswith(first.id)}  # no file of it is left
    assert store.images_of("acme", "slides/q4 ✓") == [] and store.images_of("acme", "report-2025") == []
    assert store.read("globex", elsewhere.id) == data and store.get("globex", elsewhere.id) is not None  # the other tenant's stays


def test_releasing_a_document_keeps_images_put_without_one_and_knows_older_records(store: ImageStore) -> None:
    loose = store.put("acme", image_bytes("JPEG"))
    assert store.release_document("acme", "never-seen") == [] and store.read("acme", loose.id) is not None
    older = StoredImage.model_validate({"id": loose.id, "tenant": "acme", "media_type": "image/jpeg", "width": 1, "height": 1,
                                        "document_id": "d1"})
    assert older.documents == ["d1"]  # a record written before `documents` existed is held by its document
