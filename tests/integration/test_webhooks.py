"""Webhooks both ways, over real HTTP: signed inbound webhooks and Slack events become chat tasks;
finished tasks are posted back signed, retried with backoff, and recorded on the task, by the
callbacks role in-process or by `ragloop worker callbacks` as a process of its own."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from schemas.events import ChatRequest, ChatTurn, utcnow
from schemas.settings import Settings
from schemas.tables import CallbackDeliveryRecord, TaskRecord
from streams.brokers.kafka import create_topics
from streams.callbacks.sender import CallbackSender
from streams.callbacks.slack import slack_text
from streams.gateway.app import create_app
from streams.gateway.routes.webhooks import parse_webhook_keys
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime
from streams.signing import RAGLOOP, RAGLOOP_V2, SLACK, SignatureError
from streams.stores import Stores
from streams.task_store import TaskStore, task_from_request
from streams.topics import all_topic_names
from tests.e2e.conftest import processes
from tests.support import wait_for

SECRET = "whsec-test"  # the callback secret: every callback receiver holds it
KEY_ID, KEY_SECRET = "crm", "whkey-test"  # an inbound webhook key of the default tenant
ACME_SECRET = "whkey-acme"  # key `acme`: tenant acme, asking as alice
WEBHOOK_KEYS = f"{KEY_ID}={KEY_SECRET}=default, acme={ACME_SECRET}=acme|alice"
SLACK_SECRET = "slack-signing-test"
BOT_TOKEN = "xoxb-test-token"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """A local stand-in for the outside world: a callback receiver (whose first `fail_first` requests
    fail with 500), a receiver that holds each request until `release` is set, and Slack's
    `chat.postMessage`. Requests are recorded as they arrive."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.release = threading.Event()
        self.received: list[Received] = []

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            self.received.append(Received("/hook", dict(request.headers), await request.body()))
            return Response(status_code=500 if len(self.at("/hook")) <= self.fail_first else 204)

        async def held(request: Request) -> Response:
            self.received.append(Received("/held", dict(request.headers), await request.body()))
            await asyncio.to_thread(self.release.wait, 300)
            return Response(status_code=204)

        async def post_message(request: Request) -> Response:
            self.received.append(Received("/api/chat.postMessage", dict(request.headers), await request.body()))
            return JSONResponse({"ok": True, "channel": "C1", "ts": "1718000000.000200"})

        return Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/held", held, methods=["POST"]),
                                 Route("/api/chat.postMessage", post_message, methods=["POST"])])


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    fake = Receiver()
    with serve_in_thread(fake.app()) as url:
        try:
            yield fake, url
        finally:
            fake.release.set()  # a held request must not keep the server from stopping


@pytest.fixture
def hook_settings(settings: Settings, receiver: tuple[Receiver, str]) -> Settings:
    return settings.override(max_new_tokens=8, callback_secret=SecretStr(SECRET), webhook_keys=SecretStr(WEBHOOK_KEYS),
                             allow_private_callbacks=True, callback_backoff_s=0.2,
                             slack_signing_secret=SecretStr(SLACK_SECRET), slack_bot_token=SecretStr(BOT_TOKEN), slack_api_url=f"{receiver[1]}/api")


@contextmanager
def gateway(settings: Settings, roles: tuple[str, ...] = ()) -> Iterator[tuple[httpx.Client, Runtime]]:
    runtime = Runtime(settings, list(roles))
    with serve_in_thread(create_app(runtime)) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client, runtime


def signed_post(client: httpx.Client, path: str, payload: dict[str, Any], *, scheme: Any = RAGLOOP_V2, secret: str = KEY_SECRET,
                key_id: str = KEY_ID, delivery: str | None = None, now: float | None = None, headers: dict[str, str] | None = None,
                tamper: Callable[[bytes], bytes] | None = None) -> httpx.Response:
    body = json.dumps(payload).encode()
    signed = scheme.sign(secret, body, now=now, delivery=delivery) | {"X-Ragloop-Key-Id": key_id}
    return client.post(path, content=tamper(body) if tamper else body, headers={"Content-Type": "application/json", **signed, **(headers or {})})


