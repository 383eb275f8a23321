"""Text-to-image end to end on the embedded runtime with a tiny random-weight pipeline loaded through the users' path:
POST /v1/images/generations → images.generate → the images worker → PNG in the one image store, served to its tenant
only, and found again as the tenant's image document (tiny CLIP: text → image search; its prompt: text search), in a
folder or an S3-compatible bucket; limits refused with 422, generation off refused with 409 naming the setting."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr

from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.runtime import Runtime
from tests.s3_double import S3Double, s3_double
from tests.support import wait_for
from tests.tiny_diffusion import build_tiny_pipeline

A = {"Authorization": "Bearer key-a"}
B = {"Authorization": "Bearer key-b"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("diffusion"))


@pytest.fixture
def world(clip_settings: Settings, checkpoint: Path) -> Iterator[tuple[TestClient, Runtime]]:
    keyed = clip_settings.override(auth="on", api_keys=SecretStr("key-a=tenantA, key-b=tenantB"), image_gen_checkpoint=checkpoint,
                              image_gen_size=64, image_gen_steps=2, image_gen_max_size=128, image_gen_max_prompt_chars=200)
    runtime = Runtime(keyed, roles=["images", "ingest"])
    with TestClient(create_app(runtime)) as client:
        yield client, runtime


@pytest.fixture
def client(world: tuple[TestClient, Runtime]) -> TestClient:
    return world[0]


def test_a_generated_image_is_served_to_its_tenant_and_found_again_as_its_document(world: tuple[TestClient, Runtime]) -> None:
    client, runtime = world
    made = client.post("/v1/images/generations", json={"prompt": "a red bicycle by a lake", "wait": True, "seed": 3}, headers=A)
    assert made.status_code == 200, made.text
    job = made.json()
    assert job["status"] == "done" and job["size"] == "64x64" and job["steps"] == 2
    url = job["data"][0]["url"]
    assert url.endswith(f"/v1/images/generations/{job['id']}/content") and job["data"][0]["revised_prompt"] == "a red bicycle by a lake"
    png = client.get(url, headers=A)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (64, 64)
    # another tenant: the job and its image do not exist for it
    assert client.get(f"/v1/images/generations/{job['id']}", headers=B).status_code == 404
    assert client.get(url, headers=B).status_code == 404
    assert client.get(f"/v1/images/generations/{job['id']}", headers=A).json()["status"] == "done"
    # the prompt is the caption of a document of the tenant, so the image can be found again
    document = client.get(f"/v1/documents/{job['document_id']}", params={"wait": "true", "timeout": 120}, headers=A).json()
    assert document["status"] == "indexed", document
    retriever = runtime.services.retriever
    found = retriever.retrieve("red bicycle lake", tenant="tenantA", k=3)
    assert [hit.chunk.document_id for hit in found][:1] == [job["document_id"]]
    cited = client.get(str(found[0].chunk.metadata["image_url"]), headers=A)  # the citation's URL serves the same image
    assert cited.status_code == 200 and cited.content == png.content
    assert job["document_id"] not in [hit.chunk.document_id for hit in retriever.retrieve("red bicycle lake", tenant="tenantB", k=3)]


def generate(client: TestClient, prompt: str, headers: dict[str, str]) -> dict:
    made = client.post("/v1/images/generations", json={"prompt": prompt, "wait": True, "seed": 3}, headers=headers)
    assert made.status_code == 200 and made.json()["status"] == "done", made.text
    job: dict = made.json()
    document = client.get(f"/v1/documents/{job['document_id']}", params={"wait": "true", "timeout": 120}, headers=headers).json()
    assert document["status"] == "indexed", document
    return job


def assert_found_only_by_its_tenant(client: TestClient, job: dict) -> None:
    """Text → image search finds the generated image (prompt as caption, job as source) as its tenant, never as another."""
    found = client.post("/v1/images/search", json={"text": job["prompt"], "k": 5}, headers=A)
    assert found.status_code == 200, found.text
    [image] = [hit for hit in found.json()["images"] if hit["document_id"] == job["document_id"]]
    assert image["caption"] == job["prompt"] and image["source"] == f"/v1/images/generations/{job['id']}"
    assert client.post("/v1/images/search", json={"text": job["prompt"], "k": 5}, headers=B).json()["images"] == []
    served = client.get(image["url"], headers=A)
    assert served.status_code == 200 and served.content == client.get(job["data"][0]["url"], headers=A).content
    assert client.get(image["url"], headers=B).status_code == 404
    assert client.get(image["thumbnail_url"], headers=A).headers["content-type"] == "image/jpeg"


def test_a_generated_image_is_an_image_document_of_its_tenant(client: TestClient) -> None:
    assert_found_only_by_its_tenant(client, generate(client, "a green kite over the sea", A))


def test_deleting_a_generated_image_document_stops_serving_the_image(client: TestClient) -> None:
    job = generate(client, "a purple tram at night", A)
    [image] = [hit for hit in client.post("/v1/images/search", json={"text": job["prompt"], "k": 5}, headers=A).json()["images"]
               if hit["document_id"] == job["document_id"]]
    assert client.get(image["url"], headers=A).status_code == 200
    assert client.delete(f"/v1/documents/{job['document_id']}", headers=A).status_code == 202
    wait_for(lambda: client.get(f"/v1/documents/{job['document_id']}", headers=A).json()["status"] == "deleted", what="the delete")
    for url in (image["url"], image["thumbnail_url"]):
        assert client.get(url, headers=A).status_code == 404, url
    gone = client.get(job["data"][0]["url"], headers=A)  # the job is still there; its image is not
    assert gone.status_code == 410 and "its document was deleted" in gone.text


def test_generated_images_go_to_the_bucket_when_the_image_store_is_one(clip_settings: Settings, checkpoint: Path) -> None:
    with s3_double() as endpoint:
        keyed = clip_settings.override(auth="on", api_keys=SecretStr("key-a=tenantA, key-b=tenantB"), image_gen_checkpoint=checkpoint,
                                       image_gen_size=64, image_gen_steps=2, images_store_url="s3://media/img",
                                       artifact_store_endpoint=endpoint, artifact_store_access_key=SecretStr("ak"),
                                       artifact_store_secret_key=SecretStr("sk"))
        with TestClient(create_app(Runtime(keyed, roles=["images", "ingest"]))) as client:
            job = generate(client, "a yellow boat in a harbour", A)
            assert_found_only_by_its_tenant(client, job)
            assert any(key.startswith("/media/img/") and key.endswith(".bin") for key in S3Double.objects)
    assert not (keyed.home / "images").exists()


@pytest.mark.parametrize(("body", "message"), [
    ({"prompt": "x" * 201}, "prompt is 201 characters; the limit is 200 (RAGLOOP_IMAGE_GEN_MAX_PROMPT_CHARS)"),
    ({"prompt": "a cat", "size": "256x256"}, "width 256 is out of bounds: a multiple of 8 from 64 to 128 (RAGLOOP_IMAGE_GEN_MAX_SIZE)"),
    ({"prompt": "a cat", "steps": 51}, "steps 51 is out of bounds: 1 to 50 (RAGLOOP_IMAGE_GEN_MAX_STEPS)"),
])
def test_requests_beyond_the_limits_are_refused_with_422_naming_the_limit(client: TestClient, body: dict[str, object], message: str) -> None:
    refused = client.post("/v1/images/generations", json=body, headers=A)
    assert refused.status_code == 422 and message in refused.text


def test_without_a_checkpoint_generation_is_refused_saying_how_to_turn_it_on(settings: Settings) -> None:
    with TestClient(create_app(Runtime(settings, roles=[]))) as client:
        refused = client.post("/v1/images/generations", json={"prompt": "a cat"})
    assert refused.status_code == 409 and "RAGLOOP_IMAGE_GEN_CHECKPOINT" in refused.text


def test_a_render_that_keeps_failing_ends_its_job_failed_with_the_reason(settings: Settings, tmp_path: Path) -> None:
    broken = tmp_path / "broken-checkpoint"
    broken.mkdir()  # looks like a pipeline folder, but its parts are missing: loading raises on every delivery
    (broken / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}')
    keyed = settings.override(image_gen_checkpoint=broken, image_gen_size=64, worker_max_retries=1, worker_retry_backoff_s=0.01)
    with TestClient(create_app(Runtime(keyed, roles=["images"]))) as client:
        made = client.post("/v1/images/generations", json={"prompt": "a cat", "wait": True})
        assert made.status_code in (200, 202), made.text
        job_id = made.json()["id"]
        job = wait_for(lambda: (got := client.get(f"/v1/images/generations/{job_id}").json())["status"] != "queued" and got,
                       timeout=120, what="the job to settle")
    assert job["status"] == "failed" and "model_index.json" not in str(job["error"]), job

