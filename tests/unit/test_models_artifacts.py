"""Content-addressed adapters: the id names the weights, a store round-trips them verified, and nothing
(a bad id, a doctored manifest) makes it write outside its folders. The S3 store is driven through the
real minio client against a small S3 double (tests/s3_double.py) at the HTTP edge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from models.artifacts import (
    MANIFEST,
    ArtifactError,
    LocalArtifactStore,
    S3ArtifactStore,
    adapter_digest,
    check_version,
    open_artifact_store,
    version_id,
)
from schemas.events import ChatOptions, ModelUpdated, TrainRequest, VersionId
from tests.s3_double import S3Double, s3_double


def adapter(folder: Path, weights: bytes = b"weights", report: str = '{"seconds": 1.0}') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "train_report.json").write_text(report)
    (folder / "README.md").write_text("model card")
    return folder


def test_the_digest_names_the_weights_not_the_report(tmp_path: Path) -> None:
    one = adapter_digest(adapter(tmp_path / "a", report='{"seconds": 1.0}'))
    assert one == adapter_digest(adapter(tmp_path / "b", report='{"seconds": 2.5}'))
    assert one != adapter_digest(adapter(tmp_path / "c", weights=b"other weights"))
    assert version_id("smollm2", one) == f"smollm2@lora-{one[:12]}"


@pytest.mark.parametrize("bad", ["../../etc", "a/b", "..", "smollm2@lora-x/../../y", ".hidden", "-rf", "a..b", "a@b@c", "", "a b",
                                 "x" * 201])
def test_a_version_id_cannot_name_another_folder(bad: str) -> None:
    with pytest.raises(ArtifactError, match="not a model version id"):
        check_version(bad)
    with pytest.raises(ValidationError):
        TypeAdapter(VersionId).validate_python(bad)


@pytest.mark.parametrize("good", ["smollm2-135m-instruct@base", "smollm2-135m-instruct@lora-0123456789ab", "qwen2.5-0.5b@base",
                                  "smollm2-135m-instruct-lora-9f8e7d6c5b4a"])
def test_real_version_ids_pass(good: str) -> None:
    assert check_version(good) == good
    assert TypeAdapter(VersionId).validate_python(good) == good


def test_no_event_carries_a_path_as_a_version() -> None:
    with pytest.raises(ValidationError, match="version"):
        ModelUpdated(model_family="f", version="../../etc", adapter_path=None, state="active")
    with pytest.raises(ValidationError, match="model_version"):
        ChatOptions(model_version="../adapters/x")
    with pytest.raises(ValidationError, match="model_family"):
        TrainRequest(model_family="../../tmp/x", reason="a family names folders too")


def test_local_store_round_trip_is_verified_and_cached(tmp_path: Path) -> None:
    source = adapter(tmp_path / "trained")
    version = version_id("fam", adapter_digest(source))
    store = open_artifact_store(None, home=tmp_path / "home")
    assert isinstance(store, LocalArtifactStore) and store.root == tmp_path / "home" / "artifacts"
    uri = store.put(version, source)
    assert uri == (tmp_path / "home" / "artifacts" / version).resolve().as_uri()
    assert sorted(p.name for p in (tmp_path / "home" / "artifacts" / version).iterdir()) == \
        sorted([MANIFEST, "adapter_config.json", "adapter_model.safetensors", "train_report.json"])  # not README.md
    # another host: its own home, the same shared folder named by URL
    other = open_artifact_store(store.root.as_uri(), home=tmp_path / "host2")
    fetched = other.fetch(uri, version)
    assert fetched == tmp_path / "host2" / "artifact-cache" / version
    assert adapter_digest(fetched) == adapter_digest(source)
    assert other.fetch(uri, version) == fetched


def test_put_refuses_weights_that_do_not_match_the_id(tmp_path: Path) -> None:
    store = open_artifact_store(None, home=tmp_path)
    with pytest.raises(ArtifactError, match="does not name these weights"):
        store.put("fam@lora-000000000000", adapter(tmp_path / "a"))
    with pytest.raises(ArtifactError, match="no adapter files"):
        store.put("fam@base", tmp_path / "missing")


def test_fetch_refuses_altered_files(tmp_path: Path) -> None:
    source = adapter(tmp_path / "trained")
    version = version_id("fam", adapter_digest(source))
    store = open_artifact_store(None, home=tmp_path / "home")
    uri = store.put(version, source)
    (tmp_path / "home" / "artifacts" / version / "adapter_model.safetensors").write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="hash to"):
        store.fetch(uri, version)
    assert not (tmp_path / "home" / "artifact-cache" / version).exists()


def test_a_doctored_manifest_cannot_write_outside_the_cache(tmp_path: Path) -> None:
    source = adapter(tmp_path / "trained")
    version = version_id("fam", adapter_digest(source))
    store = open_artifact_store(None, home=tmp_path / "home")
    uri = store.put(version, source)
    manifest_path = tmp_path / "home" / "artifacts" / version / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "extras": ["../../escaped.json"]}))
    with pytest.raises(ArtifactError, match="not a plain file name"):
        store.fetch(uri, version)
    assert not list(tmp_path.rglob("escaped.json"))
    with pytest.raises(ArtifactError, match="not a model version id"):
        store.fetch(uri, "../../etc")
    with pytest.raises(ArtifactError, match="last path segment"):
        store.fetch(uri, "fam@lora-ffffffffffff")


def test_unknown_schemes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="file:///path or s3://"):
        open_artifact_store("ftp://host/x", home=tmp_path)


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    with s3_double() as endpoint:
        yield endpoint


def test_s3_store_round_trip_through_minio(tmp_path: Path, s3_endpoint: str) -> None:
    source = adapter(tmp_path / "trained")
    version = version_id("fam", adapter_digest(source))
    trainer = open_artifact_store("s3://adapters/prod", home=tmp_path / "trainer", endpoint=s3_endpoint, access_key="ak", secret_key="sk")
    assert isinstance(trainer, S3ArtifactStore)
    uri = trainer.put(version, source)
    assert uri == f"s3://adapters/prod/{version}"
    assert f"/adapters/prod/{version}/adapter_model.safetensors" in S3Double.objects
    agent = open_artifact_store("s3://adapters/prod", home=tmp_path / "agent", endpoint=s3_endpoint, access_key="ak", secret_key="sk")
    fetched = agent.fetch(uri, version)
    assert fetched == tmp_path / "agent" / "artifact-cache" / version
    assert (fetched / "adapter_model.safetensors").read_bytes() == b"weights"
    with pytest.raises(ArtifactError, match="NoSuchKey"):
        agent.fetch("s3://adapters/elsewhere/fam@base", "fam@base")
