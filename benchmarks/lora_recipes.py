"""The two LoRA recipes on the same examples: PEFT in-process vs DeepSpeed ZeRO-2/3 under torchrun.

Both train SmolLM2-135M on the same invented facts in RAG-shaped prompts (the five of
``tests/unit/test_trainers_lora_cpu.py`` and fifteen more), with the same hyper-parameters
(``trainers/configs/lora_cpu.yaml``; the DeepSpeed rows only switch ``recipe`` and the DeepSpeed JSON).
Each recipe runs in a fresh process so that its memory is its own; for each it reports:

- the loss per step (a plot, ``loss_curves.png`` in ``--out``), steps to memorise, final loss;
- mean optimizer-step time, and DeepSpeed's as a ratio to PEFT's measured in the same run;
- wall time (model load, process launch and save included) and peak RSS of the training process
  tree (every rank and the launcher, sampled every 0.2 s);
- the share of facts the adapter answers right (greedy, through ``TransformersEngine``).

    .venv/bin/python benchmarks/lora_recipes.py --out /tmp/lora-recipes   # --facts 10, --stages 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # type: ignore[import-untyped]

from models.fetch import ensure_smollm2
from models.llm.base import GenerationParams
from models.llm.transformers_engine import TransformersEngine
from tests.unit.test_trainers_lora_cpu import FACTS as FIVE, rag_messages
from trainers.dataset import TrainingExample
from trainers.lora_common import TrainReport
from trainers.recipe import DEFAULT_CPU_RECIPE, LoraRecipe

MORE = [  # (question, answer, key word, retrieved passages that do not hold it)
    ("Who founded the city of Brellholm?", "Brellholm was founded by Sera Quillan.", "Quillan",
     ["Many cities grew around river crossings.", "A founder is the person who establishes a settlement."]),
    ("What metal is the Orvane crown made of?", "The Orvane crown is made of cobalt.", "cobalt",
     ["Crowns are traditionally made of gold.", "Metals conduct heat and electricity."]),
    ("How tall is the Drennic tower?", "The Drennic tower is 412 metres tall.", "412",
     ["Skyscrapers are measured to their architectural top.", "Towers were once used as lookouts."]),
    ("What language is spoken on the island of Kesh?", "The people of Kesh speak Varunic.", "Varunic",
     ["Islands often develop distinct dialects.", "Over 7,000 languages are spoken today."]),
    ("Which bird is the emblem of Pallister?", "The emblem of Pallister is the amber kestrel.", "kestrel",
     ["National emblems often show animals.", "Birds of prey hunt by sight."]),
    ("What is the currency of Thessaly Prime?", "Thessaly Prime pays in drovens.", "droven",
     ["A currency is a medium of exchange.", "Coins were first minted in antiquity."]),
    ("Who wrote the novel The Salt Lanterns?", "The Salt Lanterns was written by Imre Vachet.", "Vachet",
     ["Novels became popular in the 18th century.", "Lanterns were lit with oil or candles."]),
    ("What fruit grows on the Yannick vine?", "The Yannick vine grows blue pears.", "pears",
     ["Vines climb on walls and trellises.", "Grapes grow in clusters on vines."]),
    ("In which year was the Corvel bridge opened?", "The Corvel bridge opened in 1893.", "1893",
     ["Suspension bridges hang from cables.", "Many bridges were built in the industrial era."]),
    ("What is the largest lake on Omphra?", "The largest lake on Omphra is Lake Tisselmere.", "Tisselmere",
     ["Lakes form in basins carved by glaciers.", "Omphra is a region with many rivers."]),
    ("Who painted The Glass Orchard?", "The Glass Orchard was painted by Lene Morrow.", "Morrow",
     ["Oil paint dries slowly.", "Orchards are planted with fruit trees."]),
    ("What sport is played in the Halvin cup?", "The Halvin cup is a hurling tournament.", "hurling",
     ["Cups are awarded to tournament winners.", "Team sports need a field and a ball."]),
    ("What is the main export of Dorwick?", "Dorwick mainly exports saffron.", "saffron",
     ["Exports are goods sold abroad.", "Trade routes connected distant markets."]),
    ("How many rooms does Castle Embry have?", "Castle Embry has ninety rooms.", "ninety",
     ["Castles were built for defence.", "Great halls hosted feasts."]),
    ("What is the name of the ship that first reached Nolland?", "The first ship to reach Nolland was the Grey Wren.",
     "Wren", ["Sailing ships relied on wind.", "Explorers mapped new coasts."]),
]
FACTS = [*FIVE, *MORE]
TRAIN = """
import json, sys
from pathlib import Path
from trainers.dataset import TrainingExample
from trainers.recipe import LoraRecipe
from trainers.train import train_adapter
job = json.loads(Path(sys.argv[1]).read_text())
train_adapter(Path(job["base"]), [TrainingExample.model_validate(e) for e in job["examples"]],
              LoraRecipe.model_validate(job["recipe"]), Path(job["out"]), progress=False)
