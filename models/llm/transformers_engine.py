"""LLM engine on plain transformers + PEFT: the embedded-mode backend (CPU, fp32).

One base model stays resident; LoRA adapters are attached by name and switched per request,
so a ``model.updated`` event costs an adapter load (milliseconds), never a base reload::

    engine = TransformersEngine(ensure_smollm2())
    engine.load_adapter("facts-v1", Path("adapters/facts-v1"))
    engine.generate([ChatMessage(role="user", content="Hi")], adapter="facts-v1").text
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterator

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


class TransformersEngine:
    """Implements :class:`models.llm.base.LLMEngine` with transformers on one device.

    Requests are serialised by a lock: the active adapter is model-global state, and a CPU
    has no spare throughput for concurrent decoding anyway.
    """

    def __init__(self, model_path: Path, *, device: str = "cpu") -> None:
        self.model_path = Path(model_path)
        self.name = self.model_path.name
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.base_model = AutoModelForCausalLM.from_pretrained(
            self.model_path, dtype=torch.float32
        ).to(device)
        self.base_model.eval()
        self._model: Any = self.base_model  # becomes a PeftModel with the first adapter
        self._adapter_paths: dict[str, Path] = {}
        self._eot_id = end_of_turn_token_id(self.tokenizer)
        self._lock = threading.Lock()

    # ---- adapters -------------------------------------------------------------------------

    def load_adapter(self, name: str, path: Path) -> None:
        """Attach a PEFT adapter under ``name``; same name and path again is a no-op.

        The same name with a new path replaces that adapter (a new version was published).
        """
        path = Path(path)
        if not (path / "adapter_config.json").exists():
            raise FileNotFoundError(f"{path} has no adapter_config.json; is it a PEFT adapter folder?")
        with self._lock:
            if self._adapter_paths.get(name) == path.resolve():
                return
            if self._model is self.base_model:
                from peft import PeftModel

                self._model = PeftModel.from_pretrained(
                    self.base_model, path, adapter_name=name, is_trainable=False
                )
            else:
                if name in self._adapter_paths:
                    self._model.delete_adapter(name)
                self._model.load_adapter(path, adapter_name=name, is_trainable=False)
            self._model.eval()
            self._adapter_paths[name] = path.resolve()

    def adapters(self) -> list[str]:
        return sorted(self._adapter_paths)

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
        stopper = _StopOnStrings(self.tokenizer, len(prompt_ids[0]), params.stop)
        with self._lock, self._weights(adapter), torch.inference_mode():
            output = self._model.generate(
                input_ids=prompt_ids,
                attention_mask=torch.ones_like(prompt_ids),
                stopping_criteria=StoppingCriteriaList([stopper]),
                **self._decoding_kwargs(params),
            )
        new_ids = output[0, prompt_ids.shape[1] :].tolist()
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        text, hit_stop = _cut_at_stop(text, params.stop)
        ended = hit_stop or (bool(new_ids) and new_ids[-1] == self._eot_id)
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
        stopper = _StopOnStrings(self.tokenizer, len(prompt_ids[0]), params.stop)
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300.0
        )
        holdback = max((len(s) for s in params.stop), default=1) - 1
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
                except BaseException as exc:  # surfaced to the consumer below
                    errors.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, name="transformers-engine-stream", daemon=True)
            worker.start()
            exhausted = False
            try:
                text, sent = "", 0
                for piece in streamer:
                    text += piece
                    cut, hit = _cut_at_stop(text, params.stop)
                    safe = len(cut) if hit else max(sent, len(text) - holdback)
                    if safe > sent:
                        yield cut[sent:safe] if hit else text[sent:safe]
                        sent = safe
                    if hit:
                        break
                else:
                    exhausted = True
                    if len(text) > sent:
                        yield text[sent:]
            finally:
                if not exhausted:  # consumer left early or a stop string was hit
                    stopper.cancelled = True
                    for _ in streamer:  # drain so the generation thread never blocks on put()
                        pass
                worker.join()
            if errors:
                raise errors[0]

    # ---- internals ------------------------------------------------------------------------

    def _encode(self, messages: list[ChatMessage]) -> torch.Tensor:
        return torch.tensor([encode_prompt(self.tokenizer, messages)], device=self.device)

    def _decoding_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "eos_token_id": self._eot_id,
            "pad_token_id": self.tokenizer.pad_token_id or self._eot_id,
        }
        if params.temperature == 0.0:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        return kwargs

    def _weights(self, adapter: str | None) -> Any:
        """Context manager selecting base weights (``None``) or a named adapter."""
        if adapter is None:
            if self._model is self.base_model:
                return nullcontext()
            return self._model.disable_adapter()
        if adapter not in self._adapter_paths:
            raise KeyError(f"adapter {adapter!r} is not loaded; loaded: {self.adapters()}")
        self._model.set_adapter(adapter)
        return nullcontext()


class _StopOnStrings(StoppingCriteria):
    """Ends decoding once the new text contains a stop string, or when cancelled."""

    def __init__(self, tokenizer: Any, prompt_len: int, stops: list[str]) -> None:
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.stops = [s for s in stops if s]
        self.cancelled = False

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        done = self.cancelled
        if not done and self.stops:
            text = self.tokenizer.decode(input_ids[0, self.prompt_len :], skip_special_tokens=True)
            done = any(s in text for s in self.stops)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Text before the earliest stop string, and whether one was found."""
    positions = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(positions)], True) if positions else (text, False)
