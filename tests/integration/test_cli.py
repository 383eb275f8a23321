"""The CLI as a user runs it, embedded: its help, ingest files, ask with citations, publish events (DLQ included)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schemas.events import ChatRequest, ChatTurn
from schemas.settings import Settings
from streams.cli import app
from streams.stores import Stores
from streams.task_store import task_from_request
from tests.integration.cli_harness import Cli, embedded_env

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    return Cli(embedded_env(tmp_path / "home"))


def help_panels(*args: str) -> dict[str, dict[str, str]]:
    """`ragloop ARGS --help` as {panel title: {first column: the rest}}; wrapped rows are joined.

    Names are whole cells, so a command `ask` is not "found" inside `task`."""
    result = CliRunner().invoke(app, [*args, "--help"], prog_name="ragloop", env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    panels: dict[str, dict[str, str]] = {}
    rows: dict[str, str] | None = None
    name = ""
    for line in result.output.splitlines():
        if line.startswith("╭─ "):
            rows = panels.setdefault(line.removeprefix("╭─ ").split(" ─")[0], {})
        elif line.startswith("╰"):
            rows = None
        elif rows is not None and line.startswith("│"):
            cell = line.strip("│").rstrip()
            if cell[:6].strip():  # a new row starts in the first columns (an optional argument is indented past the `*` column)
                name, _, rest = cell.strip().partition("  ")
                rows[name] = rest.strip()
            else:
                rows[name] += " " + cell.strip()
    return panels


def options(panel: dict[str, str]) -> dict[str, str]:
    """Every spelling of every option → its help: `--retrieval    --no-retrieval    <bool>  …` gives both."""
    spelled = {}
    for first, rest in panel.items():
        names, _, text = f"{first} {rest}".partition("<")
        spelled |= {name: text.partition(">")[2].strip() for name in names.split() if name.startswith("--")}
    return spelled


def readme_cli_lines() -> list[str]:
    """The command lines of the README's `## CLI` block (comments removed)."""
    block = README.read_text().split("## CLI", 1)[1].split("```")[1]
    return [line.split(" #")[0].strip() for line in block.splitlines() if line.startswith("ragloop ")]


def test_help_lists_exactly_the_commands_each_with_what_it_does() -> None:
    commands = help_panels()["Commands"]
    assert set(commands) == {"up", "worker", "publish", "ingest", "ask", "search", "soak", "topics", "models", "eval", "dlq", "config",
                             "train", "report"}
    assert all(commands.values()), commands


@pytest.mark.parametrize(("group", "subcommands"), [("topics", {"create", "list", "asyncapi"}),
                                                    ("models", {"fetch", "list", "promote", "rollback", "share", "decisions"}),
                                                    ("eval", {"retrieval", "qa", "images"}), ("dlq", {"list", "show", "replay"}),
                                                    ("config", {"show"})])
def test_each_command_group_lists_exactly_its_subcommands(group: str, subcommands: set[str]) -> None:
    commands = help_panels(group)["Commands"]
    assert set(commands) == subcommands and all(commands.values()), commands


@pytest.mark.parametrize("line", readme_cli_lines())
def test_every_readme_cli_line_is_a_command_whose_help_teaches_its_options(line: str) -> None:
    """`ragloop search "query" [--mode bm25|dense|hybrid] …`: the command exists, every option the README
    shows is one of its options, and the choices the README lists are named in that option's help."""
    command, *rest = line.split()[1:]
    groups = {"topics", "models", "dlq", "eval", "config"}
    # `ragloop models list [--tenant T] | promote V [--reason R]`: each subcommand with the options shown after it
    segments = [segment.split() for segment in " ".join(rest).split(" | ")] if command in groups else [rest]
    for segment in segments:
        invocation = [command, segment[0]] if command in groups else [command]
        taught = options(help_panels(*invocation).get("Options", {}))
        for option, value in re.findall(r"\[(--[a-z-]+)(?: ([^\]]+))?\]", " ".join(segment)):
            assert option in taught, f"{option} missing from `ragloop {' '.join(invocation)} --help`"
            for choice in value.split("|") if "|" in value else []:
                assert re.search(rf"\b{choice}\b", taught[option]), f"{option} help does not name {choice!r}: {taught[option]}"


def test_worker_help_names_every_role_the_readme_lists() -> None:
    line = next(line for line in README.read_text().splitlines() if line.startswith("ragloop worker ROLE"))
    roles = [role.strip() for role in line.split("#", 1)[1].split(",")[0].split("|")]
    described = " ".join(help_panels("worker")["Arguments"].values())
    assert roles and all(role.isalpha() for role in roles), roles  # the README line was parsed
    assert all(re.search(rf"\b{role}\b", described) for role in roles), (roles, described)


