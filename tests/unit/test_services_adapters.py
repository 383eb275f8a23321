"""Services.adapter_for: a version's adapter comes from the artifact store (or a legacy row's folder),
is looked up once, and loads into the engine under the version id. The engine is a recorder (the real
engines' loading is tested in test_models_*_engine.py); the registry is real."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.settings import Settings
from schemas.tables import ModelVersionRecord
from streams.services import Services
from streams.stores import Stores


class RecordingEngine:
    def __init__(self) -> None:
        self.loads: list[tuple[str, Path]] = []

    def load_adapter(self, name: str, path: Path) -> None:
        self.loads.append((name, path))


class FolderStore:
    """What `Services.artifacts` offers the agent: fetch(uri, version) → a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fetched: list[tuple[str, str]] = []

    def fetch(self, uri: str, version: str) -> Path:
        self.fetched.append((uri, version))
        return self.root / version


@pytest.fixture
def services(settings: Settings, tmp_path: Path) -> Services:
    services = Services(settings, Stores.from_settings(settings))
    services.__dict__["engine"] = RecordingEngine()  # cached_property slots: no model is loaded
    services.__dict__["artifacts"] = FolderStore(tmp_path / "cache")
    return services


def register(services: Services, version: str, **fields: str) -> None:
    services.stores.registry.register_candidate(ModelVersionRecord(version=version, family="fam", tenant="acme", **fields),
                                                actor="cli", reason="test")


def test_an_adapter_comes_from_the_artifact_store_once_and_loads_under_its_version(services, tmp_path):
    register(services, "fam@lora-0123456789ab", artifact_uri="s3://bucket/fam@lora-0123456789ab")
    assert services.adapter_for("fam@lora-0123456789ab") == "fam@lora-0123456789ab"
    assert services.adapter_for("fam@lora-0123456789ab") == "fam@lora-0123456789ab"
    assert services.artifacts.fetched == [("s3://bucket/fam@lora-0123456789ab", "fam@lora-0123456789ab")]  # type: ignore[attr-defined]
    folder = tmp_path / "cache" / "fam@lora-0123456789ab"
    assert services.engine.loads == [("fam@lora-0123456789ab", folder)] * 2  # type: ignore[attr-defined]  # marks it used (LRU)


def test_a_legacy_version_loads_from_its_folder(services, tmp_path):
    register(services, "fam-lora-legacy", adapter_path=str(tmp_path / "adapters" / "legacy"))
    assert services.adapter_for("fam-lora-legacy") == "fam-lora-legacy"
    assert services.engine.loads == [("fam-lora-legacy", tmp_path / "adapters" / "legacy")]  # type: ignore[attr-defined]
    assert services.artifacts.fetched == []  # type: ignore[attr-defined]


def test_the_base_version_is_the_base_weights_and_an_unknown_one_an_error(services):
    base = services.stores.registry.ensure_base_version("fam").version
    assert services.adapter_for(base) is None
    with pytest.raises(LookupError, match="fam@lora-ffffffffffff"):
        services.adapter_for("fam@lora-ffffffffffff")
    assert services.engine.loads == []  # type: ignore[attr-defined]
