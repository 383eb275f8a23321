"""Run `ragloop` the way a user does (a subprocess of the installed script) and serve web pages to it.

Shared by the CLI tests; not a test module itself.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RAGLOOP = str(Path(sys.executable).with_name("ragloop"))
# Wide enough that error boxes and help tables do not wrap; small answers keep generation short.
QUIET = {"COLUMNS": "250", "RAGLOOP_MAX_NEW_TOKENS": "24"}


def embedded_env(home: Path, **extra: str) -> dict[str, str]:
    """Everything in-process and on disk under `home`: the CLI runs the roles it needs itself."""
    return {"RAGLOOP_HOME": str(home), "RAGLOOP_BROKER_URL": "memory://", "RAGLOOP_SEARCH_URL": "embedded://", **extra}


@dataclass
class Cli:
    """`ragloop` with a fixed environment (on top of this process's) and working directory."""

    env: dict[str, str]
    cwd: Path | None = None
    drop: tuple[str, ...] = field(default=())  # variables of this process the command must not inherit

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {name: value for name, value in os.environ.items() if name not in self.drop} | QUIET | self.env
        return subprocess.run([RAGLOOP, *args], env=env, cwd=self.cwd, input=stdin, capture_output=True, text=True, timeout=timeout)

    def ok(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command that must succeed; its stderr is the failure message otherwise."""
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, f"ragloop {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args).stdout)


@contextmanager
def web_pages(pages: dict[str, bytes]) -> Iterator[str]:
    """Serve `pages` (path → HTML) on 127.0.0.1; yields the base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def html(title: str, text: str) -> bytes:
    return f"<html><head><title>{title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>".encode()
