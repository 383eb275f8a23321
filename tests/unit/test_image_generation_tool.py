"""The router sends "draw me …" requests to the image generation tool and text questions elsewhere; the tool's
answer carries the image URL as is, and says what to change when generation is off or the prompt too long."""

from __future__ import annotations

import pytest

from agents.routing import route
from agents.tools.image_generation import ImageGenerationTool, SubmittedImage
from agents.types import AgentQuery
from models.image_generator import OFF_MESSAGE, ImageGenerationOff, check_request
from schemas.settings_sections import ImageGenSettings

DRAW = ["draw me a red bicycle", "Please draw a lighthouse at dusk", "Can you paint a cat wearing a hat?",
        "generate an image of a mountain lake", "Create a picture of two foxes", "make me an illustration of a robot"]
TEXT = ["How long is the Ostra river?", "How do I generate an image in matplotlib?", "How do I draw a graph with matplotlib?", "What is an image embedding?",
        "Summarise the drawing rights of the bank", "Who painted the Mona Lisa?", "thanks!"]


def tools(submitted: list[tuple[str, str]]) -> dict[str, object]:
    def submit(tenant: str, prompt: str) -> SubmittedImage:
        submitted.append((tenant, prompt))
        return SubmittedImage(id="job1", url="/v1/images/generations/job1/content")

    return {"retrieval": object(), "image_generation": ImageGenerationTool(submit)}


@pytest.mark.parametrize("request_text", DRAW)
def test_image_requests_route_to_the_generation_tool(request_text: str) -> None:
    decision = route(AgentQuery(question=request_text), tools([]))  # type: ignore[arg-type]
    assert (decision.node, decision.tool) == ("tool", "image_generation")


@pytest.mark.parametrize("request_text", TEXT)
def test_text_questions_do_not(request_text: str) -> None:
    assert route(AgentQuery(question=request_text), tools([])).tool != "image_generation"  # type: ignore[arg-type]


def test_the_answer_carries_the_url_and_the_prompt_is_what_to_draw() -> None:
    submitted: list[tuple[str, str]] = []
    tool = tools(submitted)["image_generation"]
    output = tool(query="Please draw me a red bicycle!", tenant="acme")  # type: ignore[operator]
    assert submitted == [("acme", "a red bicycle")]
    assert "/v1/images/generations/job1/content" in output.answer and output.text == "/v1/images/generations/job1/content"


def test_off_and_over_the_limit_are_said_in_the_answer() -> None:
    def off(tenant: str, prompt: str) -> SubmittedImage:
        raise ImageGenerationOff(OFF_MESSAGE)

    assert "RAGLOOP_IMAGE_GEN_CHECKPOINT" in ImageGenerationTool(off)(query="draw a cat").answer

    def bounded(tenant: str, prompt: str) -> SubmittedImage:
        check_request(prompt, ImageGenSettings(max_prompt_chars=5))
        raise AssertionError("a prompt over the limit was accepted")

    assert "the limit is 5" in ImageGenerationTool(bounded)(query="draw a very long cat").answer


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"prompt": "x" * 11}, "prompt is 11 characters; the limit is 10 (RAGLOOP_IMAGE_GEN_MAX_PROMPT_CHARS)"),
    ({"size": "2048x64"}, "width 2048 is out of bounds: a multiple of 8 from 64 to 256 (RAGLOOP_IMAGE_GEN_MAX_SIZE)"),
    ({"size": "64x100"}, "height 100 is out of bounds"),
    ({"size": "big"}, "size must look like `512x512`"),
    ({"steps": 9}, "steps 9 is out of bounds: 1 to 8 (RAGLOOP_IMAGE_GEN_MAX_STEPS)"),
])
def test_requests_beyond_the_bounds_name_the_limit(kwargs: dict[str, object], message: str) -> None:
    limits = ImageGenSettings(max_prompt_chars=10, max_size=256, size=64, max_steps=8)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        check_request(**{"prompt": "a cat", "limits": limits, **kwargs})  # type: ignore[arg-type]
    assert check_request("a cat", limits).model_dump() == {"prompt": "a cat", "width": 64, "height": 64, "steps": 4, "seed": None}
