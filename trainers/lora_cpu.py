"""LoRA fine-tuning on CPU: setup, loop, checkpoint and metrics in one readable file.

The recipe (``trainers/configs/lora_cpu.yaml``) decides everything tunable; this file decides
nothing but the order of things. It writes a PEFT adapter folder that
``TransformersEngine.load_adapter`` (and vLLM) can serve::

    recipe = LoraRecipe.from_yaml(DEFAULT_CPU_RECIPE)
    report = train_lora(ensure_smollm2(), examples, recipe, Path("adapters/facts-v1"))
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from trainers.dataset import TrainingExample, tokenize_example
from trainers.lora_common import (
    TrainReport,
    accumulated_step,
    batches,
    lora_config,
    lr_lambda,
    memorised,
    save_adapter,
    write_report,
)
from trainers.recipe import LoraRecipe

__all__ = ["TrainReport", "train_lora"]


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
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(recipe.seed)

    tokenizer = AutoTokenizer.from_pretrained(base_model_path)
    model = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=torch.float32)
    model.config.use_cache = False  # the KV cache only costs memory during training
    peft_model = get_peft_model(model, lora_config(recipe))
    peft_model.train()

    rows = [tokenize_example(tokenizer, ex, recipe.max_seq_len) for ex in examples]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch_size = min(recipe.batch_size, len(rows))

    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(recipe))

    # ---- loop ----------------------------------------------------------------------------
    losses: list[float] = []
    last_loss: dict[int, float] = {}  # example index -> its loss the last time it was in a batch
    loop_started = time.perf_counter()
    bar = tqdm(total=recipe.max_steps, desc="lora", unit="step", disable=not progress)
    for _, picked in zip(range(recipe.max_steps), batches(len(rows), batch_size, recipe.seed)):
        loss, row_losses = accumulated_step(peft_model, [rows[i] for i in picked], pad_id, recipe.micro_batch_size)
        if recipe.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(trainable, recipe.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        losses.append(loss)
        last_loss.update(zip(picked, row_losses))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", worst=f"{max(last_loss.values()):.4f}")
        if memorised(recipe, last_loss, len(rows)):
            break  # every example is memorised; more steps only cost time
    bar.close()
    step_seconds = (time.perf_counter() - loop_started) / len(losses)

    # ---- checkpoint ----------------------------------------------------------------------
    save_adapter(peft_model, output_dir)
    report = TrainReport(
        steps=len(losses),
        losses=losses,
        final_loss=losses[-1],
        seconds=time.perf_counter() - started,
        step_seconds=step_seconds,
        adapter_path=output_dir,
        examples=len(examples),
    )
    write_report(report, recipe)
    print(
        f"trained {report.steps} steps, {report.step_seconds:.2f} s/step, {report.seconds:.1f}s in all; "
        f"final loss {report.final_loss:.4f}",
        flush=True,
    )
    return report
