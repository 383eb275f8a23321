"""Fault injection on the real services: accepted work is never lost, duplicated or stuck.

The loop runs as separate processes (the gateway and each worker role) on private Kafka,
OpenSearch and PostgreSQL (see conftest.py). While a mixed load of at least 2,000 requests goes
through the HTTP API, each worker role and the gateway is SIGKILLed at a random point and
restarted; Kafka is restarted; OpenSearch and PostgreSQL are stopped and brought back; the data
folder's disk is filled. Then the ledger must read 0 lost, 0 duplicated, 0 stuck.

What the API may answer while a dependency is down (probed during each outage, one try each at
POST /v1/documents, POST /v1/chat, POST /v1/feedback and GET /v1/tasks/{id}):
- PostgreSQL down: nothing can be accepted or read, so every probe is 503 with Retry-After;
- Kafka down, OpenSearch down, disk full: accepted (2xx; accepted work is kept until it can be
  published or indexed) or 503 with Retry-After;
- never any other 5xx, and never no answer. The load itself counts every other 5xx as a server error.

Longer runs: RAGLOOP_FAULTS_EVENTS (default 2000) requests, RAGLOOP_FAULTS_ROUNDS (default 1)
rounds of every fault, RAGLOOP_FAULTS_DRAIN_S (default 120): after the load, seconds without a new
effect before the rest counts as lost or stuck.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import uuid
from pathlib import Path

import pytest

from schemas.settings import Settings
from streams.soak.fleet import Fleet
from streams.soak.ledger import Ledger
from streams.soak.load import Answer, Load, Mix
from streams.soak.run import CLUSTER_ROLES, Caller, account, child_env, free_port, isolated
from tests.faults.conftest import PrivateServices

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1800)]

EVENTS = int(os.environ.get("RAGLOOP_FAULTS_EVENTS", "2000"))
ROUNDS = int(os.environ.get("RAGLOOP_FAULTS_ROUNDS", "1"))
DRAIN_S = float(os.environ.get("RAGLOOP_FAULTS_DRAIN_S", "120"))
# Mostly small documents and feedback; a few dozen chats of 4 tokens.
MIX = Mix(document=0.55, delete=0.08, feedback=0.35, chat=0.02, max_new_tokens=4)


class Faults:
    """Injects every fault once per round, at random points of the load, and keeps what the API answered during each outage."""

    def __init__(self, fleet: Fleet, services: PrivateServices, disk: Path | None, load: Load, seed: int) -> None:
        self.fleet, self.services, self.disk, self.load = fleet, services, disk, load
        self.rng = random.Random(seed)
        self.outages: dict[str, list[Answer]] = {}
        self.injected: list[str] = []
        self.done = False

    async def pause(self) -> None:
        await asyncio.sleep(self.rng.uniform(1.0, 5.0))  # a random point of the load, not a wait for anything

    async def run(self, rounds: int) -> None:
        try:
            for round_ in range(rounds):
                for role in self.rng.sample([*CLUSTER_ROLES, "gateway"], k=len(CLUSTER_ROLES) + 1):
                    await asyncio.to_thread(self.fleet.wait_working, role)  # kill it while it does its job
                    await self.pause()
                    await asyncio.to_thread(self.fleet.restart, role)
                    self.injected.append(f"SIGKILL {role}")
                    if role == "gateway":
                        await asyncio.to_thread(self.fleet.wait_ready)
                for service in ("kafka", "opensearch", "postgres"):
                    await self.pause()
                    await asyncio.to_thread(self.services.run, "stop", service)
                    self.outages[f"{service} down (round {round_ + 1})"] = await self.load.probe()
                    await self.pause()  # the load meets the outage too
                    await asyncio.to_thread(self.services.run, "start", service)
                    self.injected.append(f"{service} stopped and started")
                if self.disk is not None:
                    await self.pause()
                    filler = await asyncio.to_thread(fill, self.disk)
                    self.outages[f"disk full (round {round_ + 1})"] = await self.load.probe()
                    await self.pause()
                    filler.unlink()
                    self.injected.append("data disk filled and freed")
        finally:
            self.done = True


def fill(folder: Path) -> Path:
    """Write zeros into `folder` until its file system is full; the file is returned to free it later."""
    filler = folder / "filler.bin"
    block = bytes(1 << 20)
    with filler.open("wb") as out:
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    return filler


def cluster_settings(services: PrivateServices, home: Path) -> Settings:
    base = Settings(home=home, broker={"url": services.broker_url}, search={"url": services.search_url}, database_url=services.database_url)
    return isolated(base, uuid.uuid4().hex[:8])


def verdict(ledger: Ledger, faults: Faults, fleet: Fleet, crashed: list[str]) -> str:
    lines = [ledger.render(), "faults: " + "; ".join(faults.injected), "answers during outages:"]
    for outage, answers in faults.outages.items():
        lines.append(f"  {outage}: " + ", ".join(f"{a.request} {a.status}{' RA=' + a.retry_after if a.retry_after else ''}" for a in answers))
    for role in crashed:
        lines.append(f"{role} died on its own:\n{fleet.log_tail(role)}")
    return "\n".join(lines)


async def test_accepted_work_survives_every_fault(private_services: PrivateServices, data_disk: Path | None, tmp_path: Path) -> None:
    if data_disk is None:
        print("disk-full fault skipped: mounting a tmpfs was refused (run as root to include it)")
    settings = cluster_settings(private_services, data_disk or tmp_path / "home")
    # Short leases and backoff, so a killed agent's task is taken over well within the drain.
    caller = Caller.new("faults")
    env = {**child_env(settings), **caller.env(), "RAGLOOP_TASK_LEASE_S": "5", "RAGLOOP_WORKER_RETRY_BACKOFF_S": "0.2"}
    fleet = Fleet(CLUSTER_ROLES, env, port=free_port(), logs=tmp_path / "logs")
    fleet.start_all()
    try:
        await asyncio.to_thread(fleet.wait_ready)
        load = Load(fleet.base_url, tenant=caller.tenant, mix=MIX, seed=11, headers=caller.headers())
        faults = Faults(fleet, private_services, data_disk, load, seed=11)
        await asyncio.gather(load.run(events=EVENTS, concurrency=6, keep_going=lambda: not faults.done), faults.run(ROUNDS))
        ledger = await account(load, settings, drain_s=DRAIN_S)
        crashed = fleet.dead()
        report = verdict(ledger, faults, fleet, crashed)
        print(report)
        (tmp_path / "ledger.json").write_text(ledger.model_dump_json(indent=2))
    finally:
        fleet.stop_all()

    assert load.sent >= EVENTS
    assert ledger.total().accepted >= EVENTS // 2, report  # the load was accepted at all (not refused by auth or validation)
    assert ledger.clean, report
    assert ledger.server_errors == 0, report
    for outage, answers in faults.outages.items():
        assert all(a.acceptable for a in answers), f"{outage}: {answers}\n{report}"
        if outage.startswith("postgres"):
            assert all(a.status == 503 for a in answers), f"{outage}: {answers}\n{report}"
    assert crashed == [], report