def callback(stores: Stores, task_id: str, status: str, *, timeout: float = 120) -> CallbackDeliveryRecord:
    """Wait until the task's callback is recorded with `status`; its delivery row then."""
    def reached() -> CallbackDeliveryRecord | None:
        row = stores.callbacks.get(task_id)
        return row if row is not None and row.status == status else None

    return wait_for(reached, timeout=timeout, what=f"callback of {task_id} {status}")


def all_tasks(runtime: Runtime) -> list[TaskRecord]:
    with runtime.stores.db.session() as s:
        return list(s.exec(select(TaskRecord)).all())


def finished_task(store: TaskStore, callback_url: str, *, status: str = "failed", error: str | None = "the agent gave up") -> str:
    """A task as the agent leaves it, straight in the store: what the callbacks role is asked to report."""
    row = task_from_request(ChatRequest(messages=[ChatTurn(role="user", content="Why is the sky blue?")], callback_url=callback_url))
    row.status, row.error, row.attempts, row.finished_at = status, error, 4, utcnow()
    store.create_task(row)
    return row.id


# --- inbound: the generic signed webhook -----------------------------------------------------------

@pytest.mark.slow  # the agent generates the answer with the real model
@pytest.mark.parametrize("broker", ["embedded", "kafka"])
def test_signed_webhook_becomes_a_task_whose_answer_is_posted_back_signed(hook_settings: Settings, receiver: tuple[Receiver, str],
                                                                         broker: str, request: pytest.FixtureRequest, unique: str) -> None:
    fake, url = receiver
    if broker == "kafka":
        # Cluster mode turns API keys on: the webhook needs none (it is signed), reading the task does.
        hook_settings = hook_settings.override(broker_url=request.getfixturevalue("kafka_url"), topic_prefix=f"wh{unique}.",
                                               api_keys=SecretStr("key-1=default"))
    with gateway(hook_settings, ("agent", "callbacks")) as (client, runtime):
        reply = signed_post(client, "/v1/webhooks/generic", {"text": "What is the capital of France?", "callback_url": f"{url}/hook"},
                            delivery="delivery-1")
        assert reply.status_code == 202, reply.text
        task_id = reply.json()["task_id"]
        delivery = wait_for(lambda: fake.at("/hook"), timeout=120, what="the callback")[0]
        task = client.get(f"/v1/tasks/{task_id}", headers={"X-API-Key": "key-1"}).json()
        row = callback(runtime.stores, task_id, "delivered")
    RAGLOOP.verify(SECRET, delivery.body, delivery.headers)  # the receiver can check it came from us
    assert json.loads(delivery.body) == task and task["status"] == "succeeded" and task["result"]["answer"]
    assert delivery.headers["x-ragloop-delivery"] == task_id and delivery.headers["content-type"] == "application/json"
    assert row.attempts == 1


def test_repeated_webhook_delivery_returns_the_same_task(hook_settings: Settings) -> None:
    with gateway(hook_settings) as (client, runtime):
        first = signed_post(client, "/v1/webhooks/generic", {"text": "hello"}, delivery="d-42")
        again = signed_post(client, "/v1/webhooks/generic", {"text": "hello"}, delivery="d-42")
        tasks = all_tasks(runtime)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["task_id"] == again.json()["task_id"] and len(tasks) == 1


def test_webhook_accepts_a_whole_conversation_and_acts_as_its_keys_tenant_and_principals(hook_settings: Settings) -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "And Paris?"}]
    with gateway(hook_settings) as (client, runtime):
        named = signed_post(client, "/v1/webhooks/generic", {"messages": messages, "tenant": "acme", "conversation_id": "conv-7",
                                                             "principals": ["alice"]}, key_id="acme", secret=ACME_SECRET)
        implied = signed_post(client, "/v1/webhooks/generic", {"text": "hello"}, key_id="acme", secret=ACME_SECRET)
        task, other = (runtime.stores.tasks.get_task(r.json()["task_id"]) for r in (named, implied))
    assert (named.status_code, implied.status_code) == (202, 202) and task is not None and other is not None
    assert (task.tenant, task.conversation_id, task.request["messages"]) == ("acme", "conv-7", messages)
    assert task.request["principals"] == other.request["principals"] == ["alice"] and other.tenant == "acme"


