"""trainers.deepspeed_lora: the lora-deepspeed recipe makes the adapter lora-peft makes.

ZeRO-2 and ZeRO-3 each train a few steps on the real SmolLM2 in their own torchrun process group
(CPU, gloo) through ``train_adapter``; the adapters must be indistinguishable in form from PEFT's
(same files, same config keys, same tensor names and shapes: under ZeRO-3 that proves the partitioned
LoRA weights were gathered before saving) and serve through ``TransformersEngine``. With one process,
the same seed and fp32, the loss curve must match PEFT's: the recipes differ only in how a step is taken.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models.fetch import ensure_smollm2
from models.llm.base import GenerationParams
from models.llm.transformers_engine import TransformersEngine
from tests.unit.test_trainers_lora_cpu import EXAMPLES
from trainers.recipe import LoraRecipe
from trainers.train import TrainingFailed, train_adapter

SMALL = {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"], "max_steps": 2, "stop_loss": None,
         "num_threads": 1}
STAGES = {"zero2": "ds_zero2.json", "zero3": "ds_zero3.json"}


def deepspeed_recipe(config: str, **update) -> LoraRecipe:
    return LoraRecipe.model_validate({**SMALL, "recipe": "lora-deepspeed", "deepspeed_config": config, **update})


def tensors(folder: Path) -> dict[str, tuple[int, ...]]:
    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118  # safe_open is not iterable


@pytest.fixture(scope="module")
def adapters(tmp_path_factory) -> dict[str, Path]:
    """One PEFT and one adapter per ZeRO stage, trained on the same two facts with the same recipe."""
    root, base = tmp_path_factory.mktemp("adapters"), ensure_smollm2()
    made = {"peft": train_adapter(base, EXAMPLES[:2], LoraRecipe(**SMALL), root / "peft", progress=False).adapter_path}
    for name, config in STAGES.items():
        made[name] = train_adapter(base, EXAMPLES[:2], deepspeed_recipe(config), root / name, progress=False).adapter_path
    return made


@pytest.mark.slow  # three short trainings on the real SmolLM2, two of them through torchrun
@pytest.mark.parametrize("stage", list(STAGES))
def test_deepspeed_adapter_has_the_peft_adapters_form(adapters, stage):
    peft, made = adapters["peft"], adapters[stage]
    assert sorted(p.name for p in made.iterdir()) == sorted(p.name for p in peft.iterdir())
    config, peft_config = (json.loads((d / "adapter_config.json").read_text()) for d in (made, peft))
    assert config.keys() == peft_config.keys()
    assert {k: config[k] for k in ("r", "lora_alpha", "target_modules", "peft_type")} == \
        {k: peft_config[k] for k in ("r", "lora_alpha", "target_modules", "peft_type")}
    assert tensors(made) == tensors(peft)  # names and full shapes: ZeRO-3's slices were gathered
    report, peft_report = (json.loads((d / "train_report.json").read_text()) for d in (made, peft))
    assert report["report"].keys() == peft_report["report"].keys()
    assert report["recipe"]["recipe"] == "lora-deepspeed" and report["report"]["steps"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_deepspeed_follows_the_peft_loss_curve(adapters, stage):
    """Same init, data order, loss function and fp32 maths with one process: step 1's loss (before any
    update) is the same number, and the step after an update stays close."""
    losses = json.loads((adapters[stage] / "train_report.json").read_text())["report"]["losses"]
    peft = json.loads((adapters["peft"] / "train_report.json").read_text())["report"]["losses"]
    assert losses[0] == pytest.approx(peft[0], rel=1e-5)
    assert losses[1] == pytest.approx(peft[1], rel=1e-2)
    assert losses[1] < losses[0]


@pytest.mark.slow
def test_deepspeed_adapters_serve_and_answer_like_peft(adapters):
    engine = TransformersEngine(ensure_smollm2())
    params = GenerationParams(max_new_tokens=12)
    answers = {}
    for name, folder in adapters.items():
        engine.load_adapter(name, folder)
        answers[name] = engine.generate(EXAMPLES[0].messages, params, adapter=name).text
    assert all(answers.values()), answers
    assert answers["zero2"] == answers["peft"], answers  # same weights up to rounding: same greedy tokens


@pytest.mark.slow  # starts torchrun and loads DeepSpeed (a minute on a busy box)
def test_a_failing_training_process_raises_with_its_log_tail(tmp_path):
    with pytest.raises(TrainingFailed, match=r"exited with 1") as failed:
        train_adapter(tmp_path / "no-such-model", EXAMPLES[:1], deepspeed_recipe("ds_zero2.json"), tmp_path / "out",
                      progress=False)
    assert "no-such-model" in "\n".join(failed.value.tail)
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: the same launcher then runs NCCL")
@pytest.mark.slow
def test_deepspeed_trains_on_gpus_with_nccl(tmp_path):
    recipe = deepspeed_recipe("ds_zero3.json", num_processes=torch.cuda.device_count())
    report = train_adapter(ensure_smollm2(), EXAMPLES[:2], recipe, tmp_path / "gpu", progress=False)
    assert report.steps == 2 and (tmp_path / "gpu" / "adapter_model.safetensors").exists()


def test_the_saved_adapter_config_is_byte_identical_whatever_the_hash_seed(tmp_path):
    """PEFT writes target_modules from a set: without canonical bytes the same weights got two version ids."""
    from trainers.lora_common import canonical_adapter_config

    written = []
    for order in (["v_proj", "q_proj"], ["q_proj", "v_proj"]):
        path = tmp_path / "adapter_config.json"
        path.write_text(json.dumps({"target_modules": order, "r": 4, "peft_type": "LORA"}))
        canonical_adapter_config(path)
        written.append(path.read_bytes())
    assert written[0] == written[1] and json.loads(written[0])["target_modules"] == ["q_proj", "v_proj"]
