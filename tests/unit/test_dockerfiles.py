"""What the images in deploy/docker promise, read from the Dockerfiles (no Docker engine where ragloop
is built and tested; `make deploy-check` also runs hadolint on them): several stages, base images
pinned to a release tag, requirements.lock as what gets installed, a non-root user, a healthcheck,
and `ragloop` as the entrypoint so `docker run IMAGE worker ROLE` runs any role."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "deploy/docker/Dockerfile", ROOT / "deploy/docker/Dockerfile.gpu"]


@dataclass
class Instruction:
    keyword: str
    arguments: str


def instructions(path: Path) -> list[Instruction]:
    """Dockerfile instructions, continuation lines joined and comments dropped."""
    logical, parts = [], []
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        parts.append(line.rstrip().removesuffix("\\"))
        if not line.rstrip().endswith("\\"):
            logical.append(" ".join(p.strip() for p in parts))
            parts = []
    return [Instruction(*[*text.split(None, 1), ""][:2]) for text in logical]


def stages(path: Path) -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for instruction in instructions(path):
        if instruction.keyword.upper() == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def base_images(path: Path) -> list[str]:
    args = {m[1]: m[2] for m in re.finditer(r"^ARG (\w+)=(\S+)$", path.read_text(), flags=re.MULTILINE)}
    images = []
    for stage in stages(path):
        image = stage[0].arguments.split()[0]
        images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], image))
    return images


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_base_image_is_pinned_to_a_release_tag(path: Path) -> None:
    images = base_images(path)
    assert len(images) >= 3  # uv, build, runtime: multi-stage
    for image in images:
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{path.name}: {image} is not pinned to a release tag"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_the_runtime_stage_runs_ragloop_as_a_numeric_non_root_user_with_a_healthcheck(path: Path) -> None:
    runtime = stages(path)[-1]
    keywords = {i.keyword.upper(): i.arguments for i in runtime}
    user = [i.arguments for i in runtime if i.keyword.upper() == "USER"][-1]
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", user), f"USER {user} must be a numeric, non-root uid"
    assert json.loads(keywords["ENTRYPOINT"]) == ["ragloop"]
    assert "CMD" in keywords["HEALTHCHECK"] and "healthcheck.py" in keywords["HEALTHCHECK"]
    assert "RAGLOOP_WORKERS_HEALTH_PORT=8080" in keywords["ENV"]  # what the healthcheck and the chart's probes ask
    assert not [i for i in runtime if i.keyword.upper() == "RUN" and "pip install" in i.arguments]  # nothing installed here


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_the_build_installs_requirements_lock_and_nothing_unpinned(path: Path) -> None:
    build = stages(path)[1]
    copies = " ".join(i.arguments for i in build if i.keyword.upper() == "COPY")
    assert "requirements.lock" in copies
    installs = [i.arguments for i in build if i.keyword.upper() == "RUN" and "pip install" in i.arguments]
    text = " ".join(installs)
    assert "requirements.lock" in text and " -r " in text
    for command in re.split(r"&&", text):
        if "pip install" in command and " -r " not in command:
            # only ragloop itself (`.`, no deps) or a line taken from the lock
            assert "--no-deps" in command and ("." in command.split() or "requirements.lock" in command), command


def test_the_healthcheck_script_asks_the_worker_and_the_gateway_port() -> None:
    script = (ROOT / "deploy/docker/healthcheck.py").read_text()
    assert "RAGLOOP_WORKERS_HEALTH_PORT" in script and "RAGLOOP_API_PORT" in script and "/healthz" in script
