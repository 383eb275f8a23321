"""A chat request redelivered after its task succeeded is not answered again: the agent re-publishes
the response it stored, so a consumer that missed it still gets the very same event."""

from __future__ import annotations

import pytest

from schemas.events import ChatOptions, ChatRequest, ChatTurn
from schemas.settings import Settings
from streams.runtime import Runtime
from streams.task_store import task_from_request
from tests.support import eventually, outcome_of, read_topic


@pytest.mark.parametrize("broker", ["embedded", "kafka"])
async def test_a_request_redelivered_after_success_republishes_the_stored_response(settings: Settings, broker: str,
                                                                                   request: pytest.FixtureRequest, unique: str) -> None:
    if broker == "kafka":
        settings = settings.override(broker_url=request.getfixturevalue("kafka_url"), topic_prefix=f"{unique}.")
    runtime = Runtime(settings, ["agent"])
    asked = ChatRequest(messages=[ChatTurn(role="user", content="How long is the Ostra?")], options=ChatOptions(stream=False))
    runtime.stores.tasks.create_task(task_from_request(asked))
    attempts = runtime.stores.attempts
    attempt = attempts.claim(asked.task_id, "first-agent", 60.0)  # it answered, then died before its offset was committed
    assert attempt is not None and attempts.finish(asked.task_id, attempt, "first-agent", to="succeeded", result=outcome_of(asked, "612 km."))

    def republished() -> list[dict[str, object]]:
        return [e for e in read_topic(settings, runtime.broker, "chat.responses") if e["task_id"] == asked.task_id]

    await runtime.start(warm=False)  # no model: nothing is generated again
    try:
        await runtime.publisher.publish(asked.model_copy(update={"event_id": f"{asked.task_id}.redelivered"}))
        await eventually(lambda: bool(republished()), what="the stored response on chat.responses")
    finally:
        await runtime.stop()
    assert republished() == [outcome_of(asked, "612 km.").response.model_dump(mode="json")]
    assert [a.agent for a in attempts.of(asked.task_id)] == ["first-agent"]  # no second attempt was made
