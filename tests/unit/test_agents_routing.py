"""agents.routing: deterministic choice between answering directly, retrieval and other tools."""

from typing import ClassVar

import pytest

from agents.routing import route
from agents.tools.base import Tool, ToolInput, ToolOutput
from agents.types import AgentQuery


class WordCount(Tool[ToolInput, ToolOutput]):
    """A real (tiny) tool: counts the words of the question."""

    name: ClassVar[str] = "word_count"
    description: ClassVar[str] = "Counts words."
    input_model: ClassVar[type[ToolInput]] = ToolInput
    output_model: ClassVar[type[ToolOutput]] = ToolOutput
    triggers: ClassVar[tuple[str, ...]] = (r"\bhow many words\b",)

    def run(self, args: ToolInput) -> ToolOutput:
        return ToolOutput(text=f"{len(args.query.split())} words")


TOOLS = {"retrieval": object(), "word_count": WordCount()}  # retrieval is never asked `wants`


def test_knowledge_questions_go_to_retrieval():
    decision = route(AgentQuery(question="How long is the Ostra river?"), TOOLS)
    assert (decision.node, decision.tool) == ("retrieve", "retrieval")


def test_retrieval_false_answers_from_the_model_alone():
    assert route(AgentQuery(question="How long is the Ostra river?", retrieval=False), TOOLS).node == "direct"


def test_small_talk_is_answered_directly():
    assert [route(AgentQuery(question=q), TOOLS).node for q in ("Hi!", "thanks a lot", "Good morning, ragloop")] == ["direct"] * 3


def test_a_question_matching_a_tool_trigger_uses_that_tool():
    decision = route(AgentQuery(question="How many words are in this sentence?"), TOOLS)
    assert (decision.node, decision.tool) == ("tool", "word_count")


def test_a_pinned_tool_is_used_as_asked():
    assert route(AgentQuery(question="Hi!", tool="word_count"), TOOLS).tool == "word_count"


def test_an_unknown_pinned_tool_names_the_registered_ones():
    with pytest.raises(ValueError, match=r"'image_search' is not registered; available: \['retrieval', 'word_count'\]"):
        route(AgentQuery(question="a cat", tool="image_search"), TOOLS)


def test_a_tool_validates_its_input_and_output():
    assert WordCount()(query="one two three", tenant="t", unrelated=1).text == "3 words"
    with pytest.raises(ValueError):
        WordCount()(query="")
