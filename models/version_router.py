"""Which model version answers a request, without asking the database twice per request.

An agent process keeps each tenant's `Serving` (active + canary) in memory: filled from the
registry on first use (and at start, `preload`), dropped when `model.updated` says a line moved
(`forget`), and re-read after `ttl_s` as a safety net for a lost event. The choice itself is the
registry's rule: the canary for its stable-hash share of conversations, else the active version.

    router = VersionRouter(registry, "smollm2")
    router.choose("acme", conversation_id)            # "smollm2@lora-1a2b3c4d5e6f" or "smollm2@base"
    router.forget(update.version_tenant)              # on model.updated

A read that started before a `forget` is not cached (a generation counter), so a transition
committed while the registry was being read can never be hidden for a whole TTL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from models.registry import ModelRegistry, Serving, in_canary

# States whose adapters a process should hold loaded: what answers traffic now.
SERVING_STATES = frozenset({"active", "canary"})


class VersionRouter:
    def __init__(self, registry: ModelRegistry, family: str, *, ttl_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.family = family
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str | None, tuple[float, Serving]] = {}
        self._generation = 0

    def serving(self, tenant: str | None) -> Serving:
        """The tenant's active and canary versions, from memory when fresh."""
        with self._lock:
            cached = self._cache.get(tenant)
            if cached is not None and self._clock() - cached[0] < self.ttl_s:
                return cached[1]
            generation = self._generation
        serving = self.registry.serving(self.family, tenant)
        with self._lock:
            if generation == self._generation:  # no model.updated arrived while we read: safe to keep
                self._cache[tenant] = (self._clock(), serving)
        return serving

    def choose(self, tenant: str | None, conversation_key: str) -> str:
        """The version that answers this conversation now (`ModelRegistry.choose`'s rule, from the cache)."""
        serving = self.serving(tenant)
        canary = serving.canary
        if canary is not None and in_canary(canary.version, conversation_key, canary.canary_share or 0.0):
            return canary.version
        return serving.active.version

    def forget(self, tenant: str | None = None, *, everything: bool = False) -> None:
        """A line moved: drop what serves it. The shared line (None) serves every tenant without its own
        active version, so a change there drops every tenant's entry."""
        with self._lock:
            self._generation += 1
            if everything or tenant is None:
                self._cache.clear()
            else:
                self._cache.pop(tenant, None)

    def serving_versions(self) -> list[str]:
        """Every version answering some traffic now (each line's active and canary): the adapters to keep loaded."""
        return [r.version for r in self.registry.list_versions(self.family) if r.state in SERVING_STATES]
