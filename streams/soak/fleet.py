"""The loop as separate processes: the gateway and one process per worker role, each killable.

Every process is `python -m streams.cli worker ROLE` (the gateway is the role `gateway`), started
through `env` with the given settings added to this process's environment, so the children read
their settings exactly as an operator's would. `kill` is SIGKILL: no shutdown code runs, which is
the crash a fault test wants; `start` again is the restart.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx


class Fleet:
    def __init__(self, roles: list[str], settings_env: dict[str, str], *, port: int, logs: Path, whole: bool = False) -> None:
        """`whole`: one `ragloop up` process (every role and the gateway, as embedded mode runs) instead of one per role."""
        self.roles, self.whole = ([] if whole else roles), whole
        self.env = {**settings_env, "RAGLOOP_API_PORT": str(port), "RAGLOOP_API_HOST": "127.0.0.1"}
        self.base_url = f"http://127.0.0.1:{port}"
        self.logs = logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, int] = {}
        self._log_from: dict[str, int] = {}  # where the current process of each role began writing its log
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, role: str) -> None:
        verb = ["up"] if self.whole else ["worker", role]
        command = ["env", *(f"{k}={v}" for k, v in self.env.items()), sys.executable, "-m", "streams.cli", *verb]
        path = self.logs / f"{role}.log"
        self._log_from[role] = path.stat().st_size if path.exists() else 0
        log = path.open("ab")
        self.processes[role] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()  # the child holds its own descriptor

    def start_all(self) -> None:
        for role in [*self.roles, "gateway"]:
            self.start(role)

    def kill(self, role: str) -> None:
        """SIGKILL, and reap it: nothing of the role runs afterwards."""
        process = self.processes[role]
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()

    def restart(self, role: str) -> None:
        self.kill(role)
        self.restarts[role] = self.restarts.get(role, 0) + 1
        self.start(role)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def dead(self) -> list[str]:
        """Roles whose process exited on its own (a crash nobody asked for)."""
        return [role for role, process in self.processes.items() if process.poll() is not None]

    def wait_ready(self, timeout_s: float = 180) -> None:
        """Until the gateway answers /healthz (the workers warm up meanwhile; their events wait on the broker)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if died := self.dead():
                raise RuntimeError(f"{died} exited while starting; see {self.logs}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)  # a process starting up: nothing to wait on but its port
        raise RuntimeError(f"the gateway did not answer {self.base_url}/healthz within {timeout_s:.0f}s; see {self.logs}")

    def working(self, role: str) -> bool:
        """The role's current process has warmed up and consumes (it printed its banner), or serves, for the gateway."""
        marker = b"serving http" if self.whole or role == "gateway" else f"worker {role}".encode()
        with (self.logs / f"{role}.log").open("rb") as log:
            log.seek(self._log_from[role])
            return marker in log.read()

    def wait_working(self, role: str, timeout_s: float = 600) -> None:
        """Until `role` works (a fault test kills a role that is doing its job, not one still loading its models)."""
        deadline = time.monotonic() + timeout_s
        while not self.working(role):
            if self.processes[role].poll() is not None:
                raise RuntimeError(f"{role} exited while starting:\n{self.log_tail(role)}")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{role} did not start working within {timeout_s:.0f}s:\n{self.log_tail(role)}")
            time.sleep(0.5)  # a process loading its models: nothing to wait on but its log

    def log_tail(self, role: str, lines: int = 20) -> str:
        path = self.logs / f"{role}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
