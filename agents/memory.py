"""Conversation memory: a LangGraph checkpointer in the configured database, keyed by conversation (`thread_id`).

Why a checkpointer rather than a table of our own: the graph's state (its earlier turns) is saved
and restored by LangGraph itself per `thread_id`, so any worker process, including one started
after a crash, continues a conversation where the last one left it. SQLite (one file, embedded
mode) and PostgreSQL (cluster mode) are both supported; the URL picks which.

Turns are stored as plain dicts with the id of the task that produced them, and merged by that id:
a task redelivered after its turn was saved (at-least-once delivery) replaces the turn instead of
recording it twice.

    >>> saver = open_checkpointer("sqlite:////tmp/ragloop/agent-memory.db")       # doctest: +SKIP
    >>> saver = open_checkpointer("postgresql://ragloop:ragloop@db:5432/ragloop")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from agents.types import STATE_TYPES

MAX_STORED_TURNS = 50  # per conversation; older turns are dropped from the checkpoint


class Turn(TypedDict):
    """One question and the answer the agent gave, tagged with the task that produced it."""

    id: str
    question: str
    answer: str


def merge_turns(stored: Sequence[Turn] | None, new: Sequence[Turn] | None) -> list[Turn]:
    """LangGraph reducer for the `turns` channel: append, replacing a turn that has the same id."""
    merged = {turn["id"]: turn for turn in stored or ()}
    for turn in new or ():
        merged[turn["id"]] = turn  # dicts keep first-insertion order, so a replaced turn keeps its place
    return list(merged.values())[-MAX_STORED_TURNS:]


def thread_id(tenant: str, conversation_id: str, principals: Sequence[str] = ()) -> str:
    """The checkpointer key of a conversation: a hash of (tenant, conversation id, principals).

    Conversation ids come from clients, so one tenant's id must never open another's memory; and
    earlier answers may quote restricted documents, so a conversation is also private to the
    principals that held it (another key of the same tenant starts a fresh one). Tenants and ids may
    contain any separator a plain join would use (`/` is allowed), so the parts are hashed as a JSON
    array: no choice of id can name another tuple's key. (Keys before this scheme joined the parts
    with `/`; conversations stored under that format are not found again and start afresh.)
    """
    parts = json.dumps([tenant, conversation_id, sorted(set(principals))], ensure_ascii=True)
    return "conversation:" + hashlib.sha256(parts.encode()).hexdigest()


def serializer() -> JsonPlusSerializer:
    """The checkpoint serializer, allowed to restore exactly the pydantic types the agent state holds."""
    return JsonPlusSerializer(allowed_msgpack_modules=list(STATE_TYPES))


def open_checkpointer(url: str) -> BaseCheckpointSaver:
    """A ready checkpointer (tables created) for `sqlite:///path` or `postgresql://…`."""
    serde = serializer()
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        conninfo = "postgresql://" + url.split("://", 1)[1]
        # autocommit and no prepared statements: what PostgresSaver needs behind a pool (and PgBouncer).
        pool = ConnectionPool(conninfo, min_size=1, max_size=4, open=True,
                              kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row})
        saver: BaseCheckpointSaver = PostgresSaver(pool, serde=serde)  # type: ignore[arg-type]
    elif url.startswith("sqlite:///"):
        from langgraph.checkpoint.sqlite import SqliteSaver

        path = Path(url.removeprefix("sqlite:///")).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the worker threads; SqliteSaver serialises access with its own lock.
        connection = sqlite3.connect(path, check_same_thread=False, timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
        saver = SqliteSaver(connection, serde=serde)
    else:
        raise ValueError(f"memory database URL {url!r}: expected 'sqlite:///path' or 'postgresql://user:pass@host/db'")
    saver.setup()  # type: ignore[attr-defined]
    return saver


def close_checkpointer(saver: BaseCheckpointSaver) -> None:
    """Release the connection or pool behind a checkpointer from `open_checkpointer`."""
    conn = getattr(saver, "conn", None)
    if conn is not None:
        conn.close()
