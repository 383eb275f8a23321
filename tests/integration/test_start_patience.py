"""A process started while Kafka is unreachable comes up once it is reachable (#11: a worker
restarted during an outage must not exit and leave its topics unconsumed)."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

import pytest

from schemas.events import FeedbackEvent
from schemas.settings import Settings
from streams.patience import patiently
from streams.runtime import Runtime
from streams.soak.run import free_port


def test_patiently_retries_until_the_step_works_and_gives_up_after_its_patience() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return "up"

    assert patiently("a flaky thing", flaky, patience_s=30) == "up" and len(calls) == 3
    with pytest.raises(ConnectionError):
        patiently("a dead thing", lambda: (_ for _ in ()).throw(ConnectionError("down")), patience_s=0)


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _proxy_to(host: str, port: int, listen_port: int) -> asyncio.Server:
    """A loopback TCP forwarder: the bootstrap address that only starts answering later."""
    async def accept(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        await asyncio.gather(_forward(client_reader, upstream_writer), _forward(upstream_reader, client_writer))

    return await asyncio.start_server(accept, "127.0.0.1", listen_port)


async def test_a_worker_started_while_kafka_is_unreachable_comes_up_once_it_is(settings: Settings, kafka_url: str, unique: str) -> None:
    real = urlsplit(kafka_url.replace("kafka://", "tcp://"))
    late_port = free_port()
    patient = settings.override(broker_url=f"kafka://127.0.0.1:{late_port}", topic_prefix=f"{unique}.")
    runtime = Runtime(patient, ["feedback"])
    starting = asyncio.create_task(runtime.start(warm=False))
    await asyncio.sleep(2.0)  # the outage: nothing listens on the bootstrap address yet
    assert not starting.done(), starting.exception() if starting.done() else None
    proxy = await _proxy_to(real.hostname or "127.0.0.1", real.port or 9092, late_port)
    try:
        await asyncio.wait_for(starting, 120)
        await runtime.publisher.publish(FeedbackEvent(task_id=f"{unique}-t", rating="up"))  # it really is connected
    finally:
        await runtime.stop()
        proxy.close()
