"""LoRA under DeepSpeed ZeRO (stage 2 or 3): the `lora-deepspeed` recipe's training process.

It runs as its own process group, started by ``trainers/deepspeed_launch.py`` through torchrun::

    python -m torch.distributed.run --standalone --nproc_per_node=N -m trainers.deepspeed_lora --job job.json

and shares everything but the step with ``lora_cpu`` (``trainers/lora_common.py``): the same
tokenisation and loss masking, the same LoRA init (same seed), the same batch order, the same stop
rule, the same PEFT adapter folder and ``train_report.json``. The gate, the registry and the engines
cannot tell which recipe made an adapter. On a host without CUDA it runs on CPU over gloo
(``DS_ACCELERATOR=cpu``); with GPUs one rank per GPU over NCCL.

Rank 0 prints one ``@@ragloop-step {json}`` line per optimizer step for the launcher to follow.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from pathlib import Path

import torch
from pydantic import BaseModel

from trainers.dataset import TrainingExample, tokenize_example
from trainers.lora_common import (
    TrainReport,
    batches,
    collate,
    lora_config,
    lr_lambda,
    memorised,
    row_means,
    save_adapter,
    target_tokens,
    token_losses,
    write_report,
)
from trainers.recipe import LoraRecipe

STEP_MARK = "@@ragloop-step "


class DeepSpeedJob(BaseModel):
    """Everything the training process needs, handed over as one JSON file."""

    base_model_path: Path
    examples: list[TrainingExample]
    recipe: LoraRecipe
    output_dir: Path


def deepspeed_config(recipe: LoraRecipe, world_size: int) -> dict:
    """The recipe's DeepSpeed JSON with what the recipe decides filled in: batch sizes and clipping."""
    config = json.loads(recipe.deepspeed_config_path.read_text())
    micro = max(1, math.ceil(recipe.batch_size / world_size))
    config.update(train_micro_batch_size_per_gpu=micro, gradient_accumulation_steps=1, train_batch_size=micro * world_size)
    if recipe.max_grad_norm is not None:
        config["gradient_clipping"] = recipe.max_grad_norm
    return config


def train(job: DeepSpeedJob) -> TrainReport | None:
    """Train on every rank; rank 0 saves the adapter and returns the report (others return None)."""
    import deepspeed  # type: ignore[import-untyped]  # ships no stubs
    import torch.distributed as dist
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe, examples = job.recipe, job.examples
    if not examples:
        raise ValueError("the deepspeed trainer needs at least one TrainingExample")
    if recipe.num_threads is not None:
        torch.set_num_threads(recipe.num_threads)
    started = time.perf_counter()
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if rank == 0:
        print(f"LoRA recipe for {job.base_model_path.name} on {len(examples)} examples, {world} process(es):")
        print(recipe.to_yaml(), flush=True)

    # ---- setup (same order and seed as lora_cpu: the same LoRA init) ---------------------
    torch.manual_seed(recipe.seed)
    tokenizer = AutoTokenizer.from_pretrained(job.base_model_path)
    model = AutoModelForCausalLM.from_pretrained(job.base_model_path, dtype=torch.float32)
    model.config.use_cache = False
    peft_model = get_peft_model(model, lora_config(recipe))
    peft_model.train()

    rows = [tokenize_example(tokenizer, ex, recipe.max_seq_len) for ex in examples]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch_size = min(recipe.batch_size, len(rows))
    config = deepspeed_config(recipe.model_copy(update={"batch_size": batch_size}), world)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(recipe))
    engine, _, _, _ = deepspeed.initialize(
        model=peft_model, optimizer=optimizer, lr_scheduler=scheduler, config=config
    )

    # ---- loop ----------------------------------------------------------------------------
    losses: list[float] = []
    last_loss: dict[int, float] = {}
    loop_started = time.perf_counter()
    for step, picked in zip(range(1, recipe.max_steps + 1), batches(len(rows), batch_size, recipe.seed)):
        # This rank's slice of the step's batch; a rank left without rows runs one with zero weight (every rank
        # must take part in the step's collectives) and adds nothing to the loss or the gradients.
        shard, weight = (picked[rank::world], 1.0) if picked[rank::world] else (picked[:1], 0.0)
        targets = target_tokens([rows[i] for i in picked])
        batch = {k: v.to(engine.device) for k, v in collate([rows[i] for i in shard], pad_id).items()}
        logits = engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        token_loss = token_losses(logits, batch["labels"])
        # The step's loss is the token mean over the whole batch, as lora_cpu takes it: each rank divides its
        # token sum by the batch's target count, times `world` because DeepSpeed averages the ranks' gradients.
        engine.backward(token_loss.sum() / targets * world * weight)
        engine.step()  # clips, steps the optimizer and the LR schedule, zeroes the gradients

        mine = (float(token_loss.detach().sum()) * weight, list(zip(shard, row_means(token_loss, batch["labels"]))) if weight else [])
        everyone: list = [None] * world
        dist.all_gather_object(everyone, mine)  # every rank takes the same stop decision
        loss = sum(r[0] for r in everyone) / targets
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss is {loss} at step {step}: lower learning_rate in the recipe")
        losses.append(loss)
        for r in everyone:
            last_loss.update(r[1])
        if rank == 0:
            print(STEP_MARK + json.dumps({"step": step, "loss": loss, "worst": max(last_loss.values())}), flush=True)
        if memorised(recipe, last_loss, len(rows)):
            break
    step_seconds = (time.perf_counter() - loop_started) / len(losses)

    # ---- checkpoint: ZeRO-3 holds a slice of each parameter per rank; gather the LoRA ones to save
    stage = config.get("zero_optimization", {}).get("stage", 0)
    gathered = (
        deepspeed.zero.GatheredParameters([p for p in engine.module.parameters() if p.requires_grad])
        if stage == 3
        else contextlib.nullcontext()
    )
    report = None
    with gathered:
        if rank == 0:
            save_adapter(engine.module, job.output_dir)
    if rank == 0:
        report = TrainReport(
            steps=len(losses), losses=losses, final_loss=losses[-1], seconds=time.perf_counter() - started,
            step_seconds=step_seconds, adapter_path=job.output_dir, examples=len(examples),
        )
        write_report(report, recipe)
        print(f"trained {report.steps} steps, {report.step_seconds:.2f} s/step; final loss {report.final_loss:.4f}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="LoRA under DeepSpeed ZeRO (started by torchrun)")
    parser.add_argument("--job", type=Path, required=True, help="DeepSpeedJob JSON written by the launcher")
    args = parser.parse_args(argv)
    train(DeepSpeedJob.model_validate_json(args.job.read_text()))


if __name__ == "__main__":
    main()
