"""Agent role: `chat.requests` (+ `.high`) → LangGraph agent → `chat.tokens` + `chat.responses`.

Task-queue duties live here: a task is claimed with a lease (visibility timeout) that is renewed
while the answer is generated; a task whose agent died is re-published once its lease expires;
a cancelled task stops at its next token; high-priority tasks take the engine first.

Which version answers: the pinned `model_version` (the gateway checked the caller may pin it), else
the tenant's canary or active version (`VersionRouter`: in memory, from the registry at start and
after every `model.updated`). The adapters of every active and canary version are loaded at start
and on each `model.updated`; the version that answered is in the task result and the response, and
the version chosen is on the task before generation starts, so a failed task names it too.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import socket
import threading
import uuid

import structlog

from agents.graph import AgentQuery
from indexing.backends.base import rank_scores
from models.llm.base import ChatMessage
from schemas.events import ChatRequest, ChatResponse, ChatToken, ChatTurn, Citation, ModelUpdated, new_id, utcnow
from schemas.tables import TaskRecord
from schemas.task_result import TaskOutcome
from streams.brokers.base import RawMessage
from streams.consumer import EventConsumer, PermanentError, RetryPolicy, dead_letter
from streams.dead_letters import DeadLetterStore
from streams.executors import LEASE, LEASE_THREADS, run_in
from streams.lease_keeper import keep_lease
from streams.metrics import ACTIVE_MODEL, AGENT_WAITING, TASK_SECONDS, TASKS
from streams.publisher import Publisher
from streams.services import Services
from streams.supervision import BackgroundLoop
from streams.task_store import task_from_request
from streams.topics import TOPICS

GROUP = "ragloop.agent"
log = structlog.get_logger(__name__)


class PriorityGate:
    """One answer at a time per process (the engine decodes serially anyway); high priority first."""

    def __init__(self) -> None:
        self._busy = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def acquire(self, high: bool) -> None:
        if not self._busy and not self._waiters:
            self._busy = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (0 if high else 1, next(self._order), future))
        AGENT_WAITING.inc()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # we were handed the gate as we were cancelled
                self.release()
            raise
        finally:
            AGENT_WAITING.dec()

    def release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # ownership passes straight to the next waiter
                return
        self._busy = False


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    store, attempts, settings = services.stores.tasks, services.stores.attempts, services.settings
    versions = services.versions
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    gate = PriorityGate()

    async def claim(task_id: str) -> int | None:
        """The attempt number this agent now holds, or None when the task is not claimable."""
        return await asyncio.to_thread(attempts.claim, task_id, owner, settings.tasks.lease_s)

    async def answer(request: ChatRequest) -> None:
        await gate.acquire(high=request.options.priority == "high")
        try:
            if (attempt := await claim(request.task_id)) is not None:
                await _attempt(request, attempt)
                return
            task = await asyncio.to_thread(store.get_task, request.task_id)
            if task is None:  # published straight to the topic by some producer, not through the gateway
                await asyncio.to_thread(store.create_task, task_from_request(request))
                if (attempt := await claim(request.task_id)) is not None:
                    await _attempt(request, attempt)
            elif task.status == "succeeded" and task.result:  # redelivered after the effect: make sure the response went out
                response: ChatResponse = task.result.response
                await publisher.publish(response)
            # otherwise: cancelled, failed, or another live agent holds the lease
        finally:
            gate.release()

    async def _attempt(request: ChatRequest, attempt: int) -> None:
        try:
            outcome = await _run(request, attempt)
        except BaseException:
            await asyncio.to_thread(attempts.end, request.task_id, attempt, owner, "error")  # retried, or dead-lettered as failed
            raise
        await asyncio.to_thread(attempts.end, request.task_id, attempt, owner, outcome)

    async def _run(request: ChatRequest, attempt: int) -> str:
        """Answer and publish; returns how the attempt ended (succeeded, or stopped when cancelled or taken over)."""
        version = request.options.model_version or ""
        if not version:
            version = await asyncio.to_thread(versions.choose, request.tenant, request.conversation_id)
        # Recorded before anything can fail: a task that fails (an adapter that cannot load or raises) counts as an
        # error of the version that tried to answer it, so the canary judge can roll back a canary that only fails.
        await asyncio.to_thread(store.transition_task, request.task_id, from_states=("running",), to="running", held_by=owner,
                                model_version=version)
        try:
            adapter = await asyncio.to_thread(services.adapter_for, version)
        except LookupError as error:
            raise PermanentError(str(error)) from error
        turns = request.messages
        query = AgentQuery(question=turns[-1].content, history=[ChatMessage(role=t.role, content=t.content) for t in turns[:-1]],
                           tenant=request.tenant, principals=request.principals, retrieval=request.options.retrieval,
                           k=request.options.k or settings.retrieval.k,
                           adapter=adapter, max_new_tokens=request.options.max_new_tokens or settings.llm.max_new_tokens,
                           conversation_id=request.conversation_id, turn_id=request.task_id, images=request.images)
        stopped = threading.Event()
        tokens = TokenPump(publisher, request) if request.options.stream else None

        async def renew() -> bool:  # on its own pool: never queued behind fetches or store calls
            return await run_in(LEASE, LEASE_THREADS, store.renew_lease, request.task_id, owner, settings.tasks.lease_s)

        # Lost lease (cancelled, taken over, or lapsed with every renewal failing): the generating thread stops at its next token.
        lease = asyncio.create_task(keep_lease(renew, settings.tasks.lease_s, stopped, task_id=request.task_id))
        try:
            result = await asyncio.to_thread(services.agent.answer, query, on_delta=tokens.feed if tokens else None,
                                             should_stop=stopped.is_set)
        finally:
            lease.cancel()
            published = await tokens.close() if tokens else 0
        if stopped.is_set():
            log.info("task stopped while generating", task_id=request.task_id)
            return "stopped"
        response = ChatResponse(
            event_id=f"{request.task_id}.response", tenant=request.tenant, trace=request.trace, task_id=request.task_id,
            conversation_id=request.conversation_id, question=query.question, answer=result.answer, model_version=version,
            citations=[Citation(document_id=h.chunk.document_id, chunk_id=h.chunk.id, title=h.chunk.title, score=h.score, text=h.chunk.text,
                               image_url=served_image_url(h.chunk.metadata))
                       for h in rank_scores(result.hits)],  # raw scores would leak other tenants' term statistics
            prompt=[ChatTurn(role=m.role, content=m.content) for m in result.prompt],
            timings_ms=result.timings_ms, usage=result.usage, reference=request.reference,
        )
        outcome = TaskOutcome(response=response, cited=result.cited, route=result.route, evidence=result.evidence, token_events=published)
        if await asyncio.to_thread(attempts.finish, request.task_id, attempt, owner, to="succeeded", result=outcome, model_version=version, error=None):
            TASKS.labels("succeeded").inc()
            TASK_SECONDS.labels("succeeded").observe((utcnow() - request.occurred_at).total_seconds())
            await publisher.publish(response)
            return "succeeded"
        return "stopped"  # cancelled, or another agent took over, while this one finished

    async def failed(request: ChatRequest, reason: str) -> None:
        """The request was dead-lettered: fail its task, unless another live agent holds it now."""
        if await asyncio.to_thread(store.transition_task, request.task_id, from_states=("queued", "running"), to="failed",
                                   held_by=owner, error=reason):
            TASKS.labels("failed").inc()

    async def swap(update: ModelUpdated) -> None:
        """A version moved: drop the cached choices (the registry says what serves now, not the event's fields)
        and load what serves now, so the first request to a new canary or active version does not wait for it."""
        if update.model_family != settings.llm.model_family:
            return
        versions.forget(everything=True)
        ACTIVE_MODEL.labels(update.model_family, update.version).set(1 if update.state == "active" else 0)
        await asyncio.to_thread(preload_serving, services)
        log.info("model versions refreshed", version=update.version, state=update.state, version_tenant=update.version_tenant)

    return [
        EventConsumer(TOPICS["chat.requests"], GROUP, answer, on_dead_letter=failed),
        EventConsumer(TOPICS["chat.requests.high"], GROUP, answer, on_dead_letter=failed),
        EventConsumer(TOPICS["model.updated"], GROUP + ".swap", swap, broadcast=True),
    ]


SWEEPS_PER_LEASE = 10  # a dead agent's task is retried within ~1.1 leases (RAGLOOP_TASK_LEASE_S)


def preload_serving(services: Services) -> list[str]:
    """Load the adapters of the versions answering traffic now (each line's active and canary), the newest
    as many as the engine keeps; returns the versions loaded. One that cannot be loaded is logged and skipped:
    its requests fail on their own, the others' adapters still load."""
    loaded = []
    for version in services.versions.serving_versions()[-services.settings.llm.max_adapters:]:
        try:
            services.adapter_for(version)
        except Exception as error:  # noqa: BLE001 — one broken artifact must not keep the others unloaded
            log.error("could not load a serving version's adapter", version=version, error=repr(error))
            continue
        loaded.append(version)
    return loaded


def background(services: Services, publisher: Publisher) -> list[BackgroundLoop]:
    """Re-publish tasks whose agent died (lease expired); whichever agent claims first answers. A task
    whose lease lapsed `tasks.max_attempts` times is failed and its request dead-lettered instead."""
    store, attempts, tasks = services.stores.tasks, services.stores.attempts, services.settings.tasks
    letters = DeadLetterStore(services.stores.db)
    retry = RetryPolicy(services.settings.workers.max_retries, services.settings.workers.retry_backoff_s)

    async def requeue_expired() -> None:
        while True:
            await asyncio.sleep(max(tasks.lease_s / SWEEPS_PER_LEASE, 0.5))
            for task in await asyncio.to_thread(store.expired_leases):
                lapse = await asyncio.to_thread(attempts.lapse, task, tasks.lease_s, tasks.max_attempts)
                if lapse is None:  # another sweeper took this one
                    continue
                if lapse.action == "retry":
                    await publisher.publish(_retry_of(task))
                    log.warning("task lease expired; re-queued", task_id=task.id, attempt=task.attempts, agent=task.lease_owner)
                    continue
                reason = (f"agent died {lapse.lapses} times: its lease lapsed on each attempt (RAGLOOP_TASK_MAX_ATTEMPTS="
                          f"{tasks.max_attempts}); replay it once the cause (e.g. an agent out of memory) is fixed")
                await _dead_letter(task, reason, lapse.lapses)  # first: if it fails, the next sweep gives up again
                if await asyncio.to_thread(attempts.give_up, task, reason):
                    TASKS.labels("failed").inc()

    async def _dead_letter(task: TaskRecord, reason: str, lapses: int) -> None:
        request = ChatRequest.model_validate(task.request)
        topic = TOPICS["chat.requests.high" if request.options.priority == "high" else "chat.requests"]
        message = RawMessage(topic.name, request.key(), request.model_dump_json().encode())
        await dead_letter(publisher.broker, letters, topic, message, GROUP, reason, "LeaseExpired", lapses, retry)

    async def converge() -> None:
        """At start, and every RAGLOOP_LLM_SERVING_TTL_S after, load what the registry says serves now: an agent
        that missed a `model.updated` (or started after it) still converges on the active and canary versions."""
        last: list[str] = []
        while True:
            loaded = await asyncio.to_thread(preload_serving, services)
            if loaded != last:
                log.info("serving versions loaded", versions=loaded)
                last = loaded
            await asyncio.sleep(services.settings.llm.serving_ttl_s)

    return [requeue_expired, converge]


def _retry_of(task: TaskRecord) -> ChatRequest:
    request = ChatRequest.model_validate(task.request)
    return request.model_copy(update={"event_id": f"{task.id}.retry.{task.attempts}.{new_id()[:6]}"})


class TokenPump:
    """Carries deltas from the generating thread onto `chat.tokens`, in order, without blocking it."""

    def __init__(self, publisher: Publisher, request: ChatRequest) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._request = request
        self._publisher = publisher
        self._sent = 0
        self._task = asyncio.create_task(self._drain())

    def feed(self, delta: str) -> None:  # called from the generating thread
        self._loop.call_soon_threadsafe(self._queue.put_nowait, delta)

    async def _drain(self) -> None:
        while (delta := await self._queue.get()) is not None:
            await self._publisher.publish(ChatToken(event_id=f"{self._request.task_id}.token.{self._sent}", tenant=self._request.tenant,
                                                    task_id=self._request.task_id, conversation_id=self._request.conversation_id,
                                                    index=self._sent, delta=delta, trace=self._request.trace))
            self._sent += 1

    async def close(self) -> int:
        self._queue.put_nowait(None)
        await self._task
        return self._sent


def served_image_url(metadata: dict[str, object]) -> str | None:
    """The gateway URL of a cited image (ingested or generated); a document's own `image_url` metadata, which
    its uploader chose, is not passed on as one."""
    url = metadata.get("image_url")
    return url if isinstance(url, str) and url.startswith("/v1/images/") else None
