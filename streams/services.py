"""The heavy things a process may need (models, index, agent), built lazily and at most once.

A role asks only for what it uses, so `ragloop worker eval` never loads the LLM and
`ragloop worker agent` never loads the trainer.
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from schemas.settings import Settings
from streams.stores import Stores

# Heavy modules (torch, transformers, search clients) are imported inside the properties that need
# them: a gateway or eval process starts in a second instead of importing a deep-learning stack.
if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from agents.graph import RagAgent
    from agents.tools.base import Tool
    from indexing.backends.base import SearchBackend
    from indexing.images.ingest import LazyImages
    from indexing.images.store import ImageStore
    from indexing.pipeline import IngestPipeline
    from indexing.retriever import HybridRetriever
    from models.artifacts import ArtifactStore
    from models.embedder import TextEmbedder
    from models.image_generator import ImageGenerator
    from models.llm.base import LLMEngine
    from models.version_router import VersionRouter
    from streams.callbacks.sender import CallbackSender

log = structlog.get_logger(__name__)
_UNSEEN = object()  # adapter_for's "not looked up yet" (None means base weights)


class Services:
    def __init__(self, settings: Settings, stores: Stores | None = None) -> None:
        self.settings = settings
        self._stores = stores  # None in a process that only reads the index (`ragloop search`): no database opened
        self._lock = threading.RLock()  # cached_property is not thread-safe; roles warm up from threads
        self._adapter_paths: dict[str, str | None] = {}  # version → its adapter folder here (None: base weights)

    @property
    def stores(self) -> Stores:
        if self._stores is None:
            raise LookupError("these services were built without stores (index only)")
        return self._stores

    def _once(self, name: str) -> object:
        with self._lock:
            return getattr(self, name)

    @cached_property
    def embedder(self) -> TextEmbedder:
        from models.embedder import TextEmbedder

        return TextEmbedder(self.settings.embedder.model, backend=self.settings.embedder.backend, cache_dir=self.settings.model_cache)

    @cached_property
    def backend(self) -> SearchBackend:
        from indexing.backends.factory import open_backend

        return open_backend(self.settings.search.url, home=self.settings.home, dimension=self.embedder.dimension,
                            index_prefix=self.settings.search.opensearch_index)

    @cached_property
    def pipeline(self) -> IngestPipeline:
        from indexing.chunking import Chunker
        from indexing.pipeline import IngestPipeline

        return IngestPipeline(Chunker(**self.settings.chunking.model_dump()), self.embedder, self.backend)

    @cached_property
    def retriever(self) -> HybridRetriever:
        from indexing.retriever import HybridRetriever

        return HybridRetriever(self.embedder, self.backend, **self.settings.retrieval.model_dump(exclude={"k"}))

    @cached_property
    def base_model_path(self) -> Path:
        """The checkpoint LoRA trains on: RAGLOOP_TRAIN_BASE_MODEL, else the served model when it is local."""
        from models.llm.factory import local_checkpoint

        return local_checkpoint(str(self.settings.training.base_model or self.settings.llm.model), model_cache=self.settings.model_cache)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        """Where adapters are put by the trainer and fetched by every agent: RAGLOOP_ARTIFACTS_URL (default home/artifacts)."""
        from models.artifacts import open_artifact_store

        store = self.settings.artifact_store
        return open_artifact_store(self.settings.artifacts_url, home=self.settings.home, endpoint=store.endpoint, region=store.region,
                                   access_key=store.access_key.get_secret_value() if store.access_key else None,
                                   secret_key=store.secret_key.get_secret_value() if store.secret_key else None)

    @cached_property
    def engine(self) -> LLMEngine:
        """The serving engine RAGLOOP_LLM names: SmolLM2 or a local checkpoint on transformers, or a vLLM /
        OpenAI-compatible server (`vllm://host:8000?model=…`), which loads adapters at runtime."""
        from models.llm.factory import open_engine

        api_key = self.settings.llm.api_key
        return open_engine(self.settings.llm.model, model_cache=self.settings.model_cache,
                           api_key=api_key.get_secret_value() if api_key is not None else None, max_adapters=self.settings.llm.max_adapters,
                           vision=self.settings.llm.vision)

    @cached_property
    def image_generator(self) -> ImageGenerator:
        """The text-to-image pipeline RAGLOOP_IMAGE_GEN_CHECKPOINT names; ImageGenerationOff (saying how to turn it on) without one."""
        from models.image_generator import load_image_generator

        return load_image_generator(self.settings.image_gen)

    @cached_property
    def image_store(self) -> ImageStore:
        """The one image store of ingested and generated images (RAGLOOP_IMAGES_STORE_URL, default the folder home/images)."""
        from indexing.images.store import open_image_store

        return open_image_store(self.settings)

    @cached_property
    def images(self) -> LazyImages:
        """The process's image ingester (CLIP loads on the first image, not at start), shared by the ingest and images roles."""
        from indexing.images.ingest import LazyImages

        return LazyImages(self.settings)

    @cached_property
    def checkpointer(self) -> BaseCheckpointSaver:
        """Conversation memory: the PostgreSQL database in cluster mode, else its own SQLite file under
        home (a separate file, so checkpoint writes never wait on the task store's SQLite write lock)."""
        from agents.memory import open_checkpointer

        url = self.settings.database_url or ""
        if not url.startswith(("postgresql://", "postgres://")):
            url = f"sqlite:///{self.settings.home / 'agent-memory.db'}"
        return open_checkpointer(url)

    @cached_property
    def agent(self) -> RagAgent:
        from agents.graph import RagAgent

        return RagAgent(self._once("retriever"), self._once("engine"), checkpointer=self._once("checkpointer"),  # type: ignore[arg-type]
                        tools=[self.image_generation_tool(), *self.image_tools], **self.settings.agent.model_dump())

    def image_generation_tool(self) -> Tool:
        """The agent's "draw me …" tool, wired to the image job queue (the `images` worker renders; its outbox
        entry is published by this process's relay)."""
        from agents.tools.image_generation import ImageGenerationTool, SubmittedImage
        from models.image_jobs import ImageJobStore
        from streams.image_jobs import image_path, submit_image_job

        def submit(tenant: str, prompt: str) -> SubmittedImage:
            job, _ = submit_image_job(ImageJobStore(self.stores.db), self.settings, tenant=tenant, prompt=prompt)
            return SubmittedImage(id=job.id, url=image_path(job.id))

        return ImageGenerationTool(submit)

    @cached_property
    def image_tools(self) -> list[Tool]:
        """The image search tools when a CLIP checkpoint is configured (RAGLOOP_CLIP_CHECKPOINT), else none."""
        if self.settings.clip.checkpoint is None:
            return []
        from agents.tools.images import image_tools
        from indexing.images.search import ImageSearch

        return image_tools(ImageSearch.from_settings(self.settings, self.retriever))

    @cached_property
    def callbacks(self) -> CallbackSender:
        """The process's one callback sender: the callbacks role's consumer starts deliveries on it, its sweep owns its lifetime."""
        from streams.callbacks.sender import CallbackSender

        return CallbackSender(self.settings, self.stores)

    @cached_property
    def versions(self) -> VersionRouter:
        """Which version answers each tenant's requests, cached in memory (refreshed on `model.updated`)."""
        from models.version_router import VersionRouter

        return VersionRouter(self.stores.registry, self.settings.llm.model_family, ttl_s=self.settings.llm.serving_ttl_s)

    def adapter_for(self, version: str) -> str | None:
        """Load the adapter of a model version into the engine (once) and return its name there, the version
        id; None means base weights. The files come from the artifact store (`artifact_uri`), or from the
        legacy `adapter_path` of rows written before it. A name is one set of weights forever: a version
        whose files would come from another folder than the one loaded under its name is refused."""
        with self._lock:
            folder = self._adapter_paths.get(version, _UNSEEN)
        if folder is _UNSEEN:  # a version's adapter never changes: look it up once
            record = self.stores.registry.get_version(version)
            if record is None:
                raise LookupError(f"unknown model version {version!r}")
            if record.artifact_uri:
                folder = str(self._once("artifacts").fetch(record.artifact_uri, version))  # type: ignore[attr-defined]
            else:
                folder = record.adapter_path
            with self._lock:
                folder = self._adapter_paths.setdefault(version, folder)
        if folder is None:
            return None
        engine = self._once("engine")
        engine.load_adapter(version, Path(str(folder)))  # type: ignore[attr-defined]  # no-op when loaded; reloads an evicted one
        return version

    def warm(self, *names: str) -> None:
        for name in names:
            self._once(name)

    def close(self) -> None:
        if "backend" in self.__dict__:
            self.backend.close()
        if "checkpointer" in self.__dict__:
            from agents.memory import close_checkpointer

            close_checkpointer(self.checkpointer)
