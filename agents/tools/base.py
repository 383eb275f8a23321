"""The one interface every agent tool meets: a name, a description, typed input and output, `run`.

Why this shape: the router picks a tool by name (or by the trigger patterns it declares), the
graph hands it a validated input built from the request, and the generator reads back a typed
output: passages it can cite (`hits`) and/or plain text (`text`). Retrieval is the first tool;
image search and image generation plug in the same way without touching the graph.

    >>> class Clock(Tool[ToolInput, ToolOutput]):                      # doctest: +SKIP
    ...     name, description = "clock", "the current UTC time"
    ...     input_model, output_model = ToolInput, ToolOutput
    ...     triggers = (r"\\bwhat time\\b",)
    ...     def run(self, args: ToolInput) -> ToolOutput:
    ...         return ToolOutput(text=datetime.now(UTC).isoformat())
    >>> Clock()(query="what time is it?").text                           # doctest: +SKIP
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, Field

from indexing.types import SearchHit


class ToolInput(BaseModel):
    """What the agent knows about a request when it calls a tool; tools extend it with their own fields."""

    query: str = Field(min_length=1)
    tenant: str = "default"
    principals: list[str] = Field(default_factory=list, description="Who is asking; tools that read tenant data filter by it.")


class ToolOutput(BaseModel):
    """What a tool gives the generator: passages to show and cite, or text to show, or both."""

    hits: list[SearchHit] = Field(default_factory=list)
    text: str = ""
    answer: str = Field("", description="A final answer to give as is, without the model (a tool that did the work, such "
                        "as queueing an image, whose URL must reach the user exactly).")


In = TypeVar("In", bound=ToolInput)
Out = TypeVar("Out", bound=ToolOutput)


class Tool(ABC, Generic[In, Out]):
    """A capability the agent may call. Subclasses set the class attributes and implement `run`.

    `triggers` are regular expressions (case-insensitive) that make the router pick this tool for
    a question without asking the model; a tool with none is chosen only by name.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    input_model: ClassVar[type[ToolInput]]
    output_model: ClassVar[type[ToolOutput]]
    triggers: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def run(self, args: In) -> Out: ...

    def __call__(self, **fields: Any) -> Out:
        """Validate `fields` against `input_model` (unknown ones are ignored), run, validate the output."""
        known = {k: v for k, v in fields.items() if k in self.input_model.model_fields}
        args = self.input_model.model_validate(known)
        return self.output_model.model_validate(self.run(args))  # type: ignore[arg-type, return-value]

    def wants(self, question: str) -> bool:
        return any(re.search(pattern, question, re.IGNORECASE) for pattern in self.triggers)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "triggers": list(self.triggers),
                "input": self.input_model.model_json_schema(), "output": self.output_model.model_json_schema()}
