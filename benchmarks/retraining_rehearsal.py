"""Retraining with and without rehearsal: does a LoRA that learns the corrections keep what worked?

The trainer fits an adapter on user corrections. Trained on nothing else, a small adapter
"learns" them by overwriting neighbouring behaviour, so answers users had liked get worse. The
trainer therefore also trains on the latest up-voted answers (rehearsal,
``RAGLOOP_TRAIN_REHEARSAL_EXAMPLES``). This benchmark measures both recipes in one run on the real
SmolLM2-135M with the default CPU recipe:

- corrections: the five invented facts of ``tests/unit/test_trainers_lora_cpu.py``;
- up-voted answers: the base model's own answers to eight ordinary RAG-shaped questions; half are
  rehearsed, the other half are held out and scored (token F1 against the liked answer, and
  MiniLM cosine, which forgives rephrasing).

It prints a table with the held-out scores of both adapters and each answer side by side.

    .venv/bin/python benchmarks/retraining_rehearsal.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from models.embedder import TextEmbedder
from models.fetch import ensure_smollm2
from models.llm.transformers_engine import TransformersEngine
from tests.unit.test_trainers_lora_cpu import EXAMPLES as CORRECTIONS, rag_messages
from trainers.dataset import TrainingExample
from trainers.gate import answer_all, gate_candidate
from trainers.lora_cpu import train_lora
from trainers.recipe import DEFAULT_CPU_RECIPE, LoraRecipe

ORDINARY = [
    ("What is the boiling point of water at sea level?", "Water boils at 100 degrees Celsius at sea level."),
    ("Who wrote Romeo and Juliet?", "Romeo and Juliet is a tragedy written by William Shakespeare."),
    ("What gas do plants absorb?", "Plants absorb carbon dioxide and release oxygen during photosynthesis."),
    ("How many legs does a spider have?", "Spiders are arachnids with eight legs."),
    ("What is the largest ocean?", "The Pacific Ocean is the largest and deepest ocean on Earth."),
    ("Which planet is known as the red planet?", "Mars is often called the red planet because of iron oxide on its surface."),
    ("What language is spoken in Brazil?", "The official language of Brazil is Portuguese."),
    ("When did the Berlin Wall fall?", "The Berlin Wall fell on 9 November 1989."),
]


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    base = ensure_smollm2()
    engine, embedder = TransformersEngine(base), TextEmbedder()
    prompts = [rag_messages(question, [passage]) for question, passage in ORDINARY]
    liked_answers = answer_all(engine, [TrainingExample(messages=p, target="-") for p in prompts], None)
    liked = [TrainingExample(messages=p, target=a) for p, a in zip(prompts, liked_answers)]
    rehearsed, held_out = liked[0::2], liked[1::2]
    recipe = LoraRecipe.from_yaml(DEFAULT_CPU_RECIPE)
    rows, answers = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("corrections only", []), ("corrections + rehearsal", rehearsed)):
            report = train_lora(base, CORRECTIONS + extra, recipe, Path(tmp) / name.replace(" ", "-"), progress=False)
            engine.load_adapter(name, report.adapter_path)
            gate = gate_candidate(engine, CORRECTIONS, name, None, guard=held_out, max_guard_drop=0.05)
            said = [r.candidate_answer for r in gate.guard_per_example]
            vectors = embedder.embed([*said, *(ex.target for ex in held_out)])
            cosine = float(np.mean(np.sum(vectors[: len(said)] * vectors[len(said):], axis=1)))
            rows.append((name, report.steps, gate.candidate_score, gate.incumbent_score, gate.guard_candidate_score, cosine,
                         "promoted" if gate.promoted else "rejected"))
            answers[name] = said
    print(f"\n{len(CORRECTIONS)} corrections; {len(rehearsed)} up-voted answers rehearsed, {len(held_out)} held out\n")
    print("| adapter | steps | corrections F1 (base) | held-out liked F1 | held-out liked cosine | gate with guard (drop ≤ 0.05) |")
    print("|---|---|---|---|---|---|")
    for name, steps, cand, inc, guard, cosine, verdict in rows:
        print(f"| {name} | {steps} | {cand:.3f} ({inc:.3f}) | {guard:.3f} | {cosine:.3f} | {verdict} |")
    print("\n| held-out question | liked answer | " + " | ".join(answers) + " |")
    print("|---|---|" + "---|" * len(answers))
    for i, ex in enumerate(held_out):
        question = ex.messages[-1].content.rsplit("Question: ", 1)[-1]
        print(f"| {question} | {ex.target} | " + " | ".join(answers[name][i] for name in answers) + " |")
    print(f"\nheld-out liked answers, rehearsal vs corrections only: token F1 x{rows[1][4] / max(rows[0][4], 1e-9):.2f}, "
          f"cosine x{rows[1][5] / max(rows[0][5], 1e-9):.2f}")


if __name__ == "__main__":
    main()