@pytest.mark.parametrize("key_id, secret, payload", [
    ("acme", ACME_SECRET, {"tenant": "globex"}), ("acme", ACME_SECRET, {"principals": ["alice", "group:hr"]}),
    ("acme", ACME_SECRET, {"principals": []}), (KEY_ID, KEY_SECRET, {"tenant": "acme"}), (KEY_ID, KEY_SECRET, {"principals": ["alice"]}),
], ids=["other-tenant", "more-principals", "fewer-principals", "default-key-as-acme", "default-key-as-alice"])
def test_a_webhook_key_cannot_ask_for_another_tenant_or_other_principals(hook_settings: Settings, key_id: str, secret: str,
                                                                          payload: dict[str, Any]) -> None:
    with gateway(hook_settings) as (client, runtime):
        reply = signed_post(client, "/v1/webhooks/generic", {"text": "hello", **payload}, key_id=key_id, secret=secret)
        assert reply.status_code == 403 and f"webhook key {key_id!r}" in reply.json()["detail"], reply.text
        assert all_tasks(runtime) == []


@pytest.mark.parametrize("setting", ["webhook_secret", "callback_secret"])
def test_a_callback_receiver_cannot_create_an_inbound_task(hook_settings: Settings, setting: str) -> None:
    """A receiver verifies callbacks with the callback secret (RAGLOOP_CALLBACK_SECRET, or the legacy
    RAGLOOP_WEBHOOK_SECRET that once verified inbound webhooks too); it must not be able to sign questions."""
    configured = hook_settings.override(**{setting: SecretStr(SECRET)}, **{"callback_secret" if setting == "webhook_secret" else "webhook_secret": None})
    with gateway(configured) as (client, runtime):
        old_style = signed_post(client, "/v1/webhooks/generic", {"text": "hi", "tenant": "acme", "principals": ["alice"]},
                                scheme=RAGLOOP, secret=SECRET)
        as_key = signed_post(client, "/v1/webhooks/generic", {"text": "hi"}, secret=SECRET)
        as_acme = signed_post(client, "/v1/webhooks/generic", {"text": "hi"}, key_id="acme", secret=SECRET)
        assert [r.status_code for r in (old_style, as_key, as_acme)] == [401, 401, 401]
        assert all_tasks(runtime) == []
    with gateway(configured.override(webhook_keys=None)) as (client, runtime):
        reply = signed_post(client, "/v1/webhooks/generic", {"text": "hi"}, scheme=RAGLOOP, secret=SECRET)
        assert reply.status_code == 401 and "RAGLOOP_WEBHOOK_KEYS" in reply.json()["detail"] and all_tasks(runtime) == []


def test_a_replay_under_a_new_delivery_id_makes_no_second_task(hook_settings: Settings) -> None:
    body = b'{"text": "hello"}'
    signed = RAGLOOP_V2.sign(KEY_SECRET, body, delivery="d-1") | {"X-Ragloop-Key-Id": KEY_ID, "Content-Type": "application/json"}
    unnamed = RAGLOOP_V2.sign(KEY_SECRET, body) | {"X-Ragloop-Key-Id": KEY_ID, "Content-Type": "application/json"}
    with gateway(hook_settings) as (client, runtime):
        first = client.post("/v1/webhooks/generic", content=body, headers=signed)
        replayed = client.post("/v1/webhooks/generic", content=body, headers=signed | {"X-Ragloop-Delivery": "d-2"})
        stripped = client.post("/v1/webhooks/generic", content=body, headers={k: v for k, v in signed.items() if k != "X-Ragloop-Delivery"})
        # Sent without a delivery id, the same signed request replayed finds the task it made.
        once, twice = (client.post("/v1/webhooks/generic", content=body, headers=unnamed) for _ in range(2))
        tasks = all_tasks(runtime)
    assert (first.status_code, replayed.status_code, stripped.status_code) == (202, 401, 401)
    assert "X-Ragloop-Delivery" in replayed.json()["detail"]
    assert (once.status_code, twice.status_code) == (202, 200) and once.json()["task_id"] == twice.json()["task_id"]
    assert len(tasks) == 2


