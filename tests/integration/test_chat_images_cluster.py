"""Images in chat in cluster mode: the gateway (a runtime of its own, no roles) checks and fetches the
question's image and publishes the task to Kafka; a worker runtime (ingest + agent) consumes it, searches
the tenant's images in OpenSearch by it, and the answer cites that tenant's image by URL. Tasks live in
PostgreSQL. One tenant asks through the `openai` client with an `https:` image, the other through `/v1/chat`
with a `data:` image; API keys are on, so each tenant is a key as in production. Neither sees the
other's images."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from pydantic import SecretStr

from indexing.images.store import image_id
from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime
from tests.e2e.conftest import fresh_postgres_schema
from tests.images_support import image_bytes
from tests.support import read_topic
from tests.tls_server import make_certificate, serve_https

pytestmark = pytest.mark.slow  # the agent generates with SmolLM2

RED, GREEN, BLUE = (image_bytes("PNG", color=color) for color in ((200, 30, 30), (30, 200, 30), (30, 30, 200)))
ASK = "which of our pictures is like this?"


@pytest.fixture
def cluster(clip_settings: Settings, kafka_url: str, opensearch_url: str, postgres_url: str, unique: str,
            tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    """Cluster settings (Kafka, OpenSearch, a fresh PostgreSQL schema) and an HTTPS server holding the red image."""
    cert, key = make_certificate(tmp_path)
    index = f"ragloop-test-{unique}"
    with fresh_postgres_schema(postgres_url, f"chatimg_{unique}") as database_url, \
            serve_https({"/red.png": (200, "image/png", RED)}, cert, key) as images:
        yield clip_settings.override(broker_url=kafka_url, topic_prefix=f"img{unique}.", search_url=opensearch_url, opensearch_index=index,
                                     database_url=database_url, auth="on",
                                     api_keys=SecretStr("key-acme=acme,key-globex=globex"), max_new_tokens=8, fetch_allow_private=True,
                                     ingest_fetch_ca_file=cert), images
    for name in httpx.get(f"{opensearch_url}/_cat/indices/{index}*", params={"format": "json"}).json():
        httpx.delete(f"{opensearch_url}/{name['index']}")


def index_image(client: httpx.Client, document_id: str, data: bytes) -> None:
    posted = client.post("/v1/documents", json={"document_id": document_id, "content_b64": base64.b64encode(data).decode(),
                                                "filename": f"{document_id}.png", "metadata": {"caption": f"a {document_id}"}})
    assert posted.status_code == 202, posted.text
    done = client.get(f"/v1/documents/{document_id}", params={"wait": "true", "timeout": 180})
    assert done.json()["status"] == "indexed", done.text


def test_an_image_in_chat_over_kafka_cites_the_tenants_own_images_only(cluster: tuple[Settings, str]) -> None:
    settings, images = cluster
    gateway = Runtime(settings, [])
    with serve_in_thread(create_app(Runtime(settings, ["ingest", "agent"]))), serve_in_thread(create_app(gateway)) as url, \
            httpx.Client(base_url=url, timeout=300, headers={"Authorization": "Bearer key-acme"}) as acme_client, \
            httpx.Client(base_url=url, timeout=300, headers={"Authorization": "Bearer key-globex"}) as globex_client:
        index_image(acme_client, "red-square", RED)
        index_image(acme_client, "green-square", GREEN)
        index_image(globex_client, "blue-square", BLUE)

        completion = openai.OpenAI(base_url=f"{url}/v1", api_key="key-acme", max_retries=0).chat.completions.create(
            model="ragloop", messages=[{"role": "user", "content": [
                {"type": "text", "text": ASK}, {"type": "image_url", "image_url": {"url": f"{images}/red.png"}}]}])
        acme = (completion.model_extra or {})["citations"]
        assert acme and acme[0]["image_url"] == f"/v1/images/{image_id('acme', RED)}", acme
        red = "data:image/png;base64," + base64.b64encode(RED).decode()
        assert [event["images"] for event in read_topic(settings, gateway.broker, "chat.requests")] == [[red]]  # fetched, sent as data
        assert "tool.image_search" in read_topic(settings, gateway.broker, "chat.responses")[0]["timings_ms"]

        asked = globex_client.post("/v1/chat", params={"wait": "true", "timeout": 300}, json={"messages": [{"role": "user", "content": [
            {"type": "text", "text": ASK}, {"type": "image_url", "image_url": {"url": red}}]}]})
        assert asked.status_code == 200 and asked.json()["status"] == "succeeded", asked.text
        globex = [c["image_url"] for c in asked.json()["result"]["citations"] if c.get("image_url")]
        assert globex == [f"/v1/images/{image_id('globex', BLUE)}"], globex  # its own image, never acme's
