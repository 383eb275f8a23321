"""Cross-tenant and cross-principal probes (#11, "Nothing leaks"): two tenants, each with a plain key and
a key holding one principal, own documents (public and restricted), chat tasks, conversations and dead
letters; every caller then tries to reach every other caller's data through every endpoint and query
path, in a random order (the seed is printed), and each test prints how many probes it made and how
many leaked. A leak is any answer that reads, changes or reveals what the caller may not see: a
document, task, event stream, feedback target, dead letter, model version, restricted passage or
remembered turn. Embedded broker and search, a real small model answering (few chats, 4 tokens).
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from schemas.events import DeadLetter, principals_fingerprint
from schemas.settings import Settings
from schemas.tables import ModelVersionRecord
from streams.dead_letters import DeadLetterStore
from streams.gateway.app import create_app
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime
from streams.signing import RAGLOOP, RAGLOOP_V2
from tests.support import wait_for

WEBHOOK_SECRET = "walls-whsec"  # the legacy name of the callback secret: signs callbacks, admits no webhook
WEBHOOK_KEY_ID, WEBHOOK_KEY_SECRET, WEBHOOK_KEY_CALLER = "wk-a", "walls-wk-secret", "a"  # an inbound key acting as caller "a"


@dataclass
class Caller:
    name: str
    key: str
    tenant: str
    principals: tuple[str, ...]
    code: str = field(default_factory=lambda: f"kx{secrets.token_hex(4)}")  # a word only this caller's document holds
    document_id: str = ""
    task_id: str = ""
    conversation_id: str = ""
    letter_reason: str = ""

    def headers(self, rng: random.Random) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if rng.random() < 0.5 else {"X-API-Key": self.key}

    def sees_document_of(self, owner: Caller) -> bool:
        """Search's rule: same tenant, and the document is public or lists one of the caller's principals."""
        return owner.tenant == self.tenant and (not owner.principals or bool(set(owner.principals) & set(self.principals)))

    def owns_task_of(self, owner: Caller) -> bool:
        return owner.tenant == self.tenant and principals_fingerprint(owner.principals) == principals_fingerprint(self.principals)


CALLERS = [Caller("a", "key-a", "tenantA", ()), Caller("a-alice", "key-aa", "tenantA", ("alice",)),
           Caller("b", "key-b", "tenantB", ()), Caller("b-bob", "key-bb", "tenantB", ("bob",))]


@dataclass
class Tally:
    """Probes made and the leaks found, printed at the end of each test."""

    name: str
    probes: int = 0
    leaks: list[str] = field(default_factory=list)

    def check(self, leaked: bool, what: str) -> None:
        self.probes += 1
        if leaked:
            self.leaks.append(what)

    def report(self) -> None:
        print(f"\n{self.name}: {self.probes} probes, {len(self.leaks)} leaks")
        assert self.probes > 0
        assert self.leaks == [], "\n".join(self.leaks)


@dataclass
class World:
    client: httpx.Client
    runtime: Runtime
    rng: random.Random
    callers: list[Caller]

    def pairs(self) -> list[tuple[Caller, Caller]]:
        pairs = [(attacker, victim) for attacker in self.callers for victim in self.callers if attacker is not victim]
        self.rng.shuffle(pairs)
        return pairs

    def stored_prompt(self, task_id: str) -> str:
        task = self.runtime.stores.tasks.get_task(task_id)
        assert task is not None and task.result is not None, task_id
        return json.dumps([turn.model_dump() for turn in task.result.response.prompt])


def _chat(client: httpx.Client, caller: Caller, rng: random.Random, question: str, **fields: Any) -> dict[str, Any]:
    reply = client.post("/v1/chat", params={"wait": "true", "timeout": 120}, headers=caller.headers(rng),
                        json={"messages": [{"role": "user", "content": question}], "max_new_tokens": 4, **fields})
    assert reply.status_code == 200 and reply.json()["status"] == "succeeded", reply.text
    return reply.json()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    seed = secrets.randbits(32)
    print(f"\ntenant walls: seed {seed}")
    rng = random.Random(seed)
    home: Path = tmp_path_factory.mktemp("walls") / "home"
    keys = ",".join(f"{c.key}={'|'.join((c.tenant, *c.principals))}" for c in CALLERS)
    settings = Settings(home=home, broker={"url": "memory://"}, search={"url": "embedded://"}, llm={"max_new_tokens": 4},
                        workers={"retry_backoff_s": 0.05}).override(auth="on", api_keys=SecretStr(keys),
                                                                     webhook_secret=SecretStr(WEBHOOK_SECRET),
                                                                     webhook_keys=SecretStr(f"{WEBHOOK_KEY_ID}={WEBHOOK_KEY_SECRET}=tenantA"))
    runtime = Runtime(settings, ["ingest", "agent"])
    family = settings.llm.model_family
    runtime.stores.registry.ensure_base_version(family)
    runtime.stores.registry.register_version(ModelVersionRecord(version="walls-candidate", family=family, state="candidate",
                                                                adapter_path=str(home / "adapters" / "walls-candidate")))
    callers = [Caller(c.name, c.key, c.tenant, c.principals) for c in CALLERS]
    with serve_in_thread(create_app(runtime)) as url, httpx.Client(base_url=url, timeout=180) as client:
        for caller in callers:  # a public document for a plain key, a restricted one for a key with a principal
            caller.document_id = f"doc-{caller.name}-{secrets.token_hex(3)}"
            posted = client.post("/v1/documents", headers=caller.headers(rng), json={
                "id": caller.document_id, "title": "Vault", "access": list(caller.principals),
                "text": f"The vault code of {caller.name} is {caller.code}. The vault code opens the vault."})
            assert posted.status_code == 202, posted.text
        for caller in callers:
            wait_for(lambda c=caller: client.get(f"/v1/documents/{c.document_id}", headers=c.headers(rng)).json()["status"] == "indexed",
                     timeout=120, what=f"{caller.document_id} to be indexed")
        letters = DeadLetterStore(runtime.stores.db)
        for caller in callers:
            caller.letter_reason = f"letter of {caller.name} {secrets.token_hex(4)}"
            payload = {"tenant": caller.tenant, "principals": list(caller.principals), "event_id": secrets.token_hex(8)}
            letters.record(DeadLetter(topic="chat.requests", key=None, consumer="agent", reason=caller.letter_reason,
                                      error_type="Probe", attempts=1, payload=json.dumps(payload)))
        for caller in callers:  # one chat each: it searches (the search probe) and is remembered (the memory probe)
            caller.conversation_id = f"conv-{secrets.token_hex(4)}"
            task = _chat(client, caller, rng, f"Remember my locker word {caller.code}lk. What is the vault code?",
                         conversation_id=caller.conversation_id)
            caller.task_id = task["task_id"]
        yield World(client, runtime, rng, callers)


def test_documents_answer_a_foreign_or_restricted_id_as_a_missing_one(world: World) -> None:
    tally, client, rng = Tally("documents"), world.client, world.rng
    for attacker, victim in world.pairs():
        if attacker.sees_document_of(victim):
            continue
        path, missing = f"/v1/documents/{victim.document_id}", f"/v1/documents/missing-{secrets.token_hex(3)}"
        for method in rng.sample(["GET", "DELETE"], 2):
            reply, absent = client.request(method, path, headers=attacker.headers(rng)), client.request(method, missing, headers=attacker.headers(rng))
            same = (reply.status_code, reply.json()["detail"].replace(victim.document_id, "ID")) == \
                   (absent.status_code, absent.json()["detail"].replace(missing.rsplit("/", 1)[1], "ID"))
            tally.check(not same or victim.code in reply.text, f"{attacker.name} {method} {victim.name}'s document: {reply.status_code} {reply.text}")
        public = client.post("/v1/documents", headers=attacker.headers(rng), json={"id": victim.document_id, "access": [], "text": "Now public."})
        tally.check(public.status_code == 202 or victim.tenant in public.text,
                    f"{attacker.name} re-POSTed {victim.name}'s document: {public.status_code} {public.text}")
    for caller in world.callers:  # nothing above changed any document
        stored = world.runtime.stores.documents.get_document(caller.document_id)
        tally.check(stored is None or stored.status != "indexed" or
                    world.runtime.stores.documents.access_of(caller.document_id) != sorted(caller.principals),
                    f"{caller.name}'s document was changed: {stored}")
    tally.report()


def test_tasks_events_and_feedback_are_the_asking_callers_only(world: World) -> None:
    tally, client, rng = Tally("tasks"), world.client, world.rng
    for attacker, victim in world.pairs():
        if attacker.owns_task_of(victim):
            continue
        path = f"/v1/tasks/{victim.task_id}"
        probes: list[tuple[str, str, str, dict[str, Any]]] = [
            ("read", "GET", path, {}), ("cancel", "DELETE", path, {}), ("events", "STREAM", f"{path}/events", {}),
            ("feedback", "POST", "/v1/feedback", {"json": {"task_id": victim.task_id, "rating": "down", "correction": "forged"}})]
        rng.shuffle(probes)
        for what, method, target, extra in probes:
            headers = attacker.headers(rng)
            reply = _events_status(client, target, headers) if method == "STREAM" else client.request(method, target, headers=headers, **extra)
            tally.check(reply.status_code != 404 or victim.code in reply.text,
                        f"{attacker.name} {what} {victim.name}'s task: {reply.status_code} {reply.text[:200]}")
    tally.report()


def _events_status(client: httpx.Client, path: str, headers: dict[str, str]) -> httpx.Response:
    with client.stream("GET", path, headers=headers) as stream:
        stream.read() if stream.status_code != 200 else None
        return httpx.Response(stream.status_code, text=stream.text if stream.status_code != 200 else "")


def test_dead_letters_and_models_show_only_what_the_caller_may_see(world: World) -> None:
    tally, client, rng = Tally("dead letters and models"), world.client, world.rng
    for attacker in rng.sample(world.callers, len(world.callers)):
        for tenant in (None, *(c.tenant for c in world.callers)):
            params = {"tenant": tenant} if tenant else {}
            shown = client.get("/v1/dead-letters", params=params, headers=attacker.headers(rng)).text
            for victim in world.callers:
                visible = victim.tenant == attacker.tenant and (not victim.principals or victim.owns_task_of(attacker))
                tally.check(not visible and victim.letter_reason in shown, f"{attacker.name} read {victim.name}'s dead letter")
        models = client.get("/v1/models", headers=attacker.headers(rng)).json()["models"]
        tally.check(any("/" in (m["adapter_path"] or "") for m in models), f"{attacker.name} saw an adapter path: {models}")
        pinned = client.post("/v1/chat", headers=attacker.headers(rng), json={"messages": [{"role": "user", "content": "hi"}],
                                                                               "model_version": "walls-candidate"})
        tally.check(pinned.status_code != 404, f"{attacker.name} pinned a candidate version: {pinned.status_code}")
    tally.report()


def test_search_and_chat_cite_only_readable_documents(world: World) -> None:
    """Every path into retrieval: each caller's plain chat (already asked), `?wait=true`, and the OpenAI route."""
    tally, client, rng = Tally("search and chat"), world.client, world.rng
    asked = {caller.name: caller.task_id for caller in world.callers}
    openai_caller = rng.choice(world.callers)
    completion = client.post("/v1/chat/completions", headers=openai_caller.headers(rng),
                             json={"model": "ragloop", "max_tokens": 4, "messages": [{"role": "user", "content": "What is the vault code?"}]})
    assert completion.status_code == 200, completion.text
    for caller in world.callers:
        task = client.get(f"/v1/tasks/{asked[caller.name]}", headers=caller.headers(rng)).json()
        prompt = world.stored_prompt(caller.task_id)
        cited = {citation["document_id"] for citation in task["result"]["citations"]}
        scores = [citation["score"] for citation in task["result"]["citations"]]
        tally.check(scores != [1.0 / rank for rank in range(1, len(scores) + 1)], f"{caller.name} was shown raw scores {scores}")
        for owner in world.callers:
            if caller.sees_document_of(owner):
                continue
            tally.check(owner.document_id in cited, f"{caller.name} was cited {owner.name}'s document")
            tally.check(owner.code in prompt or owner.code in task["result"]["answer"], f"{caller.name}'s prompt held {owner.name}'s passage")
            if caller is openai_caller:
                tally.check(owner.code in completion.text, f"{caller.name}'s OpenAI completion held {owner.name}'s passage")
                tally.check(owner.code in world.stored_prompt(completion.json()["id"].removeprefix("chatcmpl-")),
                            f"{caller.name}'s OpenAI prompt held {owner.name}'s passage")
    tally.report()


