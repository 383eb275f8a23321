"""The README's walk-throughs, run literally: the blocks marked `<!-- readme-test: NAME -->` are
extracted from README.md and run in bash exactly as a newcomer would paste them, so the README
cannot rot. Only the data folder (a fresh RAGLOOP_HOME) and the answer length are set around them."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- readme-test: (?P<name>[\w-]+) -->\n```bash\n(?P<code>.*?)```", re.S)
README_SERVICES = {"kafka_url": "kafka://127.0.0.1:9092", "opensearch_url": "http://127.0.0.1:9200",
                   "postgres_url": "postgresql://ragloop:ragloop@127.0.0.1:5432/ragloop_test"}

pytestmark = pytest.mark.slow  # starts ragloop as users do and generates answers


def readme_blocks() -> dict[str, str]:
    return {m["name"]: m["code"] for m in BLOCK.finditer((REPO / "README.md").read_text())}


def test_the_readme_marks_the_blocks_this_test_runs() -> None:
    assert set(readme_blocks()) == {"embedded", "cluster", "cluster-try"}


def run_blocks(names: list[str], workdir: Path, *, cwd: Path | None = None, timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
    """Run README blocks in one bash, from `cwd` (default: a folder that has the checkout's `.venv`,
    so files a block writes land there), stopping whatever the blocks left running."""
    if cwd is None:
        cwd = workdir
        (workdir / ".venv").symlink_to(Path(sys.prefix))  # the virtualenv running these tests: the checkout's .venv
    blocks = readme_blocks()
    script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT\n" + "\n".join(blocks[n] for n in names)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLOOP_") or k.startswith("RAGLOOP_TEST_")}
    env |= {"RAGLOOP_HOME": str(workdir / "home"), "RAGLOOP_MAX_NEW_TOKENS": "24", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"README blocks {names} did not finish in {timeout_s}s\n{out}\n{err}") from None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, f"README blocks {names} failed ({process.returncode})\n--- stdout\n{out}\n--- stderr\n{err}"
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def port_8000_is_free() -> None:
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", 8000)) == 0:
            message = "the README serves on localhost:8000, which another process holds"
            if os.environ.get("RAGLOOP_REQUIRE_SERVICES") == "1":
                pytest.fail(message)
            pytest.skip(message)


def json_objects(text: str) -> list[dict[str, object]]:
    """The JSON bodies curl printed (one per call, not newline-terminated)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (start := text.find("{", at)) != -1:
        try:
            value, at = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            at = start + 1
            continue
        found.append(value)
    return found


def test_the_embedded_walk_through_works_as_written(tmp_path: Path) -> None:
    port_8000_is_free()
    done = run_blocks(["embedded"], tmp_path)
    bodies = json_objects(done.stdout)
    assert {"document_id": "ostra", "status": "queued"} in bodies
    assert any(b.get("status") == "indexed" and b.get("document_id") == "ostra" for b in bodies), done.stdout
    answer = json.loads((tmp_path / "answer.json").read_text())
    assert answer["status"] == "succeeded" and answer["result"]["citations"][0]["document_id"] == "ostra"
    assert any("feedback_id" in b and b.get("task_id") == answer["task_id"] for b in bodies), done.stdout
    models = next(b for b in bodies if "models" in b)["models"]
    assert [m["state"] for m in models].count("active") == 1  # type: ignore[union-attr]
    assert "serving http://127.0.0.1:8000" in done.stderr


def test_the_cluster_walk_through_works_as_written(tmp_path: Path, kafka_url: str, opensearch_url: str, postgres_url: str) -> None:
    if {"kafka_url": kafka_url, "opensearch_url": opensearch_url, "postgres_url": postgres_url} != README_SERVICES:
        pytest.skip("the README's cluster block uses the default ports; these services run elsewhere")
    port_8000_is_free()
    done = run_blocks(["cluster", "cluster-try"], tmp_path, cwd=REPO)  # it writes no files; deploy/ must be the real one
    bodies = json_objects(done.stdout)
    assert any(b.get("status") == "indexed" and b.get("document_id") == "ostra" for b in bodies), done.stdout
    assert re.search(r"\b1\.\s+-?[\d.]+\s+ostra\s", done.stdout), "ragloop search finds the gateway's document: one tenant"
    task = next(b for b in bodies if b.get("task_id") == "t-1")
    assert task["status"] == "succeeded", task
    assert task["result"]["citations"][0]["document_id"] == "ostra", task  # type: ignore[index]
    for role in ("ingest", "agent", "eval", "feedback", "trainer", "callbacks"):
        assert f"worker {role}" in done.stderr
    assert "consuming docs.ingest" in done.stderr and "serving http://127.0.0.1:8000" in done.stderr
    assert "Traceback" not in done.stderr and "ERROR" not in done.stderr, done.stderr
