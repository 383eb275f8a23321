"""trainers.recipe: LoRA configuration is data, checked in and validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trainers.recipe import DEFAULT_CPU_RECIPE, LoraRecipe


def test_checked_in_cpu_recipe_loads():
    recipe = LoraRecipe.from_yaml(DEFAULT_CPU_RECIPE)
    assert recipe.rank > 0 and recipe.max_steps > 0 and recipe.target_modules


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
