"""A real LoRA run whose loss becomes NaN (a learning rate no model survives) is recorded failed and
registers nothing: the serving versions stay as they were. Two steps of a rank-2 adapter on one
projection, so it costs a model load and two steps; `test_training_runs.py` covers the same
bookkeeping with a stand-in trainer, this proves the real trainer's losses reach the check."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.registry import base_version
from schemas.database import Database
from schemas.settings import Settings
from streams.services import Services
from streams.stores import Stores
from tests.integration.test_training_runs import correct, kit
from trainers.recipe import DEFAULT_CPU_RECIPE, LoraRecipe
from trainers.run import run_training

pytestmark = pytest.mark.slow  # trains SmolLM2 for two steps


def test_a_run_whose_real_loss_turns_nan_is_failed_and_registers_nothing(settings: Settings, tmp_path: Path, unique: str) -> None:
    services = Services(settings, Stores.from_settings(settings))
    db: Database = services.stores.db
    tenant = f"acme-{unique}"
    correct(db, tenant, "Capital of Zorblax?", "Quenvale.", 0)
    recipe = LoraRecipe.from_yaml(DEFAULT_CPU_RECIPE).model_copy(update={
        "rank": 2, "alpha": 4.0, "target_modules": ["q_proj"], "max_steps": 3, "stop_loss": None, "learning_rate": 1e12, "max_grad_norm": None})
    the_kit = kit(db, tmp_path)
    the_kit = type(the_kit)(**{**the_kit.__dict__, "recipe": recipe, "base_model_path": services.base_model_path})
    outcome = run_training(the_kit, f"run-{unique}", tenant, "smollm2")
    assert outcome.state == "failed" and (outcome.error or "").startswith("NonFiniteLoss"), outcome
    assert [v.version for v in the_kit.registry.list_versions("smollm2", tenant, every_tenant=False) if v.tenant == tenant] == []
    assert the_kit.registry.serving("smollm2", tenant).active.version == base_version("smollm2")
