"""Every command the README's CLI section promises, run as a user runs it, embedded (`memory://`):
topics, models, ingest of a URL into a tenant, search by mode behind the tenant wall, ask without
retrieval, publishing JSON arrays and JSON lines, and the JSON log lines the CLI writes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from indexing.document_store import DocumentStore
from schemas.database import Database
from schemas.settings import Settings
from streams.cli import app
from streams.services import Services
from streams.stores import Stores
from streams.task_store import TaskStore
from streams.topics import TOPICS, all_topic_names
from tests.integration.cli_harness import Cli, embedded_env, html, web_pages

QUESTION = "How long is the Ostra river?"
OSTRA = html("The Ostra river", "The Ostra river flows 612 kilometres from the Kessel glacier to the Northern Sea.")
BAKERY = html("Harbor Street Bakery", "Harbor Street Bakery bakes rye sourdough in a wood-fired oven built in 1952.")
PASSAGE = "612 kilometres from the Kessel glacier"


def in_process(home: Path) -> Settings:
    """The settings the CLI ran with, to read what it left behind in its home."""
    return Settings(home=home, database_url=None, broker={"url": "memory://"}, search={"url": "embedded://"})


# --- topics -------------------------------------------------------------------------------------

def test_topics_list_prints_every_topic_with_its_event_and_dead_letter_topic_on_stdout() -> None:
    """On stdout, so `ragloop topics list | grep chat` works."""
    result = CliRunner().invoke(app, ["topics", "list"], prog_name="ragloop", env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert set(lines) == set(TOPICS)
    for name, topic in TOPICS.items():
        assert f"({topic.event.__name__})" in lines[name] and lines[name].endswith(f"dlq: {topic.dlq}")


def test_topics_asyncapi_prints_a_json_document_naming_every_topic_and_dead_letter_topic(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["topics", "asyncapi"], prog_name="ragloop")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["asyncapi"] == "3.0.0"
    assert sorted(channel["address"] for channel in document["channels"].values()) == sorted(all_topic_names())
    written = CliRunner().invoke(app, ["topics", "asyncapi", "--out", str(tmp_path / "asyncapi.json")], prog_name="ragloop")
    assert written.exit_code == 0 and json.loads((tmp_path / "asyncapi.json").read_text()) == document


def test_topics_create_refuses_the_embedded_broker_saying_what_to_set(tmp_path: Path) -> None:
    result = Cli(embedded_env(tmp_path / "home"))("topics", "create")
    assert result.returncode == 2 and "set kafka://host:port" in result.stderr


# --- models -------------------------------------------------------------------------------------

def test_models_list_shows_the_base_version_active_in_a_fresh_home(tmp_path: Path) -> None:
    lines = Cli(embedded_env(tmp_path / "home")).ok("models", "list").stdout.splitlines()
    assert [line.split() for line in lines] == [["*", "smollm2-135m-instruct@base", "active", "(base", "weights)"]]


def test_models_fetch_names_a_converted_checkpoint_and_the_embedder(tmp_path: Path) -> None:
    """Against the already-filled model cache (no network here): the reported checkpoint is a loadable
    safetensors folder and the embedder is MiniLM on ONNX Runtime."""
    stderr = Cli(embedded_env(tmp_path / "home")).ok("models", "fetch").stderr
    checkpoint = Path(next(line for line in stderr.splitlines() if line.startswith("LLM checkpoint: ")).split(": ", 1)[1])
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "config.json").is_file()
    assert "embedder: all-MiniLM-L6-v2 (384-d, onnx)" in stderr


# --- ingest a URL, search by mode and tenant ---------------------------------------------------

@dataclass
class Indexed:
    """A home where `ragloop ingest URL --tenant` put the Ostra page in `riverside`, the bakery in `harbour`."""

    cli: Cli
    home: Path
    ostra: str
    bakery: str
    ingested: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Indexed]:
    home = tmp_path_factory.mktemp("cli") / "home"
    cli = Cli(embedded_env(home, RAGLOOP_FETCH_ALLOW_PRIVATE="true"))  # the test server is on loopback
    with web_pages({"/ostra.html": OSTRA, "/bakery.html": BAKERY}) as base:
        ingested = cli("ingest", f"{base}/ostra.html", "--tenant", "riverside", "--timeout", "300")
        cli.ok("ingest", f"{base}/bakery.html", "--tenant", "harbour", "--timeout", "300")
        yield Indexed(cli, home, f"{base}/ostra.html", f"{base}/bakery.html", ingested)


def test_ingest_url_fetches_the_page_and_indexes_it_for_the_tenant(indexed: Indexed) -> None:
    assert indexed.ingested.returncode == 0, indexed.ingested.stderr
    assert "indexed 1 of 1 document(s)" in indexed.ingested.stderr
    row = DocumentStore(Database.from_settings(in_process(indexed.home))).get_document(indexed.ostra)
    assert row is not None and (row.tenant, row.status, row.title) == ("riverside", "indexed", "The Ostra river") and row.chunks >= 1


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_search_returns_what_that_mode_ranks_in_the_tenant(indexed: Indexed, mode: str) -> None:
    """The CLI's hits are the retriever's hits for this mode and tenant (dense and hybrid score differently)."""
    hits = indexed.cli.json("search", QUESTION, "--mode", mode, "--tenant", "riverside", "--json")
    services = Services(in_process(indexed.home), Stores.from_settings(in_process(indexed.home)))
    try:
        expected = services.retriever.retrieve(QUESTION, tenant="riverside", k=5, mode=mode)
    finally:
        services.close()
    assert hits[0]["document_id"] == indexed.ostra
    assert [(h["chunk_id"], pytest.approx(h["score"], abs=1e-4)) for h in hits] == [(e.chunk.id, e.score) for e in expected]


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_search_never_shows_another_tenants_documents(indexed: Indexed, mode: str) -> None:
    """`harbour` asks about the Ostra river: it gets its own bakery page at best, never riverside's page."""
    hits = indexed.cli.json("search", QUESTION, "--mode", mode, "--tenant", "harbour", "--json")
    assert {h["document_id"] for h in hits} == {indexed.bakery}


