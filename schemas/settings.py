"""One settings object for every process, and the only place that reads the environment.

Values come from explicit arguments, then `RAGLOOP_*` variables, then a TOML file (`ragloop.toml`
in the working directory, or the path in `RAGLOOP_CONFIG`, read when settings are built). They
are grouped into sections (`schemas/settings_sections.py`) and handed down: code that needs the
retrieval parameters receives `settings.retrieval`, not the process environment.

URLs pick the backend so the same code runs embedded on a laptop and against a cluster:
`memory://` vs `kafka://host:port`, `embedded://` vs `http://host:9200`, SQLite vs `postgresql://`.

    settings = Settings()                                   # environment + TOML
    settings.tasks.lease_s                                  # RAGLOOP_TASK_LEASE_S
    fast = settings.override(task_lease_s=2.0)              # tests: flat names, a new object
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, TypeAdapter, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from schemas.settings_sections import (
    BROKER_SCHEMES,
    SEARCH_SCHEMES,
    SECTIONS,
    AgentSettings,
    ArtifactStoreSettings,
    BrokerSettings,
    CallbackSettings,
    ChunkingSettings,
    ClipSettings,
    EmbedderSettings,
    EvalSettings,
    GatewaySettings,
    ImageGenSettings,
    ImageSettings,
    IngestSettings,
    LLMSettings,
    RetrievalSettings,
    SearchSettings,
    SecuritySettings,
    SlackSettings,
    TaskSettings,
    TrainingSettings,
    WorkerSettings,
    flat_names,
)

__all__ = ["BROKER_SCHEMES", "SEARCH_SCHEMES", "Settings", "get_settings"]

ENV_PREFIX = "RAGLOOP_"
TOP_LEVEL = ("home", "database_url", "model_cache", "artifacts_url", "log_level")
FLAT = flat_names()  # flat name -> (section, field), for the environment, TOML keys and `override`
REDACTED = "**********"  # how pydantic prints a SecretStr in JSON mode
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with any password in it shown as `**********` (``http://user:secret@host`` → ``http://user:**********@host``),
    for logs and messages: a service URL may carry credentials."""
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", url)


def _default_home() -> Path:
    return Path.home() / ".ragloop"


def nest(flat: dict[str, Any], origin: str) -> dict[str, Any]:
    """Flat names (`task_lease_s`) to the nested shape (`{"tasks": {"lease_s": …}}`); unknown names
    are refused, naming `origin` so a typo in a TOML file or a test says where it is."""
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        if name in TOP_LEVEL:
            nested[name] = value
        elif name in FLAT:
            section, field = FLAT[name]
            nested.setdefault(section, {})[field] = value
        else:
            raise ValueError(f"{origin}: unknown setting {name!r}; known: {sorted([*TOP_LEVEL, *FLAT])}")
    return nested


class _EnvironmentSource(PydanticBaseSettingsSource):
    """`RAGLOOP_<FLAT NAME>` for every field (case-insensitive, as before the sections existed)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # unused: __call__ reads all at once
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        environ = {key.lower(): value for key, value in os.environ.items()}
        prefix = ENV_PREFIX.lower()
        found = {name: environ[prefix + name] for name in (*TOP_LEVEL, *FLAT) if prefix + name in environ}
        return nest(found, "environment")


class _TomlSource(PydanticBaseSettingsSource):
    """The TOML file, found when settings are built: flat keys as in the variable names
    (`task_lease_s = 2`), or a table per section (`[tasks]` `lease_s = 2`)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = Path(os.environ.get("RAGLOOP_CONFIG", "ragloop.toml")).expanduser()
        if not path.is_file():
            return {}
        with path.open("rb") as file:
            document = tomllib.load(file)
        tables = {name: document.pop(name) for name in list(document) if name in SECTIONS and isinstance(document[name], dict)}
        known = {name: value for name, value in document.items() if name in TOP_LEVEL or name in FLAT}  # others ignored, as always
        nested = nest(known, str(path))
        for section, values in tables.items():
            nested.setdefault(section, {}).update(values)
        return nested