def test_conversation_memory_is_the_asking_callers_only(world: World) -> None:
    """Another caller naming the victim's conversation id, or an id built to collide with the victim's memory key
    (`tenant/conversation/principals` joined with `/`), never sees the victim's remembered turn."""
    tally, client, rng = Tally("memory"), world.client, world.rng
    victim = rng.choice([c for c in world.callers if c.principals])
    same_tenant = next(c for c in world.callers if c.tenant == victim.tenant and not c.principals)
    other = rng.choice([c for c in world.callers if c is not victim and c is not same_tenant])
    for attacker, conversation in ((other, victim.conversation_id),
                                   (same_tenant, f"{victim.conversation_id}/{principals_fingerprint(victim.principals)}")):
        task = _chat(client, attacker, rng, "What did I ask you to remember?", conversation_id=conversation, retrieval=False)
        tally.check(f"{victim.code}lk" in world.stored_prompt(task["task_id"]),
                    f"{attacker.name} with conversation {conversation!r} saw {victim.name}'s remembered turn")
    tally.report()


def test_a_webhook_cannot_act_as_another_tenant_or_its_principals(world: World) -> None:
    """A webhook key acts for its own tenant and principals only, and the callback secret (which every
    callback receiver holds) admits no inbound request at all: whatever tenant and principals the body
    names, no task is created as another caller."""
    tally, client, rng = Tally("webhooks"), world.client, world.rng
    for victim in rng.sample([c for c in world.callers if c.name != WEBHOOK_KEY_CALLER], 2):
        body = json.dumps({"text": "What is the vault code?", "tenant": victim.tenant, "principals": list(victim.principals)}).encode()
        for how, headers in (("the callback secret", RAGLOOP.sign(WEBHOOK_SECRET, body)),
                             (f"{WEBHOOK_KEY_CALLER}'s webhook key", RAGLOOP_V2.sign(WEBHOOK_KEY_SECRET, body, delivery=f"d-{victim.name}")
                              | {"X-Ragloop-Key-Id": WEBHOOK_KEY_ID})):
            reply = client.post("/v1/webhooks/generic", content=body, headers={"Content-Type": "application/json", **headers})
            task = world.runtime.stores.tasks.get_task(reply.json().get("task_id", "")) if reply.status_code in (200, 202) else None
            tally.check(task is not None and task.tenant == victim.tenant and task.asked_as() == principals_fingerprint(victim.principals),
                        f"a webhook signed with {how} acted as {victim.name}: {reply.status_code} {reply.text}")
    tally.report()
