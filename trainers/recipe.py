"""What a LoRA training run is configured with: data, checked in as YAML and printed at start.

``trainers/configs/lora_cpu.yaml`` holds the defaults tuned to teach a handful of short facts
to SmolLM2-135M on a CPU in as few optimizer steps as possible::

    recipe = LoraRecipe.from_yaml(DEFAULT_CPU_RECIPE)
    recipe = recipe.model_copy(update={"max_steps": 10})   # a variation is still data
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CONFIGS = Path(__file__).parent / "configs"
DEFAULT_CPU_RECIPE = CONFIGS / "lora_cpu.yaml"
DEEPSPEED_RECIPE = CONFIGS / "lora_deepspeed.yaml"  # ZeRO-2; lora_deepspeed_zero3.yaml partitions parameters too


class LoraRecipe(BaseModel):
    """Hyper-parameters of one LoRA fine-tune (PEFT ``LoraConfig`` + optimizer + loop)."""

    model_config = ConfigDict(extra="forbid")  # a typo in a YAML key must fail loudly

    # which trainer runs it (trainers/train.py); every recipe writes the same PEFT adapter format
    recipe: Literal["lora-peft", "lora-deepspeed"] = "lora-peft"
    # adapter shape
    rank: int = Field(default=16, ge=1)
    alpha: float = Field(default=32.0, gt=0)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    # optimisation
    learning_rate: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_steps: int = Field(default=0, ge=0)
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    # loop
    max_steps: int = Field(default=20, ge=1)
    batch_size: int = Field(default=8, ge=1)
    # rows per forward/backward within a step (lora-peft): the gradients are the whole batch's, memory is
    # this many rows' activations and logits
    micro_batch_size: int = Field(default=2, ge=1)
    max_seq_len: int = Field(default=1024, ge=8)
    seed: int = 0
    # Stop early once every example's loss (at its latest visit) is below this: further steps
    # only cost time once each target is memorised. None always trains max_steps.
    stop_loss: float | None = Field(default=0.05, gt=0)
    num_threads: int | None = Field(default=None, ge=1)  # torch CPU threads; None = torch default
    # lora-deepspeed only (trainers/deepspeed_lora.py): the DeepSpeed JSON (ZeRO stage, offload, precision),
    # relative to trainers/configs unless absolute, and how many processes torchrun starts (one per GPU;
    # on a CPU-only host 1 is the useful value: ranks there split the same cores).
    deepspeed_config: Path = Path("ds_zero2.json")
    num_processes: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _deepspeed_config_exists(self) -> LoraRecipe:
        if self.recipe == "lora-deepspeed" and not self.deepspeed_config_path.is_file():
            raise ValueError(
                f"deepspeed_config {str(self.deepspeed_config)!r} is not a file (looked at {self.deepspeed_config_path}); "
                f"name one of trainers/configs/ds_*.json or give an absolute path"
            )
        return self

    @property
    def deepspeed_config_path(self) -> Path:
        return self.deepspeed_config if self.deepspeed_config.is_absolute() else CONFIGS / self.deepspeed_config

    @classmethod
    def from_yaml(cls, path: Path | str) -> LoraRecipe:
        path = Path(path)
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a recipe must be a YAML mapping of field: value")
        return cls.model_validate(data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
