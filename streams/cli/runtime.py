"""How a CLI command gets work done: in this process on the embedded broker, by the workers on Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from schemas.settings import Settings
from streams.runtime import Runtime

T = TypeVar("T")


def run_with(settings: Settings, roles: list[str], work: Callable[[Runtime], Awaitable[T]], *, warm: bool = True) -> T:
    """Run `work` inside a runtime hosting `roles`."""

    async def go() -> T:
        runtime = Runtime(settings, roles)
        await runtime.start(warm=warm)
        try:
            return await work(runtime)
        finally:
            await runtime.stop()

    return asyncio.run(go())


def in_process(settings: Settings, roles: list[str]) -> list[str]:
    """Embedded: nobody else will consume, so this process runs the roles; Kafka: workers elsewhere do."""
    return roles if settings.broker.is_embedded else []
