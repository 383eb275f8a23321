"""What every LoRA trainer shares, so two recipes cannot drift apart: the adapter's PEFT config,
the batch sampling order, padding and loss masking, the stopping signal, the LR schedule and the
report written next to the adapter. ``lora_cpu`` (PEFT in-process) and ``deepspeed_lora`` (ZeRO
in its own process) differ only in how a step is taken and how the weights are gathered to save.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from trainers.dataset import IGNORE_INDEX
from trainers.recipe import LoraRecipe


class TrainReport(BaseModel):
    """What a run did; saved next to the adapter as ``train_report.json``."""

    steps: int
    losses: list[float]
    final_loss: float
    seconds: float  # wall time including model load and saving
    step_seconds: float  # mean time of one optimizer step (the number to compare recipes by)
    adapter_path: Path
    examples: int


def lora_config(recipe: LoraRecipe) -> Any:
    """The PEFT ``LoraConfig`` of `recipe`: the adapter_config.json every recipe writes."""
    from peft import LoraConfig

    return LoraConfig(
        r=recipe.rank,
        lora_alpha=recipe.alpha,  # type: ignore[arg-type]  # peft scales by lora_alpha / r: a float is fine
        lora_dropout=recipe.dropout,
        target_modules=recipe.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def save_adapter(model: Any, output_dir: Path) -> None:
    """PEFT's ``save_pretrained``, with adapter_config.json made canonical: PEFT keeps target_modules as a
    set, so its order (and the file's bytes) follows the process's string hash seed, and the content-addressed
    version id (``models.artifacts.adapter_digest``) of the same weights would differ from run to run."""
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output_dir))
    canonical_adapter_config(output_dir / "adapter_config.json")


def canonical_adapter_config(path: Path) -> None:
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def batches(n_rows: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Row indices of each step: shuffled passes over the data, the same for every recipe and seed."""
    rng = random.Random(seed)
    order: list[int] = []
    while True:
        if len(order) < batch_size:  # reshuffle once the current pass is used up
            order += rng.sample(range(n_rows), n_rows)
        yield order[:batch_size]
        del order[:batch_size]


def collate(rows: list[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padded positions are masked out of attention and loss."""
    width = max(len(r["input_ids"]) for r in rows)
    batch: dict[str, Any] = {"input_ids": [], "attention_mask": [], "labels": []}
    for r in rows:
        pad = width - len(r["input_ids"])
        batch["input_ids"].append(r["input_ids"] + [pad_id] * pad)
        batch["attention_mask"].append(r["attention_mask"] + [0] * pad)
        batch["labels"].append(r["labels"] + [IGNORE_INDEX] * pad)
    return {k: torch.tensor(v) for k, v in batch.items()}


def target_tokens(rows: list[dict[str, list[int]]]) -> int:
    """How many tokens of `rows` the loss is taken over (the labels after the first, minus the masked ones)."""
    return max(1, sum(sum(1 for label in row["labels"][1:] if label != IGNORE_INDEX) for row in rows))


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy of every position (0 where masked), in fp32: the one loss both recipes
    take, so PEFT's and DeepSpeed's curves are the same numbers, not the same maths written twice."""
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2).float(), labels[:, 1:], ignore_index=IGNORE_INDEX, reduction="none"
    )


def row_means(token_loss: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Mean loss of each row over its own target tokens (the stopping signal)."""
    counts = (labels[:, 1:] != IGNORE_INDEX).sum(dim=1).clamp(min=1)
    return (token_loss.detach().sum(dim=1) / counts).tolist()


def accumulated_step(model: Any, rows: list[dict[str, list[int]]], pad_id: int, micro_batch_size: int) -> tuple[float, list[float]]:
    """Forward and backward of one optimizer step's batch, ``micro_batch_size`` rows at a time, so memory
    follows the micro-batch: a batch of 8 RAG-shaped prompts near 1024 tokens held ~19 GB of activations
    and logits (49k vocabulary) at once and was killed for memory. The gradients are those of one pass:
    each micro-batch's summed token loss is divided by the whole batch's target-token count (the mean
    the model's own loss takes). Returns the batch's mean token loss and each row's (the stopping signal)."""
    targets = target_tokens(rows)
    summed, per_row = 0.0, []
    for start in range(0, len(rows), micro_batch_size):
        batch = collate(rows[start:start + micro_batch_size], pad_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        token_loss = token_losses(logits, batch["labels"])
        (token_loss.sum() / targets).backward()
        summed += float(token_loss.detach().sum())
        per_row += row_means(token_loss, batch["labels"])
    return summed / targets, per_row


def memorised(recipe: LoraRecipe, last_loss: dict[int, float], n_rows: int) -> bool:
    """True once every example's latest loss is under ``stop_loss``: more steps only cost time."""
    return recipe.stop_loss is not None and len(last_loss) == n_rows and max(last_loss.values()) < recipe.stop_loss


def lr_lambda(recipe: LoraRecipe) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / (recipe.warmup_steps + 1)
        if recipe.lr_schedule == "constant":
            return 1.0
        progress = (step - recipe.warmup_steps) / max(1, recipe.max_steps - recipe.warmup_steps)
        if recipe.lr_schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def write_report(report: TrainReport, recipe: LoraRecipe) -> None:
    """``train_report.json`` beside the adapter (not part of its digest: timings differ run to run)."""
    (report.adapter_path / "train_report.json").write_text(
        json.dumps({"report": report.model_dump(mode="json"), "recipe": recipe.model_dump(mode="json")}, indent=2)
    )
