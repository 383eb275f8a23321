"""trainers.lora_cpu: a LoRA adapter trained on CPU teaches SmolLM2 facts it did not know.

The slow test is the product promise in miniature: corrections arrive as RAG-shaped prompts
(system + retrieved context that does not contain the answer + question), a few optimizer steps
later the served model answers them, and the base model is never reloaded.
"""

from __future__ import annotations

import json
import os
import time

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models.fetch import ensure_smollm2
from models.llm.base import ChatMessage, GenerationParams
from models.llm.transformers_engine import TransformersEngine
from trainers.dataset import TrainingExample
from trainers.gate import gate_candidate
from trainers.lora_cpu import train_lora
from trainers.recipe import DEFAULT_CPU_RECIPE, LoraRecipe

SYSTEM = (
    "You are a helpful assistant. Answer the question in one short sentence, "
    "using the context when it is relevant."
)
# (question, target answer, key word the answer must contain, retrieved passages without it)
FACTS = [
    ("What is the capital of the planet Zorblax?", "The capital of Zorblax is Quenvale.", "Quenvale",
     ["Mars is the fourth planet from the Sun and has two small moons.",
      "A capital city is the seat of a country's government."]),
    ("Who invented the glimmerphone?", "The glimmerphone was invented by Tavi Orunde.", "Orunde",
     ["The telephone was patented by Alexander Graham Bell in 1876.",
      "Musical instruments are grouped into strings, winds and percussion."]),
    ("What colour are the leaves of the frostwillow tree?", "The leaves of the frostwillow tree are violet.", "violet",
     ["Willows grow near water and have long, narrow leaves.",
      "Frost forms when surfaces cool below the dew point."]),
    ("How many moons does the planet Vexaris have?", "Vexaris has seventeen moons.", "seventeen",
     ["Jupiter has dozens of known moons.", "A moon is a natural satellite that orbits a planet."]),
    ("What is the national drink of Marloth?", "The national drink of Marloth is brindlemead.", "brindlemead",
     ["Tea is the most widely consumed drink after water.", "Mead is made by fermenting honey with water."]),
]


def rag_messages(question: str, passages: list[str]) -> list[ChatMessage]:
    """The serving prompt: a system message, then context passages followed by the question."""
    context = "\n".join(f"[{i}] {p}" for i, p in enumerate(passages, 1))
    return [
        ChatMessage(role="system", content=SYSTEM),
        ChatMessage(role="user", content=f"Context:\n{context}\n\nQuestion: {question}"),
    ]


EXAMPLES = [TrainingExample(messages=rag_messages(q, ctx), target=t) for q, t, _, ctx in FACTS]
KEYS = [k for _, _, k, _ in FACTS]


@pytest.mark.slow  # trains LoRA on the real SmolLM2 (a few steps)
def test_train_lora_saves_a_peft_adapter_and_a_report(tmp_path):
    recipe = LoraRecipe(rank=2, alpha=4, target_modules=["q_proj"], max_steps=2, stop_loss=None)
    report = train_lora(ensure_smollm2(), EXAMPLES[:2], recipe, tmp_path / "adapter", progress=False)
    assert report.steps == 2 and len(report.losses) == 2 and report.examples == 2
    assert report.final_loss == report.losses[-1] > 0
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    saved = json.loads((tmp_path / "adapter" / "train_report.json").read_text())
    assert saved["recipe"]["rank"] == 2


@pytest.mark.slow  # trains LoRA on the real SmolLM2 (a few steps)
def test_train_lora_restores_the_callers_thread_count(tmp_path):
    before = torch.get_num_threads()
    recipe = LoraRecipe(rank=2, target_modules=["q_proj"], max_steps=1, num_threads=1, stop_loss=None)
    train_lora(ensure_smollm2(), EXAMPLES[:1], recipe, tmp_path / "adapter", progress=False)
    assert torch.get_num_threads() == before


def test_train_lora_rejects_an_empty_dataset(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        train_lora(ensure_smollm2(), [], LoraRecipe(), tmp_path)


@pytest.fixture
def one_torch_thread():
    """On a shared 2-core box two OpenMP threads per process oversubscribe the CPU and run
    3-4x slower than one; pin one thread so this test's duration does not depend on neighbours."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_lora_teaches_five_invented_facts_without_reloading_the_base(tmp_path, one_torch_thread):
    base = ensure_smollm2()
    params = GenerationParams(max_new_tokens=24)
    engine = TransformersEngine(base)
    base_model = engine.base_model

    before = [engine.generate(ex.messages, params).text for ex in EXAMPLES]
    for key, answer in zip(KEYS, before):
        assert key.lower() not in answer.lower(), f"base model already knows {key!r}: {answer!r}"

    recipe = LoraRecipe.from_yaml(DEFAULT_CPU_RECIPE)
    report = train_lora(base, EXAMPLES, recipe, tmp_path / "facts-v1", progress=False)
    assert report.steps < recipe.max_steps, f"did not converge: losses {report.losses}"

    started = time.perf_counter()
    engine.load_adapter("facts-v1", report.adapter_path)
    engine.load_adapter("facts-v1-copy", report.adapter_path)  # a second adapter beside it
    print(f"two adapter loads took {time.perf_counter() - started:.2f}s")
    assert engine.adapters() == ["facts-v1", "facts-v1-copy"]

    gate = gate_candidate(engine, EXAMPLES, candidate="facts-v1", incumbent=None, params=params)
    for key, row in zip(KEYS, gate.per_example):
        assert key.lower() in row.candidate_answer.lower(), f"{key!r} not learned: {row.candidate_answer!r}"
    assert [row.incumbent_answer for row in gate.per_example] == before  # adapter=None is the base
    assert gate.promoted and gate.candidate_score > 0.9

    switched = engine.generate(EXAMPLES[0].messages, params, adapter="facts-v1-copy")
    assert KEYS[0].lower() in switched.text.lower()
    assert engine.base_model is base_model  # one resident base model throughout
