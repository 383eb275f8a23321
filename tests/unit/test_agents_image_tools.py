"""The image tools: the router picks them for "show me …" requests and attached images, not for text
questions; their results are citable hits carrying the image's URL."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from agents.routing import route
from agents.tools.images import ImageDocumentsTool, ImageSearchTool
from agents.types import AgentQuery
from indexing.images.index import EmbeddedImageIndex, ImageEntry
from indexing.images.search import ImageSearch
from models.clip import load_clip
from schemas.settings import Settings
from tests.images_support import image_bytes


@pytest.fixture
def search(clip_settings: Settings, tmp_path: Path) -> ImageSearch:
    clip = load_clip(clip_settings)
    assert clip is not None
    return ImageSearch(clip, EmbeddedImageIndex(tmp_path / "images.sqlite", dimension=clip.dimension))


@pytest.mark.parametrize("question", ["show me the red bicycle", "Can you find a picture of the harbour?", "photos of our team",
                                      "What does the new logo look like?"])
def test_requests_to_see_something_go_to_image_search(search: ImageSearch, question: str) -> None:
    tools = {"image_search": ImageSearchTool(search), "image_documents": ImageDocumentsTool(search)}
    decision = route(AgentQuery(question=question), tools)
    assert (decision.node, decision.tool) == ("tool", "image_search")


@pytest.mark.parametrize("question", ["How long is the Ostra river?", "Who wrote the image processing chapter?",
                                      "Summarise the refund policy"])
def test_text_questions_still_go_to_retrieval(search: ImageSearch, question: str) -> None:
    tools = {"image_search": ImageSearchTool(search), "image_documents": ImageDocumentsTool(search)}
    assert route(AgentQuery(question=question), tools).node == "retrieve"


def test_an_attached_image_goes_to_image_search(search: ImageSearch) -> None:
    query = AgentQuery(question="what is this?", images=[base64.b64encode(image_bytes("PNG")).decode()])
    assert route(query, {"image_search": ImageSearchTool(search)}).tool == "image_search"
    assert route(query, {}).node == "retrieve"  # image features off: no image tool to route to


def test_image_hits_are_citations_with_the_image_url(search: ImageSearch) -> None:
    from PIL import Image

    red = Image.new("RGB", (64, 64), (220, 20, 20))
    search.index.put([ImageEntry(id="img-" + "a" * 24, tenant="acme", document_id="bike", caption="a red bicycle")],
                     search.clip.encode_images([red]))
    tool = ImageSearchTool(search)
    found = tool(query="show me the red bicycle", tenant="acme").hits
    assert found[0].chunk.metadata["image_url"] == f"/v1/images/img-{'a' * 24}" and found[0].chunk.document_id == "bike"
    attached = tool(query="like this", tenant="acme", images=["data:image/png;base64," + base64.b64encode(image_bytes("PNG")).decode()])
    assert attached.hits[0].chunk.id == "img-" + "a" * 24
    assert tool(query="show me the red bicycle", tenant="other").hits == []