@pytest.mark.slow  # generates with SmolLM2
def test_ingest_then_ask_cites_the_right_file(run, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ostra.md").write_text("# The Ostra river\n\nThe Ostra river flows 612 kilometres from the Kessel glacier to the sea.\n")
    (docs / "bakery.txt").write_text("Harbor Street Bakery bakes rye sourdough in a wood-fired oven built in 1952.\n")
    ingested = run("ingest", str(docs))
    assert ingested.returncode == 0, ingested.stderr
    assert "indexed 2 of 2 document(s)" in ingested.stderr
    found = run("search", "Ostra river length", "--mode", "bm25", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["document_id"].endswith("ostra.md")
    asked = run("ask", "How long is the Ostra river?", "--json")
    assert asked.returncode == 0, asked.stderr
    task = json.loads(asked.stdout)
    assert task["status"] == "succeeded"
    assert task["result"]["citations"][0]["document_id"].endswith("ostra.md")


@pytest.mark.slow  # generates with SmolLM2
def test_a_document_ingested_with_access_is_found_and_cited_only_for_a_principal_on_the_list(run, tmp_path: Path) -> None:
    note = tmp_path / "salaries.txt"
    note.write_text("The salary review for the Veltrin canteen staff happens every March.\n")
    assert run("ingest", str(note), "--access", "group:hr").returncode == 0

    def found(*principals: str) -> list[str]:
        flags = [arg for p in principals for arg in ("--principal", p)]
        out = run("search", "Veltrin canteen salary review", "--mode", "bm25", "--json", *flags)
        assert out.returncode == 0, out.stderr
        return [hit["document_id"] for hit in json.loads(out.stdout)]

    assert found("user:7", "group:hr") == [str(note)]
    assert found() == found("user:7") == []

    def cited(*flags: str) -> list[str]:  # the chat path: gateway-less request → agent worker → retrieval
        out = run("ask", "When is the Veltrin canteen salary review?", "--json", *flags)
        assert out.returncode == 0, out.stderr
        return [c["document_id"] for c in json.loads(out.stdout)["result"]["citations"]]

    assert cited("--principal", "group:hr") == [str(note)]
    assert cited() == []


def test_ask_is_refused_when_the_queue_is_full_as_the_api_refuses_it(tmp_path: Path) -> None:
    """The CLI submits through the same task queue as the API: above RAGLOOP_MAX_QUEUED_TASKS it accepts
    nothing (no task row), says why, and exits 75 (EX_TEMPFAIL: try again later) where the API answers 503."""
    home = tmp_path / "home"
    store = Stores.from_settings(Settings(home=home, database_url=None, broker={"url": "memory://"}, search={"url": "embedded://"})).tasks
    for n in range(2):
        store.create_task(task_from_request(ChatRequest(messages=[ChatTurn(role="user", content=f"waiting {n}")])))
    result = Cli(embedded_env(home, RAGLOOP_MAX_QUEUED_TASKS="2"))("ask", "How long is the Ostra river?", "--timeout", "5")
    assert result.returncode == 75, result.stderr
    assert "the queue holds 2 waiting tasks (limit 2); retry later" in result.stderr
    assert store.queue_depth("default") == (2, 2)


def test_search_reads_the_index_only_and_never_opens_the_database(tmp_path: Path) -> None:
    """A database that cannot be reached does not matter to a search: it needs the index, nothing else."""
    unreachable = Cli(embedded_env(tmp_path / "home", RAGLOOP_DATABASE_URL="postgresql://nobody:x@127.0.0.1:1/none"))
    result = unreachable("search", "Ostra river", "--mode", "bm25", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_publish_refuses_schema_invalid_events_naming_the_field(run) -> None:
    result = run("publish", "docs.ingest", "-", stdin='{"text": "hello"}')
    assert result.returncode == 2
    assert "document_id: Field required" in result.stderr


def test_publish_without_validation_shows_the_dead_letter(run) -> None:
    result = run("publish", "docs.ingest", "-", "--no-validate", stdin='{"document_id": "d1", "txt": "typo"}\n')
    assert result.returncode == 0, result.stderr
    assert "dead-lettered to docs.ingest.dlq" in result.stderr and "txt: Extra inputs are not permitted" in result.stderr


def test_publish_valid_event_is_processed(run) -> None:
    result = run("publish", "docs.ingest", "-", stdin='{"document_id": "d1", "title": "T", "text": "Hello there."}')
    assert result.returncode == 0, result.stderr
    assert "published 1 event(s) to docs.ingest" in result.stderr and "dead-lettered" not in result.stderr


def _tiny_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = [("d1", "Ostra river", "The Ostra river flows 612 kilometres to the Northern Sea."),
            ("d2", "Bakery", "Harbor Street Bakery bakes rye sourdough every morning."),
            ("d3", "Observatory", "The Veltrin Observatory sits on Mount Caldera."),
            ("d4", "Glacier", "The Kessel glacier feeds several lakes in the north.")]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, t, x in docs))
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in [
        {"_id": "q1", "text": "How long is the Ostra river?"}, {"_id": "q2", "text": "What bread does Harbor Street Bakery bake?"}]))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    (folder / "answers.jsonl").write_text('{"_id": "q1", "answers": ["612 kilometres"]}\n{"_id": "q2", "answers": ["rye sourdough"]}\n')
    return folder


def test_eval_retrieval_reports_the_contract_keys(run, tmp_path: Path) -> None:
    result = run("eval", "retrieval", "--dataset", str(_tiny_beir(tmp_path / "tiny")), "--mode", "hybrid", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"ndcg@10", "recall@100", "mrr@10", "queries"} <= report.keys()
    assert report["queries"] == 2 and report["ndcg@10"] == 1.0 and report["mrr@10"] == 1.0


@pytest.mark.slow  # generates with SmolLM2
def test_eval_qa_asks_through_the_chat_path_and_reports_the_contract_keys(run, tmp_path: Path) -> None:
    result = run("eval", "qa", "--dataset", str(_tiny_beir(tmp_path / "tiny")), "--limit", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"exact_match", "f1", "contains", "hit@5", "questions"} <= report.keys()
    assert report["questions"] == 1 and report["hit@5"] == 1.0
