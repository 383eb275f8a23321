"""Image generation as a tool: "draw me …", "generate an image of …" become a queued text-to-image job.

The tool does not render anything itself (that is the `images` worker's job, often on a GPU host):
it hands the prompt to `submit`, which the process wires to the job queue, and answers with the URL
where the image will be served. That answer is given as is (`ToolOutput.answer`): a small model
asked to repeat a URL garbles it. When generation is off, or the prompt is beyond the limits, the
answer says so and what to change.

    >>> tool = ImageGenerationTool(lambda tenant, prompt: SubmittedImage(id="j1", url="/v1/images/generations/j1/content"))
    >>> tool(query="draw me a red bicycle", tenant="acme").answer
    'Generating an image of "a red bicycle": /v1/images/generations/j1/content (job j1; it is ready in a moment).'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar

from pydantic import BaseModel

from agents.tools.base import Tool, ToolInput, ToolOutput
from models.image_generator import ImageGenerationOff


class SubmittedImage(BaseModel):
    id: str
    url: str


Submit = Callable[[str, str], SubmittedImage]  # (tenant, prompt) → the accepted job

_ASKING = r"^\W*(?:please\W+)?(?:(?:can|could|would|will)\s+you\s+)?(?:please\s+)?"
_MEDIUM = r"(?:an?\s+|some\s+)?(?:image|picture|illustration|drawing|painting|photo|sketch)s?"
# The instruction itself, stripped from the request to leave what the image should show.
_INSTRUCTION = re.compile(_ASKING + r"(?:(?:draw|paint|sketch|illustrate)(?:\s+me)?|(?:generate|create|make|produce|render)(?:\s+me)?\s+"
                          + _MEDIUM + r"(?:\s+(?:of|showing|with))?)\s*[:,]?\s*", re.IGNORECASE)
# Questions about images ("how do I draw a graph?") are knowledge questions, not requests for one.
_QUESTION = re.compile(r"^\W*(?:how|why|what|when|where|which|who|is|are|does|do|did|should)\b", re.IGNORECASE)


class ImageGenerationTool(Tool[ToolInput, ToolOutput]):
    name: ClassVar[str] = "image_generation"
    description: ClassVar[str] = "Generate an image from a text description (queued text-to-image); answers with the image's URL."
    input_model: ClassVar[type[ToolInput]] = ToolInput
    output_model: ClassVar[type[ToolOutput]] = ToolOutput
    triggers: ClassVar[tuple[str, ...]] = (
        _ASKING + r"(?:draw|paint|sketch|illustrate)\b",
        r"\b(?:generate|create|make|produce|render)\s+(?:me\s+)?" + _MEDIUM + r"\b",
    )

    def __init__(self, submit: Submit) -> None:
        self.submit = submit

    def wants(self, question: str) -> bool:
        return not _QUESTION.match(question) and super().wants(question)

    def run(self, args: ToolInput) -> ToolOutput:
        prompt = _INSTRUCTION.sub("", args.query, count=1).strip().rstrip("?!.").strip() or args.query
        try:
            job = self.submit(args.tenant, prompt)
        except ImageGenerationOff as off:
            return ToolOutput(answer=f"I cannot draw that here: {off}.", text=str(off))
        except ValueError as error:
            return ToolOutput(answer=f"I cannot draw that: {error}.", text=str(error))
        return ToolOutput(answer=f'Generating an image of "{prompt}": {job.url} (job {job.id}; it is ready in a moment).', text=job.url)
