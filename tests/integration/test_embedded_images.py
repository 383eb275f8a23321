"""Images inside ingested PDF and HTML files, end to end through the gateway and the ingest worker: each one
becomes an image of the same tenant, access list, source and document (tiny CLIP), found by image search only
there; a bad one (a bomb, a broken stream) is refused alone and recorded on the text document, which is indexed."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from indexing.images.store import image_id
from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.runtime import Runtime
from tests.images_support import bomb_png, data_url, html_with_images, image_bytes, pdf_with_images, stored_names
from tests.support import wait_for


@pytest.fixture
def world(clip_settings: Settings) -> Iterator[tuple[TestClient, Runtime]]:
    runtime = Runtime(clip_settings, ["ingest"])
    with TestClient(create_app(runtime)) as client:
        yield client, runtime


def ingest(client: TestClient, document_id: str, data: bytes, filename: str, **fields: object) -> dict:
    reply = client.post("/v1/documents", json={"document_id": document_id, "content_b64": base64.b64encode(data).decode(),
                                               "filename": filename, **fields})
    assert reply.status_code == 202, reply.text
    return client.get(f"/v1/documents/{document_id}", params={"wait": "true", "timeout": 120}).json()


def search(client: TestClient, text: str, tenant: str, principals: list[str] | None = None) -> list[dict]:
    reply = client.post("/v1/images/search", json={"text": text, "tenant": tenant, "k": 10, "principals": principals or []})
    assert reply.status_code == 200, reply.text
    return list(reply.json()["images"])


def test_pdf_page_images_are_images_of_the_document_and_a_bad_one_fails_alone(world: tuple[TestClient, Runtime]) -> None:
    client, runtime = world
    jpeg = image_bytes("JPEG", size=(64, 48))
    pdf = pdf_with_images("Quarterly bicycle report", [(jpeg, 64, 48), (jpeg, 100_000, 100_000), (b"broken stream", 64, 48)])
    document = ingest(client, "report", pdf, "report.pdf", tenant="acme", access=["finance"])
    assert document["status"] == "indexed", document
    [image] = search(client, "a bicycle", "acme", ["finance"])
    assert (image["document_id"], image["source"]) == ("report", "report.pdf")
    served = client.get(image["url"], params={"tenant": "acme", "principal": "finance"})
    assert served.status_code == 200 and Image.open(io.BytesIO(served.content)).size == (64, 48)  # pypdf hands the page's JPEG over
    assert search(client, "a bicycle", "acme") == []  # the document's access list holds for its images
    assert search(client, "a bicycle", "other", ["finance"]) == []  # and its tenant
    [chunk] = [h.chunk for h in runtime.services.retriever.retrieve("bicycle report", tenant="acme", k=3, principals=["finance"])]
    assert chunk.metadata["embedded_images"] == [image["id"]]
    refused = {f["name"]: f["reason"] for f in chunk.metadata["embedded_image_failures"]}
    assert "RAGLOOP_IMAGES_MAX_PIXELS" in refused["page 1 image /Im2"] and "cannot be decoded" in refused["page 1 image /Im3"]


def test_html_data_images_are_indexed_with_their_alt_text_as_caption(world: tuple[TestClient, Runtime]) -> None:
    client, runtime = world
    png = image_bytes("PNG", color=(30, 30, 200))
    page = html_with_images("Our catalogue", [(data_url(png), "a blue kayak"), ("https://example.com/remote.png", "remote"),
                                              (data_url(bomb_png()), "a bomb")])
    assert ingest(client, "catalogue", page, "catalogue.html", tenant="shop")["status"] == "indexed"
    [image] = search(client, "a kayak", "shop")
    assert (image["id"], image["caption"], image["document_id"]) == (image_id("shop", png), "a blue kayak", "catalogue")
    [chunk] = [h.chunk for h in runtime.services.retriever.retrieve("catalogue", tenant="shop", k=3)]
    assert [f["name"] for f in chunk.metadata["embedded_image_failures"]] == ["<img> 3"]  # the remote one is not fetched, not failed
    assert client.delete("/v1/documents/catalogue", params={"tenant": "shop"}).status_code == 202
    wait_for(lambda: search(client, "a kayak", "shop") == [], what="the page's images to leave with it")


def test_deleting_a_pdf_stops_serving_the_images_inside_it(world: tuple[TestClient, Runtime]) -> None:
    client, runtime = world
    jpeg = image_bytes("JPEG", size=(48, 32), color=(200, 120, 30))
    assert ingest(client, "brochure", pdf_with_images("Orange ferry brochure", [(jpeg, 48, 32)]), "brochure.pdf", tenant="acme")["status"] == "indexed"
    [image] = search(client, "a ferry", "acme")
    assert image["document_id"] == "brochure"
    assert client.get(image["url"], params={"tenant": "acme"}).status_code == 200
    assert client.delete("/v1/documents/brochure", params={"tenant": "acme"}).status_code == 202
    wait_for(lambda: client.get("/v1/documents/brochure").json()["status"] == "deleted", what="the delete of the PDF")
    assert client.get(image["url"], params={"tenant": "acme"}).status_code == 404
    assert client.get(image["thumbnail_url"], params={"tenant": "acme"}).status_code == 404
    assert runtime.services.image_store.get("acme", image["id"]) is None
    assert not [name for name in stored_names(runtime.services.image_store) if image["id"] in name]
