"""What every route needs, built once per app: the runtime's stores and publisher plus the task queue."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.settings import Settings
from streams.publisher import Publisher
from streams.runtime import Runtime
from streams.stores import Stores
from streams.tasks import TaskService, TokenHub


@dataclass
class GatewayContext:
    runtime: Runtime
    tasks: TaskService

    @classmethod
    def of(cls, runtime: Runtime) -> GatewayContext:
        return cls(runtime, TaskService(runtime.stores.tasks, runtime.stores.attempts, runtime.publisher, runtime.settings, TokenHub(),
                                            runtime.outbox))

    @property
    def stores(self) -> Stores:
        return self.runtime.stores

    @property
    def publisher(self) -> Publisher:
        return self.runtime.publisher

    @property
    def settings(self) -> Settings:
        return self.runtime.settings
