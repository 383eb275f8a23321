"""Images end to end: ingested through the gateway and the ingest worker, stored, CLIP-embedded and
indexed; served and searched per tenant; bad images refused at once; both index backends."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from indexing.images.index import EmbeddedImageIndex, ImageEntry, ImageIndex, OpenSearchImageIndex
from indexing.images.store import image_id, open_image_store
from models.clip import load_clip
from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.runtime import Runtime
from tests.images_support import bomb_png, image_bytes, stored_names
from tests.s3_double import s3_double
from tests.support import wait_for

RED, BLUE = (200, 30, 30), (30, 30, 200)


@pytest.fixture
def client(clip_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(Runtime(clip_settings, ["ingest"]))) as test_client:
        yield test_client


def post_image(client: TestClient, document_id: str, data: bytes, *, tenant: str, caption: str, fmt: str = "png") -> dict:
    reply = client.post("/v1/documents", json={"document_id": document_id, "tenant": tenant, "content_b64": base64.b64encode(data).decode(),
                                               "filename": f"{document_id}.{fmt}", "metadata": {"caption": caption}})
    assert reply.status_code == 202, reply.text
    return client.get(f"/v1/documents/{document_id}", params={"wait": "true", "timeout": 120}).json()


def test_each_format_is_ingested_served_and_found_only_in_its_tenant(client: TestClient) -> None:
    files = {"red-jpeg": (image_bytes("JPEG", color=RED), "jpg"), "blue-png": (image_bytes("PNG", color=BLUE), "png"),
             "green-webp": (image_bytes("WEBP", color=(30, 200, 30)), "webp")}
    for document_id, (data, fmt) in files.items():
        assert post_image(client, document_id, data, tenant="acme", caption=f"a {document_id} square", fmt=fmt)["status"] == "indexed"
    red = image_id("acme", files["red-jpeg"][0])
    served = client.get(f"/v1/images/{red}", params={"tenant": "acme"})
    assert (served.status_code, served.headers["content-type"], served.content) == (200, "image/jpeg", files["red-jpeg"][0])
    assert client.get(f"/v1/images/{red}/thumbnail", params={"tenant": "acme"}).headers["content-type"] == "image/jpeg"
    for path in (f"/v1/images/{red}", f"/v1/images/{red}/thumbnail"):
        assert client.get(path, params={"tenant": "other"}).status_code == 404  # another tenant's image is unknown to it

    by_image = client.post("/v1/images/search", json={"tenant": "acme", "image_b64": base64.b64encode(files["red-jpeg"][0]).decode()}).json()
    assert by_image["images"][0]["id"] == red and by_image["images"][0]["url"] == f"/v1/images/{red}"
    by_text = client.post("/v1/images/search", json={"tenant": "acme", "text": "a red square", "k": 10}).json()
    assert {hit["id"] for hit in by_text["images"]} == {image_id("acme", data) for data, _ in files.values()}
    assert client.post("/v1/images/search", json={"tenant": "other", "text": "a red square"}).json()["images"] == []
    related = client.post("/v1/images/search", json={"tenant": "acme", "target": "documents",
                                                     "image_b64": base64.b64encode(files["blue-png"][0]).decode()}).json()
    assert related["documents"] and related["documents"][0]["document_id"] in files


def test_deleting_an_image_document_removes_it_from_image_search(client: TestClient) -> None:
    data = image_bytes("PNG", color=RED)
    post_image(client, "gone", data, tenant="acme", caption="soon gone")
    assert client.delete("/v1/documents/gone").status_code == 202
    wait_for(lambda: client.get("/v1/documents/gone").json()["status"] == "deleted", what="the delete")
    assert client.post("/v1/images/search", json={"tenant": "acme", "text": "soon gone"}).json()["images"] == []


def delete(client: TestClient, document_id: str, tenant: str) -> None:
    assert client.delete(f"/v1/documents/{document_id}", params={"tenant": tenant}).status_code == 202
    wait_for(lambda: client.get(f"/v1/documents/{document_id}").json()["status"] == "deleted", what=f"the delete of {document_id}")


def served(client: TestClient, image: str, tenant: str) -> tuple[int, int]:
    """The status of the image's file and of its thumbnail."""
    return (client.get(f"/v1/images/{image}", params={"tenant": tenant}).status_code,
            client.get(f"/v1/images/{image}/thumbnail", params={"tenant": tenant}).status_code)


