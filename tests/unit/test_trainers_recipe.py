"""trainers.recipe: LoRA configuration is data, checked in and validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trainers.recipe import DEFAULT_CPU_RECIPE, LoraRecipe


def test_checked_in_cpu_recipe_loads_the_tuned_values():
    """The values tuned in lora_cpu.yaml (see its comments) are what a run gets; its max_steps (40)
    differs from the class default, so this also shows the file was read."""
    recipe = LoraRecipe.from_yaml(DEFAULT_CPU_RECIPE)
    assert recipe == LoraRecipe(
        rank=16, alpha=32.0, dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        learning_rate=2e-3, weight_decay=0.0, warmup_steps=0, lr_schedule="constant", max_grad_norm=1.0,
        max_steps=40, batch_size=8, max_seq_len=1024, seed=0, stop_loss=0.05, num_threads=None,
    )
    assert recipe.max_steps != LoraRecipe().max_steps


def test_yaml_round_trips(tmp_path):
    recipe = LoraRecipe(rank=4, learning_rate=1e-3)
    path = tmp_path / "r.yaml"
    path.write_text(recipe.to_yaml())
    assert LoraRecipe.from_yaml(path) == recipe


def test_unknown_key_is_rejected(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("rnak: 8\n")
    with pytest.raises(ValidationError, match="rnak"):
        LoraRecipe.from_yaml(path)
