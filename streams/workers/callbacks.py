"""Callbacks role: tells whoever asked that a chat task finished, and records whether they heard.

A task with an `http(s)://` `callback_url` receives the finished task (the JSON of
`GET /v1/tasks/{id}`) as a POST signed exactly like inbound webhooks (`streams/signing.py`), with
`X-Ragloop-Delivery: <task_id>` for the receiver to de-duplicate on. A task that came from Slack
carries `slack://<channel>/<thread_ts>?sig=…` instead and is answered in its thread through
`chat.postMessage`. Succeeded, failed and cancelled tasks all get their callback; the task row
records `callback_status` (pending → delivering → delivered | failed) and `callback_attempts`.

Why this shape:
- `chat.responses` starts a delivery at once; a sweep of the store finds what no event announces
  (failed and cancelled tasks) and what a dead sender left behind (its lease lapsed). A
  compare-and-set claim makes the two paths, and any number of callback workers, deliver once.
- Every delivery is its own asyncio task and only the network attempt takes one of a bounded
  number of slots (never the backoff sleep), so one slow or failing receiver delays no other.
- The SSRF guard (`indexing/url_guard.py`) checks every address a callback host resolves to, and
  the POST goes to exactly those addresses with redirects and proxies off, so a callback URL cannot
  make the server call its own network (`RAGLOOP_ALLOW_PRIVATE_CALLBACKS=1` lifts that for tests
  and private deployments).
- A `slack://` address carries an HMAC tag minted by the Slack adapter with the bot token, so an
  API caller cannot make the bot post into arbitrary channels by naming one as its callback.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from weakref import WeakKeyDictionary

import httpx
import structlog

from indexing.url_guard import FetchError, ForbiddenURLError, resolve_allowed
from schemas.events import ChatResponse
from schemas.settings import Settings
from schemas.tables import TaskRecord
from streams.consumer import EventConsumer
from streams.gateway.api_models import TaskOut
from streams.publisher import Publisher
from streams.services import Services
from streams.signing import DELIVERY_HEADER, RAGLOOP, keyed_tag
from streams.store import Store
from streams.task_attempts import TaskAttempts
from streams.topics import TOPICS

GROUP = "ragloop.callbacks"
SWEEP_INTERVAL_S = 1.0
MAX_CONCURRENT_ATTEMPTS = 64
USER_AGENT = "ragloop-callbacks/0.1"
# Slack errors that no retry can fix; anything else (ratelimited, internal_error, network) is retried.
SLACK_PERMANENT_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed",
                                    "account_inactive", "token_revoked", "missing_scope", "msg_too_long", "no_text"})
log = structlog.get_logger(__name__)


# --- Slack reply addresses -----------------------------------------------------------------------

def slack_reply_url(settings: Settings, channel: str, thread_ts: str) -> str:
    """The `callback_url` of a task asked from Slack: reply into `channel`, in the thread `thread_ts`."""
    return f"slack://{quote(channel, safe='')}/{quote(thread_ts, safe='')}?sig={_slack_tag(settings, channel, thread_ts)}"


def _slack_tag(settings: Settings, channel: str, thread_ts: str) -> str:
    token = settings.slack.bot_token.get_secret_value() if settings.slack.bot_token else ""
    return keyed_tag(token, f"slack-reply:{channel}/{thread_ts}")


def _slack_target(settings: Settings, url: str) -> tuple[str, str]:
    """(channel, thread_ts) of a `slack://` address; ValueError unless the Slack adapter minted it."""
    parts = urlsplit(url)
    channel, thread_ts = unquote(parts.netloc), unquote(parts.path.lstrip("/"))
    tag = parse_qs(parts.query).get("sig", [""])[0]
    if not channel or not thread_ts or not hmac.compare_digest(tag, _slack_tag(settings, channel, thread_ts)):
        raise ValueError(f"refusing {url!r}: slack:// callbacks are only valid as minted by the Slack adapter")
    return channel, thread_ts


def slack_text(task: TaskRecord) -> str:
    """What the bot says in the thread: the answer and its sources, or why there is none."""
    if task.status == "succeeded" and task.result:
        text = _escape(task.result.get("answer", ""))
        titles = [c.get("title") or c.get("document_id", "") for c in task.result.get("citations", [])]
        if titles:
            text += "\n\nSources: " + ", ".join(f"[{n}] {_escape(t)}" for n, t in enumerate(titles, start=1))
        return text
    if task.status == "cancelled":
        return "This question was cancelled before it was answered."
    return f":warning: Sorry, I could not answer this: {_escape(task.error or 'unknown error')}"


def _escape(text: str) -> str:
    # Slack reads &, < and > as markup (links, mentions); everything else is literal.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- delivery ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retry: bool
    detail: str


class CallbackSender:
    """Delivers callbacks concurrently, each claimed in the store, retried with exponential backoff."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings, self.store, self.attempts = settings, store, TaskAttempts(store)
        self.owner = f"callbacks:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._running: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_ATTEMPTS)
        self._warned_unsigned = False

    @property
    def lease_s(self) -> float:
        """Long enough for every attempt and backoff of one callback, so only a dead sender's lease lapses."""
        s = self.settings
        return s.callbacks.max_attempts * 2 * s.callbacks.timeout_s + s.callbacks.backoff_s * 2 ** (s.callbacks.max_attempts - 1) + 30

    def schedule(self, task_id: str) -> asyncio.Task[None]:
        """Start delivering a task's callback (or return the delivery already under way); the
        returned task ends when this sender is done with it: delivered, given up, or not its to send."""
        if (running := self._running.get(task_id)) is not None:
            return running
        delivery = asyncio.create_task(self._deliver(task_id), name=f"callback:{task_id}")
        self._running[task_id] = delivery
        delivery.add_done_callback(lambda _: self._running.pop(task_id, None))
        return delivery

    async def sweep(self) -> None:
        for task in await asyncio.to_thread(self.store.callbacks_due):
            self.schedule(task.id)

    async def close(self) -> None:
        running = list(self._running.values())
        for delivery in running:
            delivery.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def _deliver(self, task_id: str) -> None:
        if not await asyncio.to_thread(self.store.claim_callback, task_id, self.owner, self.lease_s):
            return  # no callback, already delivered, or another sender holds it
        while True:
            task = await asyncio.to_thread(self.store.get_task, task_id)
            assert task is not None and task.callback_url
            attempt = task.callback_attempts + 1
            async with self._slots:
                try:
                    outcome = await self._attempt(task, attempt)
                except Exception as error:  # noqa: BLE001 — a bug in one delivery must not end the role
                    outcome = Outcome(False, True, f"{type(error).__name__}: {error}")
            last = outcome.delivered or not outcome.retry or attempt >= self.settings.callbacks.max_attempts
            status = "delivered" if outcome.delivered else "failed" if last else "delivering"
            held = await asyncio.to_thread(self.store.record_callback_attempt, task_id, self.owner, status=status)
            (log.info if outcome.delivered else log.warning)("callback attempt", task_id=task_id, attempt=attempt,
                                                             status=status, detail=outcome.detail)
            if last or not held:
                return
            await asyncio.sleep(self.settings.callbacks.backoff_s * 2 ** (attempt - 1))

    async def _attempt(self, task: TaskRecord, attempt: int) -> Outcome:
        url = task.callback_url or ""
        if url.startswith("slack://"):
            return await self._post_to_slack(task, url)
        body = TaskOut.of(task, await asyncio.to_thread(self.attempts.of, task.id)).model_dump_json().encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, DELIVERY_HEADER: task.id,
                   "X-Ragloop-Attempt": str(attempt)}
        if self.settings.security.webhook_secret is not None:
            headers |= RAGLOOP.sign(self.settings.security.webhook_secret.get_secret_value(), body)
        elif not self._warned_unsigned:  # once, and only when a callback is really sent
            self._warned_unsigned = True
            log.warning("RAGLOOP_WEBHOOK_SECRET is not set: callbacks are sent unsigned")
        return await self._post_guarded(url, body, headers)

    async def _post_guarded(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """POST to the addresses the SSRF guard checked (not to whatever the name resolves to next)."""
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as error:
            return Outcome(False, False, f"callback_url {url!r} is not a valid URL ({error})")
        if target.scheme not in ("http", "https") or not target.raw_host:
            return Outcome(False, False, f"callback_url {url!r} must be an http:// or https:// URL with a host")
        host = target.raw_host.decode("ascii")
        port = target.port or (443 if target.scheme == "https" else 80)
        timeout = self.settings.callbacks.timeout_s
        try:
            addresses = await asyncio.to_thread(resolve_allowed, host, port, allow_private=self.settings.callbacks.allow_private,
                                                timeout_s=timeout)
        except ForbiddenURLError as error:
            return Outcome(False, False, f"{error} (set RAGLOOP_ALLOW_PRIVATE_CALLBACKS=1 to allow private callback hosts)")
        except FetchError as error:
            return Outcome(False, True, str(error))
        last = "no address"
        async with httpx.AsyncClient(trust_env=False, follow_redirects=False, timeout=timeout) as client:
            for ip in addresses:
                try:
                    response = await client.post(target.copy_with(host=str(ip)), content=body,
                                                 headers={**headers, "Host": target.netloc.decode("ascii")},
                                                 extensions={"sni_hostname": host})
                except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                    last = f"cannot connect to {ip}: {error!r}"
                    continue  # the next checked address
                except httpx.HTTPError as error:
                    return Outcome(False, True, f"{type(error).__name__}: {error}")
                return Outcome(response.is_success, True, f"HTTP {response.status_code}")
        return Outcome(False, True, last)

    async def _post_to_slack(self, task: TaskRecord, url: str) -> Outcome:
        if self.settings.slack.bot_token is None:
            return Outcome(False, False, "RAGLOOP_SLACK_BOT_TOKEN is not set: cannot reply on Slack")
        try:
            channel, thread_ts = _slack_target(self.settings, url)
        except ValueError as error:
            return Outcome(False, False, str(error))
        endpoint = self.settings.slack.api_url.rstrip("/") + "/chat.postMessage"
        headers = {"Authorization": f"Bearer {self.settings.slack.bot_token.get_secret_value()}", "User-Agent": USER_AGENT}
        payload = {"channel": channel, "text": slack_text(task), "thread_ts": thread_ts}
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=self.settings.callbacks.timeout_s) as client:
                response = await client.post(endpoint, json=payload, headers=headers)
        except httpx.HTTPError as error:
            return Outcome(False, True, f"chat.postMessage: {type(error).__name__}: {error}")
        reply: dict[str, Any] = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.is_success and reply.get("ok"):
            return Outcome(True, False, f"posted to Slack channel {channel}")
        error_name = str(reply.get("error", f"HTTP {response.status_code}"))
        return Outcome(False, error_name not in SLACK_PERMANENT_ERRORS, f"chat.postMessage: {error_name}")


# --- role wiring ---------------------------------------------------------------------------------

_senders: WeakKeyDictionary[Services, CallbackSender] = WeakKeyDictionary()


def _sender(services: Services) -> CallbackSender:
    """One sender per process, shared by the consumer (which starts deliveries) and the sweep (which owns its lifetime)."""
    if services not in _senders:
        _senders[services] = CallbackSender(services.settings, services.store)
    return _senders[services]


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    sender = _sender(services)

    async def on_response(response: ChatResponse) -> None:
        sender.schedule(response.task_id)  # returns at once: delivery runs beside the consumer

    return [EventConsumer(TOPICS["chat.responses"], GROUP, on_response)]


def background(services: Services, publisher: Publisher) -> list[Callable[[], Awaitable[None]]]:
    sender = _sender(services)

    async def sweep_callbacks() -> None:
        try:
            while True:
                try:
                    await sender.sweep()
                except Exception as error:  # noqa: BLE001 — a database hiccup must not stop callbacks for good
                    log.warning("callback sweep failed", error=repr(error))
                await asyncio.sleep(SWEEP_INTERVAL_S)
        finally:
            await sender.close()

    return [sweep_callbacks]
