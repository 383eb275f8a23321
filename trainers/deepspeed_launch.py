"""Starts the `lora-deepspeed` trainer as its own process group and follows it.

The caller gets what ``train_lora`` gives (a ``TrainReport``, the adapter folder written) or a
``TrainingFailed`` carrying the last lines of the log: a crash, a NaN loss and a killed process
all end there, never in a half-written adapter that looks fine. The job (examples, recipe, paths)
travels as one JSON file; per-step losses come back on stdout as ``@@ragloop-step`` lines.

torchrun is the launcher on every host: ``--nproc_per_node=recipe.num_processes`` processes, gloo on
CPU (``DS_ACCELERATOR=cpu``), NCCL when CUDA is there. DeepSpeed compiles its few C++ ops on first use
into ``TORCH_EXTENSIONS_DIR`` (default ``~/.cache/ragloop/torch_extensions``), so later runs reuse them.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import torch
from tqdm.auto import tqdm

from trainers.dataset import TrainingExample
from trainers.deepspeed_lora import STEP_MARK, DeepSpeedJob
from trainers.lora_common import TrainReport, write_report
from trainers.recipe import LoraRecipe

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]
TAIL_LINES = 40


class TrainingFailed(RuntimeError):
    """The training process ended without an adapter; the message ends with its log's tail."""

    def __init__(self, reason: str, tail: list[str]) -> None:
        super().__init__(reason + ("\n--- last lines of the training log ---\n" + "\n".join(tail) if tail else ""))
        self.reason, self.tail = reason, tail


def launch_command(recipe: LoraRecipe, job_path: Path, *, gpu: bool) -> list[str]:
    """torchrun on a free local port with one process per `num_processes`, under `env` with the variables
    DeepSpeed needs added to the inherited environment (this module never reads the environment itself:
    only schemas/settings.py does)."""
    return [
        "env", *(f"{name}={value}" for name, value in launch_env(gpu=gpu).items()),
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={recipe.num_processes}",
        "-m", "trainers.deepspeed_lora", "--job", str(job_path),
    ]


def launch_env(*, gpu: bool) -> dict[str, str]:
    """What the training processes need on top of the inherited environment: the accelerator DeepSpeed must not
    guess, this checkout first on the import path (a worktree or an unpacked source tree), unbuffered lines."""
    return {"DS_ACCELERATOR": "cuda" if gpu else "cpu", "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}


def train_deepspeed(
    base_model_path: Path,
    examples: list[TrainingExample],
    recipe: LoraRecipe,
    output_dir: Path,
    *,
    progress: bool = True,
) -> TrainReport:
    """Train a LoRA adapter under DeepSpeed ZeRO in a child process group; same result shape as train_lora."""
    if not examples:
        raise ValueError("train_deepspeed needs at least one TrainingExample")
    started = time.perf_counter()
    output_dir = Path(output_dir).resolve()
    gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="ragloop-deepspeed-") as tmp:
        job_path = Path(tmp) / "job.json"
        job = DeepSpeedJob(base_model_path=Path(base_model_path).resolve(), examples=examples, recipe=recipe,
                           output_dir=output_dir)
        job_path.write_text(job.model_dump_json())
        tail = _run(launch_command(recipe, job_path, gpu=gpu), recipe.max_steps, progress)
    saved = output_dir / "train_report.json"
    if not (output_dir / "adapter_model.safetensors").exists() or not saved.exists():
        raise TrainingFailed("the training process exited cleanly but wrote no adapter", tail)
    report = TrainReport.model_validate(json.loads(saved.read_text())["report"])
    report = report.model_copy(update={"seconds": time.perf_counter() - started})  # launch and imports count too
    write_report(report, recipe)
    print(f"deepspeed: {report.steps} steps, {report.step_seconds:.2f} s/step, {report.seconds:.1f}s in all; "
          f"final loss {report.final_loss:.4f}", flush=True)
    return report


def _run(command: list[str], max_steps: int, progress: bool) -> list[str]:
    """Run the process group to its end, following its steps; raise TrainingFailed unless it exits 0."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    bar = tqdm(total=max_steps, desc="lora-deepspeed", unit="step", disable=not progress)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO_ROOT, start_new_session=True)  # its own group: one kill ends every rank
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith(STEP_MARK):
                step = json.loads(line[len(STEP_MARK):])
                bar.update(1)
                bar.set_postfix(loss=f"{step['loss']:.4f}", worst=f"{step['worst']:.4f}")
                continue
            tail.append(line)
            log.debug("deepspeed: %s", line)
        code = proc.wait()
    finally:
        bar.close()
        if proc.poll() is None:  # the caller gave up (an exception, Ctrl-C): take every rank down with it
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if code < 0:
        raise TrainingFailed(f"the training process was killed by {signal.Signals(-code).name}", list(tail))
    if code != 0:
        reason = next((t for t in reversed(tail) if "FloatingPointError" in t or "Signal" in t), None)
        raise TrainingFailed(f"the training process exited with {code}" + (f": {reason.strip()}" if reason else ""),
                             list(tail))
    return list(tail)