# --- ask ----------------------------------------------------------------------------------------

def asked_prompt(indexed: Indexed, *flags: str) -> tuple[dict[str, Any], str]:
    """`ragloop ask QUESTION FLAGS --json`, and the prompt the model saw (recorded on the task)."""
    task = Cli({**indexed.cli.env, "RAGLOOP_MAX_NEW_TOKENS": "8"}).json("ask", QUESTION, "--json", *flags)  # the prompt is what counts
    row = TaskStore(Database.from_settings(in_process(indexed.home))).get_task(task["task_id"])
    assert task["status"] == "succeeded" and row is not None, task
    assert row.result is not None, task
    return task, json.dumps([turn.model_dump() for turn in row.result.response.prompt])


@pytest.mark.slow
def test_ask_without_retrieval_answers_from_the_model_alone(indexed: Indexed) -> None:
    """The tenant holds the answer, yet `--no-retrieval` shows the model no passage and cites nothing."""
    task, prompt = asked_prompt(indexed, "--no-retrieval", "--tenant", "riverside")
    assert task["result"]["answer"] and task["result"]["citations"] == []
    assert PASSAGE not in prompt


@pytest.mark.slow
def test_ask_retrieves_from_its_own_tenant_only(indexed: Indexed) -> None:
    _, riverside = asked_prompt(indexed, "--tenant", "riverside")
    _, harbour = asked_prompt(indexed, "--tenant", "harbour")
    assert PASSAGE in riverside and PASSAGE not in harbour


# --- ingest refused, and the log lines it writes ------------------------------------------------

@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """`ragloop ingest` of a loopback URL with the SSRF guard at its default, logging at the default level."""
    cli = Cli(embedded_env(tmp_path_factory.mktemp("cli") / "home"), drop=("RAGLOOP_LOG_LEVEL", "RAGLOOP_FETCH_ALLOW_PRIVATE"))
    with web_pages({"/ostra.html": OSTRA}) as base:
        return cli("ingest", f"{base}/ostra.html", "--timeout", "300")


def test_ingest_url_refuses_a_private_address_unless_allowed(refused: subprocess.CompletedProcess[str]) -> None:
    assert refused.returncode == 1
    assert "refusing to fetch from 127.0.0.1" in refused.stderr and "indexed 0 of 1 document(s)" in refused.stderr


def log_records(stderr: str) -> list[dict[str, Any]]:
    """Every structured log line, each parsed on its own: a line glued to other output does not parse."""
    return [json.loads(line) for line in stderr.splitlines() if '"event": ' in line]


def test_logs_are_one_json_object_per_line_with_event_level_and_utc_timestamp(refused: subprocess.CompletedProcess[str]) -> None:
    """Not on a terminal, so JSON lines: the dead-lettered refusal is one parseable line with its fields."""
    records = log_records(refused.stderr)
    assert records and all({"event", "level", "timestamp"} <= record.keys() for record in records)
    dead = next(record for record in records if record["event"] == "dead-lettered")
    assert dead["level"] == "warning" and dead["topic"] == "docs.ingest" and "127.0.0.1" in dead["reason"]
    assert datetime.fromisoformat(dead["timestamp"]).utcoffset() == timedelta(0)


def test_the_cli_logs_warnings_and_worse_by_default(refused: subprocess.CompletedProcess[str]) -> None:
    """RAGLOOP_LOG_LEVEL defaults to WARNING on the CLI: the runtime's info lines stay out."""
    assert {record["level"] for record in log_records(refused.stderr)} <= {"warning", "error", "critical"}


# --- publish ------------------------------------------------------------------------------------

def published(tmp_path: Path, name: str, text: str) -> DocumentStore:
    """`ragloop publish docs.ingest FILE` in a fresh home; the documents it left behind."""
    (tmp_path / name).write_text(text)
    home = tmp_path / "home"
    result = Cli(embedded_env(home)).ok("publish", "docs.ingest", str(tmp_path / name))
    assert "published 2 event(s) to docs.ingest" in result.stderr and "dead-lettered" not in result.stderr
    return DocumentStore(Database.from_settings(in_process(home)))


EVENTS = [{"document_id": "river", "tenant": "riverside", "title": "Ostra", "text": "The Ostra river flows 612 kilometres."},
          {"document_id": "bread", "tenant": "harbour", "title": "Bakery", "text": "Harbor Street Bakery bakes rye sourdough."}]


def indexed_rows(store: DocumentStore) -> list[tuple[str, str, str]]:
    rows = [store.get_document(event["document_id"]) for event in EVENTS]
    return [(row.id, row.tenant, row.status) for row in rows if row is not None]


def test_publish_a_json_array_file_sends_every_element_as_an_event(tmp_path: Path) -> None:
    store = published(tmp_path, "events.json", json.dumps(EVENTS, indent=2))
    assert indexed_rows(store) == [("river", "riverside", "indexed"), ("bread", "harbour", "indexed")]


def test_publish_a_json_lines_file_sends_every_line_as_an_event(tmp_path: Path) -> None:
    store = published(tmp_path, "events.jsonl", "\n".join(json.dumps(event) for event in EVENTS) + "\n")
    assert indexed_rows(store) == [("river", "riverside", "indexed"), ("bread", "harbour", "indexed")]
