"""Chat overhead beyond generation: HTTP gateway → broker → agent → gateway, against invoking the
same LangGraph agent in-process, in the same run on the same model and index.

Overhead of one request = wall-clock time seen by the caller − (retrieval + generation time the
agent measured itself). The in-process baseline's overhead is the graph's own bookkeeping. Paths
alternate request by request so machine noise hits them alike.

    python benchmarks/chat_overhead.py --requests 30                       # embedded broker only
    python benchmarks/chat_overhead.py --kafka kafka://127.0.0.1:9092      # and real Kafka
Target (issue 5): p50 overhead on Kafka ≤ 25 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx

from agents.graph import AgentQuery
from indexing.types import SourceDocument
from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime

PASSAGES = [
    "The Ostra river flows 612 kilometres from the Kessel glacier to the Northern Sea.",
    "Harbor Street Bakery bakes rye sourdough every morning in a wood-fired oven built in 1952.",
    "The Veltrin Observatory on Mount Caldera houses a 3.5 metre reflecting telescope.",
]
QUESTIONS = ["How long is the Ostra river?", "What does Harbor Street Bakery bake?", "Where is the Veltrin Observatory?"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(settings: Settings, requests: int, max_new_tokens: int) -> tuple[list[float], list[float]]:
    """(in-process overheads, gateway overheads) in ms, alternating request by request."""
    runtime = Runtime(settings, ["agent"])
    for passage_id, text in enumerate(PASSAGES):
        runtime.services.pipeline.ingest(SourceDocument(id=f"p{passage_id}", text=text))
    in_process, via_gateway = [], []
    with serve_in_thread(create_app(runtime)) as url, httpx.Client(base_url=url, timeout=300) as client:
        for n in range(requests + 2):  # the first two of each path warm caches and are dropped
            question = QUESTIONS[n % len(QUESTIONS)]
            start = time.perf_counter()
            # The same graph with the same work a worker asks of it, conversation memory included.
            answer = runtime.services.agent.answer(AgentQuery(question=question, max_new_tokens=max_new_tokens,
                                                              conversation_id=f"bench-{n}", turn_id=f"turn-{n}"))
            wall = (time.perf_counter() - start) * 1000
            inside = answer.timings_ms.get("retrieval", 0) + answer.timings_ms["generation"]
            start = time.perf_counter()
            reply = client.post("/v1/chat", params={"wait": "true"},
                                json={"messages": [{"role": "user", "content": question}], "max_new_tokens": max_new_tokens})
            http_wall = (time.perf_counter() - start) * 1000
            task = reply.json()
            assert task["status"] == "succeeded", task
            timings = task["result"]["timings_ms"]
            if n >= 2:
                in_process.append(wall - inside)
                via_gateway.append(http_wall - timings.get("retrieval", 0) - timings["generation"])
    return in_process, via_gateway


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--kafka", help="kafka://host:port to also measure the Kafka path")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as home:
        base = Settings(home=Path(home), broker={"url": "memory://"}, search={"url": "embedded://"}, security={"auth": "off"})
        paths = [("embedded broker", base)]
        if args.kafka:
            paths.append(("Kafka", base.override(home=Path(home) / "kafka", broker_url=args.kafka,
                                                 topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")))
        for name, settings in paths:
            in_process, gateway = measure(settings, args.requests, args.max_new_tokens)
            rows.append((name, in_process, gateway))
    print(f"\nChat overhead beyond generation ({args.requests} requests per path, {args.max_new_tokens} new tokens)\n")
    print(f"{'path':<34}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    for name, in_process, gateway in rows:
        print(f"{'in-process graph (' + name + ' run)':<34}{percentile(in_process, .5):>10.1f}{percentile(in_process, .95):>10.1f}"
              f"{statistics.mean(in_process):>10.1f}")
        print(f"{'HTTP → ' + name + ' → agent → HTTP':<34}{percentile(gateway, .5):>10.1f}{percentile(gateway, .95):>10.1f}{statistics.mean(gateway):>10.1f}")
        print(f"{'  extra over in-process (p50)':<34}{percentile(gateway, .5) - percentile(in_process, .5):>10.1f}")
    print("\ntarget: Kafka path p50 overhead ≤ 25 ms")


if __name__ == "__main__":
    main()
