"""models.version_router.VersionRouter: the agent's in-memory answer to "which version serves this
conversation", over a real registry (SQLite), with the registry's own choice as the reference."""

from __future__ import annotations

import pytest

from models.registry import ModelRegistry, Serving
from models.version_router import VersionRouter
from schemas.database import Database
from schemas.settings import Settings
from schemas.tables import ModelVersionRecord

FAMILY = "fam"


class CountingRegistry(ModelRegistry):
    """The real registry, counting how often the router reads a tenant's line."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.reads = 0
        self.during_read: list[object] = []  # callables run in the middle of the next read

    def serving(self, family: str, tenant: str | None) -> Serving:
        self.reads += 1
        result = super().serving(family, tenant)
        while self.during_read:
            self.during_read.pop()()  # type: ignore[operator]
        return result


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry(settings: Settings) -> CountingRegistry:
    registry = CountingRegistry(Database.from_settings(settings))
    registry.ensure_base_version(FAMILY)
    return registry


def adapter(registry: ModelRegistry, name: str, tenant: str | None) -> str:
    version = f"{FAMILY}@lora-{name}"
    registry.register_candidate(ModelVersionRecord(version=version, family=FAMILY, tenant=tenant, artifact_uri=f"file:///a/{name}"),
                                actor="cli", reason="test")
    return version


def test_a_tenant_with_an_active_adapter_gets_it_and_another_tenant_the_base(registry):
    version = adapter(registry, "a1", "tenantA")
    registry.promote(version, actor="cli", reason="test")
    router = VersionRouter(registry, FAMILY)
    assert router.choose("tenantA", "c1") == version
    assert router.choose("tenantB", "c1") == f"{FAMILY}@base"
    assert router.serving_versions() == [f"{FAMILY}@base", version]


def test_choice_is_read_once_then_served_from_memory_until_forgotten(registry):
    router = VersionRouter(registry, FAMILY)
    assert [router.choose("tenantA", f"c{i}") for i in range(5)] == [f"{FAMILY}@base"] * 5
    assert registry.reads == 1
    version = adapter(registry, "a1", "tenantA")
    registry.promote(version, actor="cli", reason="test")
    assert router.choose("tenantA", "c1") == f"{FAMILY}@base"  # nobody said the line moved yet
    router.forget("tenantA")  # model.updated
    assert router.choose("tenantA", "c1") == version
    assert registry.reads == 2


def test_a_change_on_the_shared_line_reaches_every_tenant(registry):
    router = VersionRouter(registry, FAMILY)
    router.choose("tenantA", "c1"), router.choose("tenantB", "c1")
    shared = adapter(registry, "s1", None)
    registry.promote(shared, actor="cli", reason="test")
    router.forget(None)
    assert router.choose("tenantA", "c1") == router.choose("tenantB", "c1") == shared


def test_the_ttl_is_a_safety_net_for_a_missed_event(registry):
    clock = Clock()
    router = VersionRouter(registry, FAMILY, ttl_s=30, clock=clock)
    router.choose("tenantA", "c1")
    version = adapter(registry, "a1", "tenantA")
    registry.promote(version, actor="cli", reason="test")
    clock.now = 29.9
    assert router.choose("tenantA", "c1") == f"{FAMILY}@base"
    clock.now = 30.0
    assert router.choose("tenantA", "c1") == version


def test_a_read_overtaken_by_an_update_is_not_kept(registry):
    """model.updated arriving while the registry is read: what was read may predate the change, so the
    next request reads again instead of trusting it for a whole TTL."""
    router = VersionRouter(registry, FAMILY)
    registry.during_read.append(lambda: router.forget("tenantA"))
    router.choose("tenantA", "c1")
    router.choose("tenantA", "c1")
    assert registry.reads == 2


def test_canary_share_follows_the_registrys_stable_choice(registry):
    incumbent = adapter(registry, "a1", "tenantA")
    registry.promote(incumbent, actor="cli", reason="test")
    canary = adapter(registry, "a2", "tenantA")
    registry.start_canary(canary, share=0.3, actor="cli", reason="test")
    router = VersionRouter(registry, FAMILY)
    conversations = [f"conv-{i}" for i in range(200)]
    chosen = [router.choose("tenantA", c) for c in conversations]
    assert chosen == [registry.choose(FAMILY, "tenantA", c) for c in conversations]
    assert 30 < chosen.count(canary) < 90  # about 30% of conversations
    assert set(chosen) == {incumbent, canary}
    assert router.choose("tenantB", "conv-1") == f"{FAMILY}@base"  # tenant A's canary is behind its wall