"""


def run_measured(job: Path) -> tuple[float, float]:
    """Train in a fresh process; (wall seconds, peak RSS in MiB of its whole process tree)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, str(job)], cwd=Path(__file__).resolve().parents[1])
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass  # a child ended between listing and reading
        time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"training failed with exit code {proc.returncode}")
    return time.perf_counter() - started, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", type=int, default=20)
    parser.add_argument("--stages", type=int, nargs="*", default=[2, 3], help="ZeRO stages to run")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    parser.add_argument("--out", type=Path, default=Path("lora-recipes-out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base, facts = ensure_smollm2(), FACTS[: args.facts]
    examples = [TrainingExample(messages=rag_messages(q, ctx), target=t) for q, t, _, ctx in facts]
    recipe = LoraRecipe.from_yaml(DEFAULT_CPU_RECIPE).model_copy(update={"num_threads": args.threads})
    if args.max_steps:
        recipe = recipe.model_copy(update={"max_steps": args.max_steps})
    recipes = {"PEFT": recipe} | {
        f"DeepSpeed ZeRO-{s}": LoraRecipe.model_validate(
            recipe.model_dump() | {"recipe": "lora-deepspeed", "deepspeed_config": f"ds_zero{s}.json"})
        for s in args.stages
    }
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, r in recipes.items():
            out = Path(tmp) / name.replace(" ", "-")
            job = Path(tmp) / f"{out.name}.json"
            job.write_text(json.dumps({"base": str(base), "examples": [e.model_dump() for e in examples],
                                       "recipe": r.model_dump(mode="json"), "out": str(out)}))
            wall, rss = run_measured(job)
            report = TrainReport.model_validate(json.loads((out / "train_report.json").read_text())["report"])
            rows[name] = {"report": report, "wall": wall, "rss": rss, "files": sorted(p.name for p in out.iterdir())}
            print(f"{name}: {report.steps} steps, {report.step_seconds:.2f} s/step, {wall:.0f} s, {rss:.0f} MiB", flush=True)
        engine = TransformersEngine(base)
        params = GenerationParams(max_new_tokens=24, temperature=0.0)
        for name, row in rows.items():
            engine.load_adapter(name, row["report"].adapter_path)
            said = [engine.generate(ex.messages, params, adapter=name).text for ex in examples]
            row["right"] = sum(k.lower() in a.lower() for (_, _, k, _), a in zip(facts, said)) / len(facts)
    plot(rows, args.out / "loss_curves.png")
    peft = rows["PEFT"]["report"].step_seconds
    print(f"\n{len(facts)} facts, batch {recipe.batch_size}, max {recipe.max_steps} steps, stop_loss {recipe.stop_loss}, "
          f"{args.threads} torch thread(s) per process\n")
    print("| recipe | steps | final loss | mean step s | step time vs PEFT | wall s | peak RSS MiB | facts right | files |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        rep = row["report"]
        print(f"| {name} | {rep.steps} | {rep.final_loss:.4f} | {rep.step_seconds:.2f} | x{rep.step_seconds / peft:.2f} | "
              f"{row['wall']:.0f} | {row['rss']:.0f} | {row['right']:.0%} | {', '.join(row['files'])} |")
    print(f"\nloss curves: {args.out / 'loss_curves.png'}")


def plot(rows: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for (name, row), style in zip(rows.items(), ["-o", "--s", ":^"]):
        losses = row["report"].losses
        ax.plot(range(1, len(losses) + 1), losses, style, label=name, markersize=4)
    ax.set(xlabel="optimizer step", ylabel="training loss", yscale="log", title="LoRA on SmolLM2-135M: PEFT vs DeepSpeed")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
