"""Content-addressed adapters in a store every host can reach (minimal local-folder version; h1 owns
the full one with S3 — this file is a stand-in so the trainer can run before that is merged).

    digest = adapter_digest(folder)              # sha256 over the weight and config files
    version = version_id(family, digest)         # "<family>@lora-<digest[:12]>"
    uri = store.put(version, folder)             # file://<home>/artifacts/<version>
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

VERSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*@(base|lora-[0-9a-f]{12})$")
NOT_WEIGHTS = frozenset({"train_report.json"})  # timings differ run to run; the digest covers what the engine loads


def adapter_digest(folder: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in NOT_WEIGHTS):
        sha.update(path.relative_to(folder).as_posix().encode() + b"\x00")
        sha.update(path.read_bytes())
    return sha.hexdigest()


def version_id(family: str, digest: str) -> str:
    return f"{family}@lora-{digest[:12]}"


class ArtifactStore(Protocol):
    def put(self, version: str, folder: Path) -> str: ...

    def fetch(self, uri: str, version: str) -> Path: ...


class LocalArtifacts:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, version: str, folder: Path) -> str:
        if not VERSION_ID.match(version):
            raise ValueError(f"not a version id: {version!r}")
        target = self.root / version
        if not target.exists():
            shutil.copytree(folder, target)
        return target.resolve().as_uri()

    def fetch(self, uri: str, version: str) -> Path:
        return Path(unquote(urlparse(uri).path))


def open_artifact_store(url: str | None, *, home: Path) -> ArtifactStore:
    if url is None:
        return LocalArtifacts(home / "artifacts")
    if url.startswith("file://"):
        return LocalArtifacts(Path(urlparse(url).path))
    raise ValueError(f"artifact store {url!r}: only file:// in this stand-in")
