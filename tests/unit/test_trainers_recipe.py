"""trainers.recipe: LoRA configuration is data, checked in and validated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from trainers.deepspeed_lora import deepspeed_config
from trainers.recipe import CONFIGS, DEEPSPEED_RECIPE, DEFAULT_CPU_RECIPE, LoraRecipe


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


def test_checked_in_deepspeed_recipes_differ_from_the_cpu_one_only_in_the_trainer():
    """Same data, adapter and stop rule: a comparison of the two recipes compares the step, nothing else."""
    cpu = LoraRecipe.from_yaml(DEFAULT_CPU_RECIPE)
    zero2 = LoraRecipe.from_yaml(DEEPSPEED_RECIPE)
    zero3 = LoraRecipe.from_yaml(CONFIGS / "lora_deepspeed_zero3.yaml")
    assert (zero2.recipe, zero2.deepspeed_config, zero2.num_processes) == ("lora-deepspeed", Path("ds_zero2.json"), 1)
    assert zero3.deepspeed_config == Path("ds_zero3.json")
    trainer_only = {"recipe", "deepspeed_config"}
    assert zero2.model_dump(exclude=trainer_only) == cpu.model_dump(exclude=trainer_only)
    assert zero3.model_dump(exclude=trainer_only) == cpu.model_dump(exclude=trainer_only)
    for recipe, stage in ((zero2, 2), (zero3, 3)):
        assert json.loads(recipe.deepspeed_config_path.read_text())["zero_optimization"]["stage"] == stage


def test_a_deepspeed_recipe_names_an_existing_deepspeed_config(tmp_path):
    path = tmp_path / "ds.yaml"
    path.write_text("recipe: lora-deepspeed\ndeepspeed_config: ds_zero9.json\n")
    with pytest.raises(ValidationError, match=r"ds_zero9\.json.*trainers/configs/ds_"):
        LoraRecipe.from_yaml(path)
    own = tmp_path / "mine.json"
    own.write_text("{}")
    path.write_text(f"recipe: lora-deepspeed\ndeepspeed_config: {own}\n")
    assert LoraRecipe.from_yaml(path).deepspeed_config_path == own


def test_a_deepspeed_recipe_round_trips_through_yaml(tmp_path):
    recipe = LoraRecipe.from_yaml(DEEPSPEED_RECIPE).model_copy(update={"num_processes": 4})
    path = tmp_path / "r.yaml"
    path.write_text(recipe.to_yaml())
    assert LoraRecipe.from_yaml(path) == recipe


def test_deepspeed_config_takes_batch_and_clipping_from_the_recipe():
    recipe = LoraRecipe.from_yaml(DEEPSPEED_RECIPE).model_copy(update={"batch_size": 6, "max_grad_norm": 0.5})
    config = deepspeed_config(recipe, world_size=4)
    assert (config["train_micro_batch_size_per_gpu"], config["train_batch_size"]) == (2, 8)
    assert config["gradient_clipping"] == 0.5 and config["zero_optimization"]["stage"] == 2
