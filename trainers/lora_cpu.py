"""LoRA fine-tuning on CPU: setup, loop, checkpoint and metrics in one readable file.

The recipe (``trainers/configs/lora_cpu.yaml``) decides everything tunable; this file decides
nothing but the order of things. It writes a PEFT adapter folder that
``TransformersEngine.load_adapter`` (and vLLM) can serve::

    recipe = LoraRecipe.from_yaml(DEFAULT_CPU_RECIPE)
    report = train_lora(ensure_smollm2(), examples, recipe, Path("adapters/facts-v1"))
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from tqdm.auto import tqdm

from trainers.dataset import IGNORE_INDEX, TrainingExample, tokenize_example
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


def train_lora(
    base_model_path: Path,
    examples: list[TrainingExample],
    recipe: LoraRecipe,
    output_dir: Path,
    *,
    progress: bool = True,
) -> TrainReport:
    """Train a LoRA adapter on ``examples`` and save it (PEFT format) to ``output_dir``."""
    threads_before = torch.get_num_threads()  # process-global: restore it for the caller
    if recipe.num_threads is not None:
        torch.set_num_threads(recipe.num_threads)
    try:
        return _train(Path(base_model_path), examples, recipe, Path(output_dir), progress)
    finally:
        torch.set_num_threads(threads_before)


def _train(
    base_model_path: Path,
    examples: list[TrainingExample],
    recipe: LoraRecipe,
    output_dir: Path,
    progress: bool,
) -> TrainReport:
    if not examples:
        raise ValueError("train_lora needs at least one TrainingExample")
    print(f"LoRA recipe for {base_model_path.name} on {len(examples)} examples:")
    print(recipe.to_yaml(), flush=True)
    started = time.perf_counter()

    # ---- setup ---------------------------------------------------------------------------
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)

    tokenizer = AutoTokenizer.from_pretrained(base_model_path)
    model = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=torch.float32)
    model.config.use_cache = False  # the KV cache only costs memory during training
    lora = LoraConfig(
        r=recipe.rank,
        lora_alpha=recipe.alpha,  # type: ignore[arg-type]  # peft scales by lora_alpha / r: a float is fine
        lora_dropout=recipe.dropout,
        target_modules=recipe.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    peft_model.train()

    rows = [tokenize_example(tokenizer, ex, recipe.max_seq_len) for ex in examples]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch_size = min(recipe.batch_size, len(rows))

    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(recipe))

    # ---- loop ----------------------------------------------------------------------------
    losses: list[float] = []
    last_loss: dict[int, float] = {}  # example index -> its loss the last time it was in a batch
    order: list[int] = []
    loop_started = time.perf_counter()
    bar = tqdm(total=recipe.max_steps, desc="lora", unit="step", disable=not progress)
    for _ in range(recipe.max_steps):
        if len(order) < batch_size:  # reshuffle once the current pass is used up
            order += rng.sample(range(len(rows)), len(rows))
        picked = order[:batch_size]
        del order[:batch_size]
        batch = _collate([rows[i] for i in picked], pad_id)

        output = peft_model(**batch)
        loss = output.loss
        loss.backward()
        if recipe.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(trainable, recipe.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        losses.append(float(loss.detach()))
        for i, row_loss in zip(picked, _per_example_loss(output.logits.detach(), batch["labels"])):
            last_loss[i] = row_loss
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", worst=f"{max(last_loss.values()):.4f}")
        if recipe.stop_loss is not None and len(last_loss) == len(rows) and max(last_loss.values()) < recipe.stop_loss:
            break  # every example is memorised; more steps only cost time
    bar.close()
    step_seconds = (time.perf_counter() - loop_started) / len(losses)

    # ---- checkpoint ----------------------------------------------------------------------
    output_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(output_dir))
    report = TrainReport(
        steps=len(losses),
        losses=losses,
        final_loss=losses[-1],
        seconds=time.perf_counter() - started,
        step_seconds=step_seconds,
        adapter_path=output_dir,
        examples=len(examples),
    )
    (output_dir / "train_report.json").write_text(
        json.dumps({"report": report.model_dump(mode="json"), "recipe": recipe.model_dump()}, indent=2)
    )
    print(
        f"trained {report.steps} steps, {report.step_seconds:.2f} s/step, {report.seconds:.1f}s in all; "
        f"final loss {report.final_loss:.4f}",
        flush=True,
    )
    return report


def _collate(rows: list[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padded positions are masked out of attention and loss."""
    width = max(len(r["input_ids"]) for r in rows)
    batch: dict[str, Any] = {"input_ids": [], "attention_mask": [], "labels": []}
    for r in rows:
        pad = width - len(r["input_ids"])
        batch["input_ids"].append(r["input_ids"] + [pad_id] * pad)
        batch["attention_mask"].append(r["attention_mask"] + [0] * pad)
        batch["labels"].append(r["labels"] + [IGNORE_INDEX] * pad)
    return {k: torch.tensor(v) for k, v in batch.items()}


def _per_example_loss(logits: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Mean next-token loss of each row over its target tokens (the stopping signal)."""
    shifted = labels[:, 1:]
    token_loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2).float(), shifted, ignore_index=IGNORE_INDEX, reduction="none"
    )
    counts = (shifted != IGNORE_INDEX).sum(dim=1).clamp(min=1)
    return (token_loss.sum(dim=1) / counts).tolist()


def _lr_lambda(recipe: LoraRecipe) -> Callable[[int], float]:
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