class Settings(BaseSettings):
    """Runtime configuration, in sections. `RAGLOOP_CONFIG` names the TOML file; `RAGLOOP_HOME`
    the data folder (default `~/.ragloop`)."""

    model_config = SettingsConfigDict(extra="forbid", validate_default=True)

    home: Path = Field(default_factory=_default_home, description="Data folder: embedded index, SQLite file, adapters.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite file under home. `postgresql://…` for cluster mode.")
    model_cache: Path | None = Field(None, description="Where converted model checkpoints live; default ~/.cache/ragloop/models.")
    artifacts_url: str | None = Field(None, description="Where adapters are kept so every host can load them: a folder "
                                      "(`file:///path`, default home/artifacts) or an S3-compatible bucket (`s3://bucket/prefix`).")
    log_level: str = Field("INFO", description="Structured log level of workers and the API; the CLI defaults to WARNING.")
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    tasks: TaskSettings = Field(default_factory=TaskSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    callbacks: CallbackSettings = Field(default_factory=CallbackSettings)
    artifact_store: ArtifactStoreSettings = Field(default_factory=ArtifactStoreSettings)
    image_gen: ImageGenSettings = Field(default_factory=ImageGenSettings)
    clip: ClipSettings = Field(default_factory=ClipSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)

    @model_validator(mode="before")
    @classmethod
    def _no_flat_arguments(cls, data: Any) -> Any:
        # `llm` and `embedder` are section names too: only a plain value there is the old flat field
        flat = sorted(name for name, value in data.items() if name in FLAT and not (name in SECTIONS and isinstance(value, (dict, BaseModel))))\
            if isinstance(data, dict) else []
        if flat:
            raise ValueError(f"flat settings {flat} are not arguments of Settings: pass sections "
                             f"(Settings(tasks={{'lease_s': 2.0}})) or use Settings().override({flat[0]}=…)")
        return data

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments beat the environment, which beats the TOML file; sections merge field by field.
        return init_settings, _EnvironmentSource(settings_cls), _TomlSource(settings_cls)

    def __getattr__(self, name: str) -> Any:
        if name in FLAT:  # a caller written for the flat settings: say where the value lives now
            section, field = FLAT[name]
            raise AttributeError(f"Settings.{name} is now Settings.{section}.{field}")
        return super().__getattr__(name)  # type: ignore[misc]

    @classmethod
    def env_names(cls) -> list[str]:
        """Every variable that sets a field (besides `RAGLOOP_CONFIG`)."""
        return [ENV_PREFIX + name.upper() for name in (*TOP_LEVEL, *FLAT)]

    def override(self, **flat: Any) -> Settings:
        """A copy with some fields replaced, named as their variables are (`task_lease_s=2.0`,
        `broker_url=…`), validated like any other source."""
        update: dict[str, Any] = {}
        for key, value in nest(flat, "Settings.override").items():
            if key in SECTIONS:
                section = getattr(self, key)
                update[key] = type(section).model_validate({**dict(section), **value})
            else:
                annotation = type(self).model_fields[key].annotation
                assert annotation is not None, key  # every field of Settings is declared with a type
                update[key] = TypeAdapter(annotation).validate_python(value)
        return self.model_copy(update=update)

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as plain data, secrets shown as `**********` (`ragloop config show`)."""
        def plain(value: Any) -> Any:
            if isinstance(value, SecretStr):
                return REDACTED
            if isinstance(value, str):  # a password inside a URL (`postgresql://user:secret@host`) is a secret too
                return redact_url(value)
            return str(value) if isinstance(value, Path) else value

        shown: dict[str, Any] = {name: plain(getattr(self, name)) for name in TOP_LEVEL}
        for name in SECTIONS:
            shown[name] = {field: plain(value) for field, value in getattr(self, name)}
        return shown

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url or f"sqlite:///{self.home / 'ragloop.db'}"
        if url.startswith("postgresql://"):
            return "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url

    @property
    def auth_enabled(self) -> bool:
        """`auto` is on in cluster mode, and in embedded mode as soon as keys are configured: someone
        who sets RAGLOOP_API_KEYS expects them to be required, not silently ignored."""
        auth: Literal["auto", "on", "off"] = self.security.auth
        return auth == "on" or (auth == "auto" and (not self.broker.is_embedded or self.security.api_keys is not None))

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"


@cache
def get_settings() -> Settings:
    """Process-wide settings for entry points (CLI, API, workers), which pass them down; tests build
    their own `Settings(...)` or `.override(...)` instead of mutating this one."""
    return Settings()
