"""LLM engine on plain transformers + PEFT: the embedded-mode backend (CPU, fp32).

One base model stays resident; LoRA adapters are attached by name and switched per request,
so a ``model.updated`` event costs an adapter load (milliseconds), never a base reload. At most
``max_adapters`` stay attached: loading one more detaches the least recently used (PEFT
``delete_adapter``), and a request naming a detached one attaches it again from its folder.
A name means one set of weights forever: loading another folder under a known name is refused::

    engine = TransformersEngine(ensure_smollm2(), max_adapters=8)
    engine.load_adapter("facts-v1", Path("adapters/facts-v1"))
    engine.generate([ChatMessage(role="user", content="Hi")], adapter="facts-v1").text
    engine.generate_batch([conversation_a, conversation_b])   # one left-padded decode

Any local Hugging Face causal-LM folder with a chat template works (SmolLM2, Qwen2, Llama 3).
There is deliberately no int8 mode: ``benchmarks/engine_throughput.py`` shows dynamic int8 decoding
SmolLM2 faster but answering SQuAD questions less often, and torchao's int8 CPU paths slower than
fp32 (figures in benchmarks/README.md, "Engine throughput").
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, cast

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from models.llm.base import ChatMessage, Generation, GenerationParams
from models.llm.chat_format import encode_prompt, end_of_turn_token_id
from models.llm.stop_strings import StopStringFilter, cut_at_stop


class TransformersEngine:
    """Implements :class:`models.llm.base.LLMEngine` with transformers on one device.

    Requests are serialised by a lock: the active adapter is model-global state, and a CPU
    has no spare throughput for concurrent decoding anyway. The lock is held from selecting a
    request's adapter to its last token (streams included), so no other request can switch it.
    """

    accepts_images = False  # text-only: a question's images are used for retrieval, never shown to this model

    def __init__(self, model_path: Path, *, device: str = "cpu", max_adapters: int = 8) -> None:
        if max_adapters < 1:
            raise ValueError(f"max_adapters must be at least 1, got {max_adapters}")
        self.model_path = Path(model_path)
        if not (self.model_path / "config.json").exists():
            raise FileNotFoundError(
                f"{self.model_path} has no config.json; point at a Hugging Face causal-LM folder "
                "(config.json, weights, tokenizer with a chat template)"
            )
        self.name = self.model_path.name
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"the tokenizer in {self.model_path} has no chat template; use an instruct/chat "
                "checkpoint (e.g. Qwen2-*-Instruct, Llama-3-*-Instruct)"
            )
        self.base_model = AutoModelForCausalLM.from_pretrained(
            self.model_path, dtype=torch.float32
        ).to(device)  # type: ignore[arg-type]  # transformers types `.to` through a decorator mypy reads as unbound
        self.base_model.eval()
        self._model: Any = self.base_model  # becomes a PeftModel with the first adapter
        self.max_adapters = max_adapters
        self._adapter_paths: dict[str, Path] = {}  # every adapter ever loaded, attached or not: name → folder
        self._attached: OrderedDict[str, None] = OrderedDict()  # attached to the model now, least recently used first
        self._eot_id = end_of_turn_token_id(self.tokenizer)
        # Llama 3 style checkpoints end a turn with <|eot_id|> but list more ends in their
        # generation config; honour all so answers never run on to max_new_tokens.
        configured = self.base_model.generation_config.eos_token_id
        configured = configured if isinstance(configured, list) else [] if configured is None else [configured]
        self._end_ids = [self._eot_id, *(int(i) for i in configured if int(i) != self._eot_id)]
        self._lock = threading.Lock()
        # Tokens decoded so far, every request together (batch rows count separately), updated at
        # each decoding step: makes visible that a cancelled stream really stopped decoding.
        self.tokens_decoded = 0

    # ---- adapters -------------------------------------------------------------------------

    def load_adapter(self, name: str, path: Path) -> None:
        """Attach a PEFT adapter under ``name`` (it becomes the most recently used); the same name and
        path again only marks it used. Another path under a known name is refused with ValueError:
        versions are content-addressed, so a name that meant other weights would be a wrong answer."""
        path = Path(path)
        if not (path / "adapter_config.json").exists():
            raise FileNotFoundError(f"{path} has no adapter_config.json; is it a PEFT adapter folder?")
        with self._lock:
            known = self._adapter_paths.get(name)
            if known is not None and known != path.resolve():
                raise ValueError(f"adapter {name!r} was loaded from {known}, not {path.resolve()}: a name is one set of weights "
                                 "forever; load new weights under a new name (their version id)")
            self._adapter_paths[name] = path.resolve()
            try:
                self._attach(name)
            except BaseException:
                if known is None:  # never loaded: forget the folder, so a corrected one can be given
                    del self._adapter_paths[name]
                raise

    def adapters(self) -> list[str]:
        """The adapters attached now (at most ``max_adapters``)."""
        return sorted(self._attached)

    # ---- generation -----------------------------------------------------------------------

    def generate(
        self,
        messages: list[ChatMessage],
        params: GenerationParams | None = None,
        *,
        adapter: str | None = None,
    ) -> Generation:
        params = params or GenerationParams()
        prompt_ids = self._encode(messages)
        stopper = _StopOnStrings(self.tokenizer, prompt_ids.shape[1], params.stop, self._count)
        with self._lock, self._weights(adapter), torch.inference_mode():
            output = self._model.generate(
                input_ids=prompt_ids,
                attention_mask=torch.ones_like(prompt_ids),
                stopping_criteria=StoppingCriteriaList([stopper]),
                **self._decoding_kwargs(params),
            )
        new_ids = output[0, prompt_ids.shape[1] :].tolist()
        text = cast(str, self.tokenizer.decode(new_ids, skip_special_tokens=True))  # one flat id list decodes to one string
        text, hit_stop = cut_at_stop(text, params.stop)
        ended = hit_stop or (bool(new_ids) and new_ids[-1] in self._end_ids)
        return Generation(
            text=text,
            prompt_tokens=int(prompt_ids.shape[1]),
            completion_tokens=len(new_ids),
            adapter=adapter,
            finish_reason="length" if not ended and len(new_ids) >= params.max_new_tokens else "stop",
        )

    def stream(
        self,
        messages: list[ChatMessage],
        params: GenerationParams | None = None,
        *,
        adapter: str | None = None,
    ) -> Iterator[str]:
        """Yield text deltas; joined they equal ``generate(...).text`` for greedy decoding.

        Text that could be the start of a stop string is held back until it is known not to be,
        so a consumer never sees part of a stop string.
        """
        params = params or GenerationParams()
        prompt_ids = self._encode(messages)
        stopper = _StopOnStrings(self.tokenizer, prompt_ids.shape[1], params.stop, self._count)
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300.0
        )
        stops = StopStringFilter(params.stop)
        with self._lock, self._weights(adapter):
            errors: list[BaseException] = []

            def run() -> None:
                try:
                    with torch.inference_mode():
                        self._model.generate(
                            input_ids=prompt_ids,
                            attention_mask=torch.ones_like(prompt_ids),
                            stopping_criteria=StoppingCriteriaList([stopper]),
                            streamer=streamer,
                            **self._decoding_kwargs(params),
                        )
                except BaseException as exc:  # noqa: BLE001 — surfaced to the consumer below
                    errors.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, name="transformers-engine-stream", daemon=True)
            worker.start()
            exhausted = False
            try:
                for piece in streamer:
                    delta = stops.feed(piece)
                    if delta:
                        yield delta
                    if stops.stopped:
                        break
                else:
                    exhausted = True
                    tail = stops.flush()
                    if tail:
                        yield tail
            finally:
                if not exhausted:  # consumer left early or a stop string was hit
                    stopper.cancelled = True
                    for _ in streamer:  # drain so the generation thread never blocks on put()
                        pass
                worker.join()
            if errors:
                raise errors[0]

    def generate_batch(
        self,
        conversations: list[list[ChatMessage]],
        params: GenerationParams | None = None,
        *,
        adapter: str | None = None,
    ) -> list[Generation]:
        """Answer several conversations in one left-padded decode; results keep input order.

        On CPU a batch of 4-8 short RAG prompts decodes several times faster than the same
        prompts one by one (``benchmarks/engine_throughput.py``), because each decoding step
        reads the weights once for all rows. Greedy answers equal :meth:`generate`'s up to the
        rare near-tie that padding's float rounding can flip.
        """
        params = params or GenerationParams()
        if not conversations:
            return []
        rows = [encode_prompt(self.tokenizer, messages) for messages in conversations]
        width = max(len(r) for r in rows)
        pad = self._pad_id
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        stopper = _StopOnStrings(self.tokenizer, width, params.stop, self._count)
        with self._lock, self._weights(adapter), torch.inference_mode():
            output = self._model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                stopping_criteria=StoppingCriteriaList([stopper]),
                **self._decoding_kwargs(params),
            )
        results = []
        for row, prompt in enumerate(rows):
            new_ids = output[row, width:].tolist()
            if row in stopper.stopped_at:  # later positions are padding
                new_ids = new_ids[: stopper.stopped_at[row]]
            else:
                ends = [i for i, token in enumerate(new_ids) if token in self._end_ids]
                new_ids = new_ids[: ends[0] + 1] if ends else new_ids
            text, hit_stop = cut_at_stop(cast(str, self.tokenizer.decode(new_ids, skip_special_tokens=True)), params.stop)
            ended = hit_stop or (bool(new_ids) and new_ids[-1] in self._end_ids)
            results.append(
                Generation(
                    text=text,
                    prompt_tokens=len(prompt),
                    completion_tokens=len(new_ids),
                    adapter=adapter,
                    finish_reason="length" if not ended and len(new_ids) >= params.max_new_tokens else "stop",
                )
            )
        return results

    # ---- internals ------------------------------------------------------------------------

    def _count(self, tokens: int) -> None:
        self.tokens_decoded += tokens  # one decoding thread at a time: the engine lock is held

    @property
    def _pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self._eot_id

    def _encode(self, messages: list[ChatMessage]) -> torch.Tensor:
        return torch.tensor([encode_prompt(self.tokenizer, messages)], device=self.device)

    def _decoding_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "eos_token_id": self._end_ids,
            "pad_token_id": self._pad_id,
        }
        if params.temperature == 0.0:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        return kwargs

    def _weights(self, adapter: str | None) -> Any:
        """Context manager selecting base weights (``None``) or a named adapter; called with the lock held,
        so the selection stands until the request's last token."""
        if adapter is None:
            if self._model is self.base_model:
                return nullcontext()
            return self._model.disable_adapter()
        if adapter not in self._adapter_paths:
            raise KeyError(f"adapter {adapter!r} is not loaded; loaded: {self.adapters()}")
        self._attach(adapter)  # evicted since it was loaded: attach it again
        self._model.set_adapter(adapter)
        return nullcontext()

    def _attach(self, name: str) -> None:
        """Make ``name`` attached and most recently used, detaching the least recently used beyond
        ``max_adapters`` (the new one is attached first, so the model always keeps an adapter). Lock held."""
        if name in self._attached:
            self._attached.move_to_end(name)
            return
        path = self._adapter_paths[name]
        if self._model is self.base_model:
            from peft import PeftModel

            self._model = PeftModel.from_pretrained(self.base_model, path, adapter_name=name, is_trainable=False)
        else:
            self._model.load_adapter(path, adapter_name=name, is_trainable=False)
        self._model.eval()
        self._attached[name] = None
        while len(self._attached) > self.max_adapters:
            evicted, _ = self._attached.popitem(last=False)
            self._model.delete_adapter(evicted)


class _StopOnStrings(StoppingCriteria):
    """Ends decoding of each row once its new text contains a stop string, or all when cancelled.

    Records the number of new tokens each row had when it stopped, because after that the
    batch keeps filling the row with padding.
    """

    def __init__(self, tokenizer: Any, prompt_len: int, stops: list[str], on_step: Callable[[int], None]) -> None:
        self.tokenizer = tokenizer
        self.on_step = on_step  # told the rows of each decoding step
        self.prompt_len = prompt_len
        self.stops = [s for s in stops if s]
        self.cancelled = False
        self.stopped_at: dict[int, int] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        self.on_step(int(input_ids.shape[0]))
        done = cast(torch.BoolTensor, torch.full((input_ids.shape[0],), self.cancelled, dtype=torch.bool, device=input_ids.device))
        if self.cancelled or not self.stops:
            return done
        new_len = input_ids.shape[1] - self.prompt_len
        for row in range(input_ids.shape[0]):
            if row in self.stopped_at:
                done[row] = True
                continue
            text = self.tokenizer.decode(input_ids[row, self.prompt_len :], skip_special_tokens=True)
            if any(s in text for s in self.stops):
                self.stopped_at[row] = new_len
                done[row] = True
        return done