def test_webhook_keys_are_parsed_with_their_grants_and_must_not_be_the_callback_secret(settings: Settings) -> None:
    keys = parse_webhook_keys(settings.override(webhook_keys=SecretStr(WEBHOOK_KEYS)))
    assert {k: (v.secret, v.grant.tenant, v.grant.principals) for k, v in keys.items()} == {
        KEY_ID: (KEY_SECRET, "default", ()), "acme": (ACME_SECRET, "acme", ("alice",))}
    with pytest.raises(ValueError, match="RAGLOOP_WEBHOOK_KEYS entry 2 is not `key_id=secret=tenant`"):
        parse_webhook_keys(settings.override(webhook_keys=SecretStr("a=s=t,b=tenant-only")))
    for setting in ("callback_secret", "webhook_secret"):
        with pytest.raises(ValueError, match="key 'a' has the callback secret"):
            parse_webhook_keys(settings.override(webhook_keys=SecretStr("a=same=t"), **{setting: SecretStr("same")}))


def test_tampered_body_is_401_and_nothing_is_enqueued(hook_settings: Settings) -> None:
    with gateway(hook_settings) as (client, runtime):
        reply = signed_post(client, "/v1/webhooks/generic", {"text": "hello"}, tamper=lambda b: b.replace(b"hello", b"HELLO"))
        assert reply.status_code == 401 and "does not match" in reply.json()["detail"]
        assert all_tasks(runtime) == [] and not runtime.broker.retained["chat.requests"]  # type: ignore[attr-defined]