@pytest.mark.parametrize("where", ["folder", "bucket"])
def test_deleting_documents_stops_serving_an_image_once_none_holds_it(where: str, clip_settings: Settings) -> None:
    with s3_double() as endpoint:
        settings = clip_settings if where == "folder" else clip_settings.override(
            images_store_url="s3://media/img", artifact_store_endpoint=endpoint, artifact_store_access_key=SecretStr("ak"),
            artifact_store_secret_key=SecretStr("sk"))
        store = open_image_store(settings)
        data = image_bytes("PNG", color=RED)
        shared, theirs = image_id("acme", data), image_id("globex", data)
        assert shared != theirs  # the same bytes of another tenant are another image
        with TestClient(create_app(Runtime(settings, ["ingest"]))) as client:
            for document_id, tenant in (("catalog", "acme"), ("flyer", "acme"), ("their-catalog", "globex")):
                assert post_image(client, document_id, data, tenant=tenant, caption="a red square")["status"] == "indexed"
            assert served(client, shared, "acme") == (200, 200) and served(client, theirs, "globex") == (200, 200)

            delete(client, "flyer", "acme")  # the last to bring the picture, so the one its vector names
            assert served(client, shared, "acme") == (200, 200)  # the catalog still holds the same picture
            assert store.read("acme", shared) == data
            [hit] = client.post("/v1/images/search", json={"tenant": "acme", "text": "a red square"}).json()["images"]
            assert (hit["id"], hit["document_id"]) == (shared, "catalog")  # still found, as the catalog's

            delete(client, "catalog", "acme")
            assert served(client, shared, "acme") == (404, 404)
            assert store.get("acme", shared) is None
            assert not [name for name in stored_names(store) if shared in name]  # no file of it is left in the store
            assert served(client, theirs, "globex") == (200, 200) and store.read("globex", theirs) == data


@pytest.mark.parametrize(("data", "name", "status", "says"), [
    (image_bytes("JPEG", size=(256, 256))[:400], "cut.jpg", 422, "corrupt or truncated"),
    (bomb_png(), "bomb.png", 413, "RAGLOOP_IMAGES_MAX_PIXELS"),
    (b"GIF89a not really", "anim.gif", 415, "not supported"),
    (b"plain text", "fake.webp", 422, "JPEG, PNG or WebP"),
], ids=["truncated", "bomb", "gif", "garbage"])
def test_bad_images_are_refused_before_they_are_queued(client: TestClient, data: bytes, name: str, status: int, says: str) -> None:
    reply = client.post("/v1/documents", json={"document_id": "bad", "content_b64": base64.b64encode(data).decode(), "filename": name})
    assert reply.status_code == status and says in reply.text


def test_with_no_clip_checkpoint_every_image_entry_point_says_image_features_are_off(settings: Settings) -> None:
    with TestClient(create_app(Runtime(settings, roles=[]))) as plain:
        upload = plain.post("/v1/documents", json={"document_id": "pic", "filename": "pic.png",
                                                   "content_b64": base64.b64encode(image_bytes("PNG")).decode()})
        search = plain.post("/v1/images/search", json={"text": "a cat"})
    for reply in (upload, search):
        assert reply.status_code == 422 and "RAGLOOP_CLIP_CHECKPOINT" in reply.text


def make_index(kind: str, request: pytest.FixtureRequest, tmp_path: Path, unique: str, dimension: int) -> ImageIndex:
    if kind == "embedded":
        return EmbeddedImageIndex(tmp_path / "images.sqlite", dimension=dimension)
    index = OpenSearchImageIndex(request.getfixturevalue("opensearch_url"), dimension=dimension, index_prefix=f"test-{unique}")
    request.addfinalizer(index.drop)
    return index


@pytest.mark.parametrize("kind", ["embedded", pytest.param("opensearch", marks=pytest.mark.opensearch)])
def test_image_vectors_are_found_per_tenant_and_access_list(kind: str, request: pytest.FixtureRequest, tmp_path: Path, unique: str,
                                                            clip_settings: Settings) -> None:
    clip = load_clip(clip_settings)
    assert clip is not None
    from PIL import Image
    pictures = [Image.new("RGB", (64, 64), color) for color in (RED, BLUE, (240, 240, 240))]
    vectors = clip.encode_images(pictures)
    index = make_index(kind, request, tmp_path, unique, clip.dimension)
    entries = [ImageEntry(id="img-red", tenant="a", document_id="d1", caption="red"),
               ImageEntry(id="img-blue", tenant="a", document_id="d2", caption="blue", access=["alice"]),
               ImageEntry(id="img-white", tenant="b", document_id="d3", caption="white")]
    index.put(entries, vectors)
    assert [h.image.id for h in index.search(tenant="a", vector=vectors[0], k=5)] == ["img-red"]  # blue is alice's only
    found = index.search(tenant="a", vector=vectors[1], k=5, principals=["alice"])
    assert found[0].image.id == "img-blue" and found[0].score == pytest.approx(1.0, abs=1e-3)
    assert {h.image.id for h in index.search(tenant="b", vector=vectors[0], k=5)} == {"img-white"}
    assert index.search(tenant="a", vector=vectors[0], k=5, exclude="img-red") == []
    assert index.set_document("a", "img-blue", "d4") and not index.set_document("b", "img-blue", "d4")  # tenants are walls here too
    assert index.delete_document("a", "d2") == 0  # img-blue is d4's now
    assert [h.image.document_id for h in index.search(tenant="a", vector=vectors[1], k=1, principals=["alice"])] == ["d4"]
    assert index.delete_document("a", "d1") == 1
    assert index.search(tenant="a", vector=vectors[0], k=5) == []
    with pytest.raises(ValueError, match="shape"):
        index.put(entries[:1], np.zeros((1, 3), dtype=np.float32))
