"""What every route needs, built once per app: the runtime's store and publisher plus the task queue."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.settings import Settings
from streams.publisher import Publisher
from streams.runtime import Runtime
from streams.store import Store
from streams.tasks import TaskService, TokenHub


@dataclass
class GatewayContext:
    runtime: Runtime
    tasks: TaskService

    @classmethod
    def of(cls, runtime: Runtime) -> GatewayContext:
        return cls(runtime, TaskService(runtime.store, runtime.publisher, runtime.settings, TokenHub()))

    @property
    def store(self) -> Store:
        return self.runtime.store

    @property
    def publisher(self) -> Publisher:
        return self.runtime.publisher

    @property
    def settings(self) -> Settings:
        return self.runtime.settings