def test_stale_timestamp_is_401_and_nothing_is_enqueued(hook_settings: Settings) -> None:
    with gateway(hook_settings) as (client, runtime):
        reply = signed_post(client, "/v1/webhooks/generic", {"text": "hello"}, now=time.time() - 301)
        assert reply.status_code == 401 and "replay window" in reply.json()["detail"]
        assert all_tasks(runtime) == [] and not runtime.broker.retained["chat.requests"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("tolerance_s, age_s, accepted", [(30, 60, False), (30, 20, True), (600, 400, True)],
                         ids=["older-than-30s-refused", "within-30s-accepted", "within-600s-accepted"])
def test_replay_window_is_ragloop_webhook_tolerance_s(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                    tolerance_s: int, age_s: int, accepted: bool) -> None:
    """Each age is on the other side of the 300 s default, so only the configured window decides."""
    monkeypatch.setenv("RAGLOOP_WEBHOOK_TOLERANCE_S", str(tolerance_s))
    configured = Settings(home=settings.home, broker={"url": "memory://"}, security={"webhook_keys": SecretStr(WEBHOOK_KEYS)})
    with gateway(configured) as (client, runtime):
        reply = signed_post(client, "/v1/webhooks/generic", {"text": "hello"}, now=time.time() - age_s)
        tasks = all_tasks(runtime)
    if accepted:
        assert reply.status_code == 202 and [t.id for t in tasks] == [reply.json()["task_id"]], reply.text
    else:
        assert reply.status_code == 401 and f"outside the {tolerance_s} s replay window" in reply.json()["detail"] and tasks == []


def test_unsigned_webhook_is_401(hook_settings: Settings) -> None:
    with gateway(hook_settings) as (client, runtime):
        reply = client.post("/v1/webhooks/generic", json={"text": "hello"})
        assert reply.status_code == 401 and "missing" in reply.json()["detail"]
        assert all_tasks(runtime) == []


def test_webhook_is_refused_when_the_server_has_no_secret(settings: Settings) -> None:
    with gateway(settings) as (client, runtime):
        reply = signed_post(client, "/v1/webhooks/generic", {"text": "hello"})
        assert reply.status_code == 401 and "RAGLOOP_WEBHOOK_KEYS" in reply.json()["detail"]
        assert all_tasks(runtime) == []


@pytest.mark.parametrize("payload, field", [({}, "exactly one"), ({"text": "a", "messages": [{"role": "user", "content": "b"}]}, "exactly one"),
                                            ({"text": "hi", "callback_url": "file:///etc/passwd"}, "callback_url")])
def test_signed_but_malformed_webhook_is_422_naming_the_problem(hook_settings: Settings, payload: dict[str, Any], field: str) -> None:
    with gateway(hook_settings) as (client, runtime):
        reply = signed_post(client, "/v1/webhooks/generic", payload)
        assert reply.status_code == 422 and field in reply.json()["error"], reply.text
        assert all_tasks(runtime) == []


# --- inbound: Slack Events API -----------------------------------------------------------------------

def slack_event(text: str, *, ts: str = "1718000000.000100", kind: str = "message", channel: str = "C1", **extra: Any) -> dict[str, Any]:
    return {"type": "event_callback", "team_id": "T1", "event_id": f"Ev{ts}{kind}", "event_time": 1718000000,
            "event": {"type": kind, "channel": channel, "user": "U1", "text": text, "ts": ts, **extra}}


def test_slack_url_verification_echoes_the_challenge(hook_settings: Settings) -> None:
    with gateway(hook_settings) as (client, _):
        reply = signed_post(client, "/v1/webhooks/slack", {"type": "url_verification", "token": "t", "challenge": "3eZbrw1aBm2r"},
                            scheme=SLACK, secret=SLACK_SECRET)
    assert reply.status_code == 200 and reply.json() == {"challenge": "3eZbrw1aBm2r"}


def test_slack_request_with_a_bad_signature_is_401(hook_settings: Settings) -> None:
    with gateway(hook_settings) as (client, runtime):
        reply = signed_post(client, "/v1/webhooks/slack", slack_event("hi"), scheme=SLACK, secret="not-the-secret")
        stale = signed_post(client, "/v1/webhooks/slack", slack_event("hi"), scheme=SLACK, secret=SLACK_SECRET, now=time.time() - 400)
        assert (reply.status_code, stale.status_code) == (401, 401) and all_tasks(runtime) == []


@pytest.mark.parametrize("tolerance_s, age_s, accepted", [(30, 60, False), (600, 400, True)], ids=["older-than-30s-refused", "within-600s-accepted"])
def test_slack_replay_window_is_ragloop_webhook_tolerance_s(hook_settings: Settings, tolerance_s: int, age_s: int, accepted: bool) -> None:
    with gateway(hook_settings.override(webhook_tolerance_s=tolerance_s)) as (client, runtime):
        reply = signed_post(client, "/v1/webhooks/slack", slack_event("<@UBOT> hi"), scheme=SLACK, secret=SLACK_SECRET, now=time.time() - age_s)
        assert (reply.status_code == 200 and len(all_tasks(runtime)) == 1) if accepted else (reply.status_code == 401 and all_tasks(runtime) == [])


@pytest.mark.slow  # the agent generates the answer with the real model
@pytest.mark.parametrize("event", [
    # `app_mention`: the bot is mentioned in a channel.
    slack_event("<@UBOT> What is the capital of France?", kind="app_mention"),
    # `message.im`: a direct message to the bot; Slack sends it as a `message` in a `D…` channel, without a mention.
    slack_event("What is the capital of France?", channel="D1", channel_type="im"),
], ids=["app_mention", "message.im"])
def test_slack_question_is_answered_in_its_thread_through_chat_post_message(hook_settings: Settings, receiver: tuple[Receiver, str],
                                                                           event: dict[str, Any]) -> None:
    fake, _ = receiver
    channel = event["event"]["channel"]
    with gateway(hook_settings, ("agent", "callbacks")) as (client, runtime):
        reply = signed_post(client, "/v1/webhooks/slack", event, scheme=SLACK, secret=SLACK_SECRET)
        assert reply.status_code == 200 and "task_id" in reply.json(), reply.text  # taken as a question, not ignored
        posted = wait_for(lambda: fake.at("/api/chat.postMessage"), timeout=120, what="the Slack reply")[0]
        callback(runtime.stores, reply.json()["task_id"], "delivered")
        task = runtime.stores.tasks.get_task(reply.json()["task_id"])
    message = json.loads(posted.body)
    assert posted.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    assert message == {"channel": channel, "thread_ts": "1718000000.000100", "text": slack_text(task)}
    assert task.status == "succeeded" and task.request["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
    assert task.tenant == "default" and task.conversation_id == f"slack:{channel}:1718000000.000100"


def test_slack_retries_and_the_mention_twin_of_a_message_make_one_task(hook_settings: Settings) -> None:
    with gateway(hook_settings) as (client, runtime):
        first = signed_post(client, "/v1/webhooks/slack", slack_event("<@UBOT> hi"), scheme=SLACK, secret=SLACK_SECRET)
        retry = signed_post(client, "/v1/webhooks/slack", slack_event("<@UBOT> hi"), scheme=SLACK, secret=SLACK_SECRET,
                            headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
        twin = signed_post(client, "/v1/webhooks/slack", slack_event("<@UBOT> hi", kind="app_mention"), scheme=SLACK, secret=SLACK_SECRET)
        tasks = all_tasks(runtime)
    assert {first.json()["task_id"], retry.json()["task_id"], twin.json()["task_id"]} == {tasks[0].id} and len(tasks) == 1


def test_slack_reply_in_a_thread_stays_in_that_thread(hook_settings: Settings) -> None:
    with gateway(hook_settings) as (client, runtime):
        reply = signed_post(client, "/v1/webhooks/slack", slack_event("and then?", ts="1718000099.000300", thread_ts="1718000000.000100"),
                            scheme=SLACK, secret=SLACK_SECRET)
        task = runtime.stores.tasks.get_task(reply.json()["task_id"])
    assert task is not None and task.conversation_id == "slack:C1:1718000000.000100"
    assert task.callback_url and task.callback_url.startswith("slack://C1/1718000000.000100?sig=")


@pytest.mark.parametrize("event", [slack_event("I am a bot", bot_id="B1"), slack_event("edited", subtype="message_changed"),
                                   slack_event("<@UBOT>"), {"type": "event_callback", "event": {"type": "reaction_added"}}])
def test_slack_events_that_are_not_questions_are_acknowledged_and_ignored(hook_settings: Settings, event: dict[str, Any]) -> None:
    with gateway(hook_settings) as (client, runtime):
        reply = signed_post(client, "/v1/webhooks/slack", event, scheme=SLACK, secret=SLACK_SECRET)
        assert reply.status_code == 200 and "ignored" in reply.json() and all_tasks(runtime) == []


# --- outbound: callbacks -------------------------------------------------------------------------------

def test_callback_is_retried_with_backoff_until_the_receiver_accepts_and_recorded_delivered(
        hook_settings: Settings, receiver: tuple[Receiver, str]) -> None:
    fake, url = receiver
    fake.fail_first = 2
    with gateway(hook_settings, ("callbacks",)) as (_, runtime):
        task_id = finished_task(runtime.stores.tasks, f"{url}/hook")
        row = callback(runtime.stores, task_id, "delivered")
    deliveries = fake.at("/hook")
    assert (row.attempts, len(deliveries)) == (3, 3)
    assert [d.headers["x-ragloop-attempt"] for d in deliveries] == ["1", "2", "3"]
    assert {d.headers["x-ragloop-delivery"] for d in deliveries} == {task_id}
    gaps = [b.at - a.at for a, b in itertools.pairwise(deliveries)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # exponential backoff from callback_backoff_s
    for delivery in deliveries:
        RAGLOOP.verify(SECRET, delivery.body, delivery.headers)


def test_failed_task_gets_a_callback_with_its_error(hook_settings: Settings, receiver: tuple[Receiver, str]) -> None:
    fake, url = receiver
    with gateway(hook_settings, ("callbacks",)) as (_, runtime):
        task_id = finished_task(runtime.stores.tasks, f"{url}/hook", error="RuntimeError: the engine crashed")
        callback(runtime.stores, task_id, "delivered")
    body = json.loads(fake.at("/hook")[0].body)
    assert (body["task_id"], body["status"], body["error"], body["result"]) == (task_id, "failed", "RuntimeError: the engine crashed", None)


async def test_callback_that_never_succeeds_is_recorded_failed_after_bounded_attempts(hook_settings: Settings,
                                                                                        receiver: tuple[Receiver, str]) -> None:
    fake, url = receiver
    fake.fail_first = 100
    settings = hook_settings.override(callback_max_attempts=3, callback_backoff_s=0.05)
    stores = Stores.from_settings(settings)
    task_id = finished_task(stores.tasks, f"{url}/hook")
    sender = CallbackSender(settings, stores)
    await sender.schedule(task_id)  # the delivery ends: nothing is left to send a fourth attempt
    row = stores.callbacks.get(task_id)
    assert row is not None and (row.status, row.attempts) == ("failed", 3)
    assert len(fake.at("/hook")) == 3
    assert task_id not in {t.id for t in stores.callbacks.callbacks_due()}  # and no sweep takes it up again


def test_one_slow_receiver_does_not_delay_another(hook_settings: Settings, receiver: tuple[Receiver, str]) -> None:
    fake, url = receiver
    with gateway(hook_settings.override(callback_timeout_s=300), ("callbacks",)) as (_, runtime):
        held = finished_task(runtime.stores.tasks, f"{url}/held")
        wait_for(lambda: fake.at("/held"), what="the first callback held by its receiver")
        other = finished_task(runtime.stores.tasks, f"{url}/hook")
        callback(runtime.stores, other, "delivered", timeout=60)  # while the first is still unanswered
        assert runtime.stores.callbacks.get(held).status == "delivering"  # type: ignore[union-attr]
        fake.release.set()
        callback(runtime.stores, held, "delivered")


def test_callback_to_a_private_address_is_refused_unless_allowed(hook_settings: Settings, receiver: tuple[Receiver, str]) -> None:
    fake, url = receiver
    with gateway(hook_settings.override(allow_private_callbacks=False), ("callbacks",)) as (_, runtime):
        task_id = finished_task(runtime.stores.tasks, f"{url}/hook")
        row = callback(runtime.stores, task_id, "failed")
    assert row.attempts == 1 and fake.at("/hook") == []  # refused outright: retrying cannot help


def test_slack_reply_address_not_minted_by_the_adapter_is_refused(hook_settings: Settings, receiver: tuple[Receiver, str]) -> None:
    fake, _ = receiver
    with gateway(hook_settings, ("callbacks",)) as (_, runtime):
        task_id = finished_task(runtime.stores.tasks, "slack://C-GENERAL/1718000000.000100", status="succeeded", error=None)
        row = callback(runtime.stores, task_id, "failed")
    assert row.attempts == 1 and fake.at("/api/chat.postMessage") == []


def test_a_receiver_detects_a_forged_callback() -> None:
    body = b'{"task_id": "t1", "status": "succeeded"}'
    with pytest.raises(SignatureError):
        RAGLOOP.verify(SECRET, body, RAGLOOP.sign("someone-else", body))


# --- outbound: `ragloop worker callbacks`, a process of its own -------------------------------------------

def test_callbacks_worker_process_delivers_a_finished_task_signed(tmp_path: Path, unique: str, kafka_url: str,
                                                                  receiver: tuple[Receiver, str]) -> None:
    """Cluster mode: the process shares only the broker and the database with whoever finished the task."""
    fake, url = receiver
    settings = Settings(home=tmp_path / "home", broker={"url": kafka_url, "topic_prefix": f"cb{unique}."})
    create_topics(settings.broker.kafka_bootstrap, [settings.broker.topic_prefix + n for n in all_topic_names()], partitions=1)
    stores = Stores.from_settings(settings)
    env = {"RAGLOOP_HOME": str(settings.home), "RAGLOOP_BROKER_URL": kafka_url, "RAGLOOP_TOPIC_PREFIX": settings.broker.topic_prefix,
           "RAGLOOP_WEBHOOK_SECRET": SECRET, "RAGLOOP_ALLOW_PRIVATE_CALLBACKS": "1"}
    with processes(env, tmp_path / "logs") as procs:
        procs.start("callbacks", "worker", "callbacks")
        task_id = finished_task(stores.tasks, f"{url}/hook", error="RuntimeError: the engine crashed")
        procs.wait_until(lambda: stores.callbacks.get(task_id).status == "delivered",  # type: ignore[union-attr]
                         timeout=120, interval=0.1, what="the worker to deliver the callback")
    [delivery] = fake.at("/hook")
    RAGLOOP.verify(SECRET, delivery.body, delivery.headers)
    body = json.loads(delivery.body)
    assert (body["task_id"], body["status"], body["error"]) == (task_id, "failed", "RuntimeError: the engine crashed")
    assert delivery.headers["x-ragloop-delivery"] == task_id
