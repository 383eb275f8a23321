"""One entry point for every training recipe: the recipe's `recipe:` key picks the trainer, so a
DeepSpeed run is a YAML change, never a code branch in the caller. Every trainer writes the same
PEFT adapter folder, so the gate, the registry and the engines cannot tell which one made it.

- ``lora-peft`` (``trainers/lora_cpu.py``): PEFT in this process;
- ``lora-deepspeed`` (``trainers/deepspeed_lora.py``): DeepSpeed ZeRO-2/3 in its own process group
  started by torchrun (``trainers/deepspeed_launch.py``); a failure raises ``TrainingFailed``.
"""

from __future__ import annotations

from pathlib import Path

from trainers.dataset import TrainingExample
from trainers.deepspeed_launch import TrainingFailed, train_deepspeed
from trainers.lora_cpu import TrainReport, train_lora
from trainers.recipe import LoraRecipe

__all__ = ["TrainReport", "TrainingFailed", "train_adapter"]


def train_adapter(base_model_path: Path, examples: list[TrainingExample], recipe: LoraRecipe, output_dir: Path, *,
                  progress: bool = True) -> TrainReport:
    """Train a LoRA adapter on `examples` into `output_dir` with the trainer `recipe.recipe` names."""
    if recipe.recipe == "lora-deepspeed":
        return train_deepspeed(base_model_path, examples, recipe, output_dir, progress=progress)
    return train_lora(base_model_path, examples, recipe, output_dir, progress=progress)
