"""CPU engine throughput: TransformersEngine vs raw ``model.generate``, batched, and int8.

Every row is measured in the same run on the same RAG prompts (SQuAD questions with their gold
passage from ../shared/data/squad-mini), greedy, same ``max_new_tokens``. Engine and raw
``generate`` alternate prompt by prompt (best of ``--repeats``) so load from other processes hits
both alike. Throughput is reported per wall second and per CPU second of this process: on a shared
machine the second is what the code costs. The target from issue 5 is engine >= 0.95x raw
tokens/s. "same as fp32" counts answers identical to the fp32 engine's; "gold" counts answers
containing a SQuAD gold answer.

    .venv/bin/python benchmarks/engine_throughput.py --prompts 8 --max-new-tokens 48 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from models.fetch import ensure_smollm2
from models.llm.base import ChatMessage, Generation, GenerationParams
from models.llm.chat_format import encode_prompt
from models.llm.transformers_engine import TransformersEngine

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad-mini"
SYSTEM = "Answer the question in one short sentence using only the context."


def load_prompts(n: int) -> list[tuple[list[ChatMessage], list[str]]]:
    """(conversation, gold answers) for the first ``n`` squad-mini questions."""
    read = lambda name: [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]  # noqa: E731
    corpus = {d["_id"]: d["text"] for d in read("corpus.jsonl")}
    answers = {a["_id"]: a["answers"] for a in read("answers.jsonl")}
    qrels = dict(line.split("\t")[:2] for line in (DATA / "qrels" / "test.tsv").read_text().splitlines()[1:])
    prompts = []
    for query in read("queries.jsonl")[:n]:
        context = corpus[qrels[query["_id"]]][:1200]
        user = f"Context:\n[1] {context}\n\nQuestion: {query['text']}"
        prompts.append(([ChatMessage(role="system", content=SYSTEM), ChatMessage(role="user", content=user)],
                        answers[query["_id"]]))
    return prompts


def raw_generate(engine: TransformersEngine, messages: list[ChatMessage], max_new: int, *, text: bool = False):  # type: ignore[no-untyped-def]
    """Plain ``model.generate`` on the same tokens and stopping token: the tokens generated, or
    (``text=True``) a Generation decoded like the engine does."""
    ids = torch.tensor([encode_prompt(engine.tokenizer, messages)])
    eos = engine.tokenizer.eos_token_id
    with torch.inference_mode():
        out = engine.base_model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False,
            eos_token_id=eos, pad_token_id=eos,
        )
    new_ids = out[0, ids.shape[1] :].tolist()
    if not text:
        return len(new_ids)
    return Generation(text=engine.tokenizer.decode(new_ids, skip_special_tokens=True), prompt_tokens=ids.shape[1],
                      completion_tokens=len(new_ids), adapter=None, finish_reason="stop")


def quantized_int8(engine: TransformersEngine) -> TransformersEngine:
    """A second engine whose every ``nn.Linear`` is dynamically quantised to int8."""
    import warnings

    copy = TransformersEngine(engine.model_path)
    with warnings.catch_warnings():  # torch recommends torchao, whose CPU int8 paths measured slower
        warnings.simplefilter("ignore")
        copy.base_model = torch.ao.quantization.quantize_dynamic(copy.base_model, {torch.nn.Linear}, dtype=torch.qint8)
    return copy


def timed(fn):  # type: ignore[no-untyped-def]
    """(result, wall seconds, CPU seconds of this process). On a shared machine wall time swings
    with other people's load; CPU time is what the code itself costs, so ratios use it too."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads; keep low on shared machines")
    parser.add_argument("--repeats", type=int, default=2, help="engine vs raw: best of N per prompt")
    parser.add_argument("--skip-int8", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"config: {vars(args)} torch={torch.__version__} threads={torch.get_num_threads()}")

    prompts = load_prompts(args.prompts)
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    engine = TransformersEngine(ensure_smollm2())
    engine.generate(prompts[0][0], GenerationParams(max_new_tokens=4))  # warm-up
    raw_generate(engine, prompts[0][0], 4)

    # 1. engine vs raw generate: alternating order per prompt, best of --repeats per prompt, so
    #    a burst of load from other processes does not land on one side only
    raw_t, eng_t = [0.0, 0.0], [0.0, 0.0]  # [wall, cpu]
    raw_n = eng_n = 0
    fp32: list[Generation] = []
    for i, (messages, _) in enumerate(prompts):
        best = {"raw": [float("inf")] * 2, "eng": [float("inf")] * 2}
        for r in range(args.repeats):
            runs = [("raw", lambda m=messages: raw_generate(engine, m, args.max_new_tokens)),
                    ("eng", lambda m=messages: engine.generate(m, params))]
            for kind, fn in runs if (i + r) % 2 == 0 else runs[::-1]:
                result, wall, cpu = timed(fn)
                best[kind] = [min(best[kind][0], wall), min(best[kind][1], cpu)]
                if r == 0 and kind == "raw":
                    raw_n += result
                elif r == 0:
                    eng_n += result.completion_tokens
                    fp32.append(result)
        raw_t = [a + b for a, b in zip(raw_t, best["raw"])]
        eng_t = [a + b for a, b in zip(eng_t, best["eng"])]
    rows = [("raw model.generate (baseline)", raw_n, raw_t, None, None),
            ("TransformersEngine.generate", eng_n, eng_t, None, None)]

    # 2. batched vs sequential (sequential = the engine run above)
    batched: list[Generation] = []
    batch_t = [0.0, 0.0]
    for start in range(0, len(prompts), args.batch):
        chunk = [m for m, _ in prompts[start : start + args.batch]]
        result, wall, cpu = timed(lambda c=chunk: engine.generate_batch(c, params))
        batched += result
        batch_t = [batch_t[0] + wall, batch_t[1] + cpu]
    agree = sum(a.text == b.text for a, b in zip(batched, fp32))
    rows.append((f"generate_batch (batch={args.batch})", sum(g.completion_tokens for g in batched), batch_t,
                 f"{agree}/{len(prompts)}", None))

    def contains(gens: list[Generation]) -> str:
        hits = sum(any(a.lower() in g.text.lower() for a in gold) for g, (_, gold) in zip(gens, prompts))
        return f"{hits}/{len(prompts)}"

    rows[1] = (*rows[1][:4], contains(fp32))
    rows[2] = (*rows[2][:4], contains(batched))

    # 3. int8 (torch dynamic quantisation of every Linear) vs fp32, same prompts. Measured here,
    #    not offered by the engine: this is the evidence for leaving it out.
    if not args.skip_int8:
        int8 = quantized_int8(engine)
        raw_generate(int8, prompts[0][0], 4)
        q_t, q_gens = [0.0, 0.0], []
        for messages, _ in prompts:
            result, wall, cpu = timed(lambda m=messages: raw_generate(int8, m, args.max_new_tokens, text=True))
            q_t = [q_t[0] + wall, q_t[1] + cpu]
            q_gens.append(result)
        agree = sum(a.text == b.text for a, b in zip(q_gens, fp32))
        rows.append(("int8 dynamic (torch.ao)", sum(g.completion_tokens for g in q_gens), q_t,
                     f"{agree}/{len(prompts)}", contains(q_gens)))

    base_wall, base_cpu = raw_n / raw_t[0], raw_n / raw_t[1]
    print(f"\n{'variant':32} {'tokens':>6} {'wall s':>7} {'tok/s':>6} {'x raw':>5} {'cpu s':>7} {'tok/cpu-s':>9} "
          f"{'x raw':>5} {'same as fp32':>12} {'gold':>6}")
    for name, tokens, (wall, cpu), same, gold in rows:
        print(f"{name:32} {tokens:6d} {wall:7.2f} {tokens / wall:6.2f} {tokens / wall / base_wall:5.2f} {cpu:7.2f} "
              f"{tokens / cpu:9.2f} {tokens / cpu / base_cpu:5.2f} {same or '-':>12} {gold or '-':>6}")
    wall_ratio, cpu_ratio = (eng_n / eng_t[0]) / base_wall, (eng_n / eng_t[1]) / base_cpu
    verdict = "met" if cpu_ratio >= 0.95 else "NOT met"
    print(f"\nengine / raw generate tokens/s: {cpu_ratio:.3f} by CPU time, {wall_ratio:.3f} by wall time "
          f"(target >= 0.95 by CPU time: {verdict}; wall time is only meaningful on an idle machine)")

if __name__ == "__main__":
    main()
