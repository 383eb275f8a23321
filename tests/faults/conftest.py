"""Private Kafka, OpenSearch and PostgreSQL for the fault tests, on ports of their own.

The fault tests stop and restart services; the shared ones (9092, 9200, 5432) serve every other
test, so these tests never touch them. `deploy/local/services.sh` starts a second set under a
temporary RAGLOOP_SERVICES_HOME on the ports below. Maven is not needed again: the jars the main
set already resolved are linked in (their stamp file makes the launchers skip Maven).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import unavailable

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "deploy" / "local" / "services.sh"
PORTS = {"RAGLOOP_KAFKA_PORT": 19092, "RAGLOOP_KAFKA_CONTROLLER_PORT": 19093, "RAGLOOP_OPENSEARCH_PORT": 9260,
         "RAGLOOP_OPENSEARCH_TRANSPORT_PORT": 9360, "RAGLOOP_POSTGRES_PORT": 15432}
JARS = {"kafka": ("lib",), "opensearch": ("lib", "knn")}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: kills processes and stops private services (tests/faults); minutes")


@dataclass
class PrivateServices:
    home: Path
    env: dict[str, str]

    @property
    def broker_url(self) -> str:
        return f"kafka://127.0.0.1:{PORTS['RAGLOOP_KAFKA_PORT']}"

    @property
    def search_url(self) -> str:
        return f"http://127.0.0.1:{PORTS['RAGLOOP_OPENSEARCH_PORT']}"

    @property
    def database_url(self) -> str:
        return f"postgresql://ragloop:ragloop@127.0.0.1:{PORTS['RAGLOOP_POSTGRES_PORT']}/ragloop"

    def run(self, command: str, *names: str) -> None:
        """`services.sh COMMAND NAMES…` on the private set; its output goes to the services' own logs folder."""
        with (self.home / "logs" / "services.out").open("ab") as out:
            subprocess.run([str(SERVICES), command, *names], env=self.env, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=300)


def _seed_jars(home: Path) -> None:
    """Link the jars of the main services' home (CI and `make services` resolved them there) into `home`."""
    seed = Path(os.environ.get("RAGLOOP_SERVICES_HOME", ROOT / "deploy" / "local" / ".run"))
    for service, folders in JARS.items():
        stamp = seed / service / "jars.sha256"
        if not stamp.exists() or not all((seed / service / folder).is_dir() for folder in folders):
            continue  # the launcher resolves them with Maven (from ~/.m2)
        (home / service).mkdir(parents=True, exist_ok=True)
        for folder in folders:
            (home / service / folder).symlink_to(seed / service / folder)
        shutil.copy(stamp, home / service / "jars.sha256")


@pytest.fixture(scope="module")
def private_services() -> Iterator[PrivateServices]:
    if shutil.which("java") is None:
        unavailable("the fault tests start their own Kafka, OpenSearch and PostgreSQL: java is needed (make services)")
    # Not under pytest's private (0700) temp folder: PostgreSQL runs as its own user and must reach its data folder.
    home = Path(tempfile.mkdtemp(prefix="ragloop-faults-"))
    home.chmod(0o755)
    (home / "logs").mkdir()
    _seed_jars(home)
    env = {**os.environ, "RAGLOOP_SERVICES_HOME": str(home), "RAGLOOP_PYTHON": sys.executable,
           "RAGLOOP_KAFKA_HEAP": "384m", "RAGLOOP_OPENSEARCH_HEAP": "512m", **{k: str(v) for k, v in PORTS.items()}}
    services = PrivateServices(home, env)
    try:
        services.run("start")
    except subprocess.CalledProcessError:
        services.run("stop")
        log = (home / "logs" / "services.out").read_text(errors="replace")[-3000:]
        unavailable(f"the private services did not start (ports {sorted(PORTS.values())} free?):\n{log}")
    try:
        yield services
    finally:
        services.run("stop")
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def data_disk(tmp_path: Path) -> Iterator[Path | None]:
    """RAGLOOP_HOME on a 64 MiB tmpfs, so the test can fill it; None where mounting is not allowed."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], capture_output=True).returncode == 0
    try:
        yield folder if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)
