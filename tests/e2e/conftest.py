"""Run ragloop as users do: `ragloop up` (embedded) or one `ragloop worker ROLE` process per role (cluster)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg

RAGLOOP = str(Path(sys.executable).with_name("ragloop"))
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn`: the child gets SIGTERM when the test process dies, however it dies. A test run killed from outside
    (a CI timeout, a developer's Ctrl-C twice, `kill`) never runs the fixtures' cleanup, and left its role processes
    running against the shared services, consuming their topics and CPU for the next run."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = {**os.environ, **env}
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 — closed with the process
        process = subprocess.Popen([RAGLOOP, "--log-level", "INFO", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   preexec_fn=die_with_parent)  # prctl only: safe between fork and exec
        self.running[name] = process
        return process

    def assert_alive(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}\n{self.tails()}")

    def wait_until(self, check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.5) -> None:
        """Poll a condition while every process stays alive: a dead role fails at once, with its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_alive()
            if check():
                return
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.tails()}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.running.pop(name)
        process.send_signal(sig)
        process.wait(timeout=60)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.kill(name, signal.SIGTERM)

    def tails(self, lines: int = 40) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(out)


@contextmanager
def processes(env: dict[str, str], logs: Path) -> Iterator[Processes]:
    logs.mkdir(parents=True, exist_ok=True)
    procs = Processes(env, logs)
    try:
        yield procs
    except BaseException:
        print(procs.tails(), file=sys.stderr)
        raise
    finally:
        procs.stop_all()


def wait_healthy(base_url: str, procs: Processes, timeout: float = 240) -> None:
    def healthy() -> bool:
        try:
            return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    procs.wait_until(healthy, timeout=timeout, what=f"{base_url}/healthz")


@contextmanager
def fresh_postgres_schema(postgres_url: str, name: str) -> Iterator[str]:
    """A database URL whose every table (the store's and the agent memory's) lives in a new, empty
    schema of the test database, dropped afterwards: a clean slate that never touches the tables
    other tests use concurrently. A schema, not a database: the test role owns the test database
    but is not allowed CREATE DATABASE (deploy/local/postgres.sh)."""
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{name}"')
    try:
        separator = "&" if "?" in postgres_url else "?"
        yield f"{postgres_url}{separator}options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{name}" CASCADE')
