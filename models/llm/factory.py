"""Turn the ``RAGLOOP_LLM`` setting into an engine, so choosing a backend is configuration.

Accepted specs (see docs/engines.md)::

    open_engine("smollm2")                                 # default: SmolLM2-135M-Instruct on CPU
    open_engine("/models/Qwen2.5-0.5B-Instruct")           # any local HF causal-LM folder
    open_engine("vllm://gpu-1:8000?model=Qwen/Qwen2.5-7B-Instruct")      # http://gpu-1:8000/v1
    open_engine("openai://127.0.0.1:8080/v1?model=smollm2")              # any compatible server
    open_engine("vllm+https://llm.example.com?model=m&timeout=60")       # TLS: add "+https"

The model query parameter may be left out: the engine then serves the first base model the server
lists. The API key comes from ``api_key=`` (processes pass ``settings.llm.api_key``, set by
``RAGLOOP_LLM_API_KEY``), never the URL, so it does not end up in logs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from models.llm.base import LLMEngine

ACCEPTED_FORMS = (
    "'smollm2'; a local Hugging Face causal-LM folder (config.json + tokenizer with a chat template); "
    "'vllm://HOST:PORT[/v1]?model=NAME'; 'openai://HOST:PORT/v1?model=NAME' "
    "(add '+https' to the scheme for TLS, e.g. 'vllm+https://…')"
)
_REMOTE_SCHEMES = {"vllm", "openai"}


def open_engine(
    spec: str,
    *,
    model_cache: Path | None = None,
    api_key: str | None = None,
    max_adapters: int = 8,
    vision: bool = False,
) -> LLMEngine:
    """Build the engine named by ``spec``; raises ValueError naming the accepted forms. ``max_adapters``
    (RAGLOOP_LLM_MAX_ADAPTERS) LoRA adapters stay loaded; the least recently used beyond are unloaded.
    ``vision`` (RAGLOOP_LLM_VISION) says the remote model takes images; local engines are text-only."""
    spec = spec.strip()
    if "://" in spec:
        return _remote(spec, api_key, max_adapters, vision)
    if vision:
        raise ValueError(f"RAGLOOP_LLM_VISION is on but RAGLOOP_LLM={spec!r} is a local text-only engine; point RAGLOOP_LLM at a "
                         "vision model's server (vllm://… or openai://…) or turn RAGLOOP_LLM_VISION off (images are then used for search only)")
    path = local_checkpoint(spec, model_cache=model_cache)
    if spec == "smollm2" or (path.is_dir() and (path / "config.json").exists()):
        return _transformers(path, max_adapters)
    raise ValueError(f"RAGLOOP_LLM={spec!r} is neither a known engine nor a model folder; accepted: {ACCEPTED_FORMS}")


def local_checkpoint(spec: str, *, model_cache: Path | None = None) -> Path:
    """The checkpoint folder a local spec names, SmolLM2 fetched into the cache on first use: what
    LoRA trains on. A remote server keeps its weights to itself, so its spec raises ValueError."""
    spec = spec.strip()
    if spec == "smollm2":
        from models.fetch import default_model_cache, ensure_smollm2

        return ensure_smollm2(model_cache or default_model_cache())
    if "://" in spec:
        raise ValueError(f"RAGLOOP_LLM={spec!r} is a remote server; set RAGLOOP_TRAIN_BASE_MODEL to the checkpoint it serves")
    return Path(spec).expanduser()


def _transformers(path: Path, max_adapters: int) -> LLMEngine:
    from models.llm.transformers_engine import TransformersEngine

    return TransformersEngine(path, max_adapters=max_adapters)


def _remote(spec: str, api_key: str | None, max_adapters: int, vision: bool) -> LLMEngine:
    from models.llm.openai_engine import OpenAICompatibleEngine

    parts = urlsplit(spec)
    scheme, _, transport = parts.scheme.partition("+")
    if scheme not in _REMOTE_SCHEMES or transport not in ("", "http", "https") or not parts.hostname:
        raise ValueError(f"RAGLOOP_LLM={spec!r} is not a supported engine URL; accepted: {ACCEPTED_FORMS}")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"model", "timeout"}
    if unknown:
        raise ValueError(f"RAGLOOP_LLM={spec!r} has unknown parameters {sorted(unknown)}; use model= and timeout=")
    path = parts.path.rstrip("/") or "/v1"  # vLLM and TGI serve the API under /v1
    base_url = f"{transport or 'http'}://{parts.netloc}{path}"
    timeout = float(query.get("timeout", 120.0))
    return OpenAICompatibleEngine(base_url, query.get("model") or None, api_key=api_key, timeout=timeout, max_adapters=max_adapters,
                                  vision=vision)
