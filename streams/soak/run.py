"""One soak run: start the loop as processes, send the mixed load, drain, and account for it.

`ragloop soak` calls `soak`; the fault test uses the same parts (`child_env`, `Fleet`, `Load`,
`account`) with faults injected while the load runs.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from indexing.backends.base import SearchBackend
from schemas.settings import Settings
from streams.soak.fleet import Fleet
from streams.soak.ledger import Ledger, drained
from streams.soak.load import Load, Mix, merge_sending
from streams.soak.responses import answers_per_task

Mode = Literal["embedded", "cluster"]
CLUSTER_ROLES = ["ingest", "agent", "eval", "feedback"]  # the trainer and callbacks have no part in this load


class Plan(BaseModel):
    mode: Mode = "embedded"
    seconds: float | None = Field(None, gt=0, description="How long to send (None: until `events`).")
    events: int | None = Field(None, ge=1, description="How many requests to send (None: until `seconds`).")
    concurrency: int = Field(8, ge=1)
    drain_s: float = Field(120, gt=0, description="After the load: seconds without a new effect before the rest counts as lost or stuck.")
    seed: int = 0
    mix: Mix = Field(default_factory=Mix)


def isolated(settings: Settings, run_id: str) -> Settings:
    """The run's own topics, index and data folder, so it never meets another run's (or a user's) events."""
    return settings.override(topic_prefix=f"soak-{run_id}.", opensearch_index=f"soak-{run_id}",
                             home=settings.home / "soak" / run_id, max_new_tokens=4)


def child_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process these settings (the ones a soak run decides)."""
    env = {"RAGLOOP_HOME": str(settings.home), "RAGLOOP_BROKER_URL": settings.broker.url, "RAGLOOP_SEARCH_URL": settings.search.url,
           "RAGLOOP_TOPIC_PREFIX": settings.broker.topic_prefix, "RAGLOOP_OPENSEARCH_INDEX": settings.search.opensearch_index,
           "RAGLOOP_MAX_NEW_TOKENS": str(settings.llm.max_new_tokens)}
    if settings.database_url:
        env["RAGLOOP_DATABASE_URL"] = settings.database_url
    return env


class Caller(BaseModel):
    """Who the load acts as: a tenant of its own and an API key for it (cluster mode turns auth on)."""

    tenant: str
    key: str

    @classmethod
    def new(cls, run_id: str) -> Caller:
        return cls(tenant=f"soak-{run_id}", key=f"soak-{uuid.uuid4().hex}")

    def env(self) -> dict[str, str]:
        return {"RAGLOOP_API_KEYS": f"{self.key}={self.tenant}"}

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def index_of(settings: Settings) -> Callable[[], SearchBackend]:
    """The run's index as the ledger reads it: one OpenSearch client, or the embedded index reopened each look."""
    from indexing.backends.factory import open_backend
    from streams.services import Services

    dimension = Services(settings).embedder.dimension
    if settings.search.url.startswith("embedded"):
        return lambda: open_backend(settings.search.url, home=settings.home, dimension=dimension, index_prefix=settings.search.opensearch_index)
    backend = open_backend(settings.search.url, home=settings.home, dimension=dimension, index_prefix=settings.search.opensearch_index)
    return lambda: backend


async def account(load: Load, settings: Settings, *, drain_s: float) -> Ledger:
    """Wait for the effects of everything `load` got accepted (up to `drain_s`), and return the ledger."""
    from streams.stores import Stores

    stores = await asyncio.to_thread(Stores.from_settings, settings)
    search = await asyncio.to_thread(index_of, settings)
    ledger = await drained(load.accepted, stores, search, deadline_s=drain_s, answers=lambda: answers_per_task(settings))
    return merge_sending(ledger, load)


async def soak(settings: Settings, plan: Plan, *, logs: Path, on_start: Callable[[Fleet], None] = lambda fleet: None) -> Ledger:
    """Run the loop in `plan.mode` under the mixed load, then account for every accepted request."""
    run_id = uuid.uuid4().hex[:8]
    settings = isolated(settings, run_id)
    caller = Caller.new(run_id)
    fleet = Fleet(CLUSTER_ROLES, {**child_env(settings), **caller.env()}, port=free_port(), logs=logs / run_id, whole=plan.mode == "embedded")
    fleet.start_all()
    try:
        await asyncio.to_thread(fleet.wait_ready)
        on_start(fleet)
        load = Load(fleet.base_url, tenant=caller.tenant, mix=plan.mix, seed=plan.seed, headers=caller.headers())
        await load.run(events=plan.events, seconds=plan.seconds, concurrency=plan.concurrency)
        return await account(load, settings, drain_s=plan.drain_s)
    finally:
        fleet.stop_all()
