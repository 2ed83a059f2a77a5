"""Framing codebooks: one TOML file per debate, validated before anything is trained on it.

A codebook names the framings (multi-label, a post may carry none) and the stance labels
(exactly one per post) and gives, for each, a definition, what it includes and excludes, and
example posts. The classifier reads everything it knows about a debate from here, so another
debate is another codebook file and no code changes.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


def _snake_case(value: str) -> str:
    """Keys and names are lower_snake_case, so they work as column values and file names."""
    if not _KEY.match(value):
        raise ValueError(f"{value!r} must be lower_snake_case (letters, digits, underscores)")
    return value


class CodebookError(Exception):
    """A codebook problem a user must fix; the message names the file and the key."""


def _clean(text: str) -> str:
    return " ".join(text.split())


def _texts(values: list[str]) -> list[str]:
    cleaned = [_clean(v) for v in values]
    if any(not v for v in cleaned):
        raise ValueError("must not contain empty strings")
    return cleaned


class Framing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key: str
    label: str
    definition: str
    includes: list[str] = Field(default_factory=list)
    excludes: list[str] = Field(default_factory=list)
    examples: list[str] = Field(min_length=1)
    counter_examples: list[str] = Field(default_factory=list)

    @field_validator("key")
    @classmethod
    def _key_shape(cls, value: str) -> str:
        return _snake_case(value)

    @field_validator("label", "definition")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = _clean(value)
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("includes", "excludes", "examples", "counter_examples")
    @classmethod
    def _strings(cls, value: list[str]) -> list[str]:
        return _texts(value)


class StanceLabel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    definition: str
    examples: list[str] = Field(default_factory=list)

    @field_validator("definition")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = _clean(value)
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("examples")
    @classmethod
    def _strings(cls, value: list[str]) -> list[str]:
        return _texts(value)


class Stance(BaseModel):
    """``labels`` lists the stance labels in order; each has its own table ``[stance.<label>]``."""

    model_config = ConfigDict(extra="allow", frozen=True)
    labels: list[str] = Field(min_length=2)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if not _KEY.match(label):
                raise ValueError(f"{label!r} must be lower_snake_case (letters, digits, underscores)")
        if len(set(value)) != len(value):
            raise ValueError("labels must be unique")
        return value

    @model_validator(mode="after")
    def _tables(self) -> "Stance":
        extra = dict(self.model_extra or {})
        unknown = sorted(set(extra) - set(self.labels))
        if unknown:
            raise ValueError(f"table [stance.{unknown[0]}] is not one of labels {self.labels}")
        missing = [label for label in self.labels if label not in extra]
        if missing:
            raise ValueError(f"label {missing[0]!r} has no [stance.{missing[0]}] table with a definition")
        return self

    def label_table(self, label: str) -> StanceLabel:
        return StanceLabel.model_validate((self.model_extra or {})[label])


class Codebook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    topic: str
    version: str = "1"
    stance_target: str
    framings: list[Framing] = Field(min_length=1)
    stance: Stance
    # Set by load_codebook: a hash of the file's parsed content (not of its whitespace).
    content_hash: str = Field(default="", exclude=True)
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _snake_case(value)

    @model_validator(mode="after")
    def _unique(self) -> "Codebook":
        seen: set[str] = set()
        for framing in self.framings:
            if framing.key in seen:
                raise ValueError(f"framing key {framing.key!r} is used twice; keys must be unique")
            seen.add(framing.key)
        clash = seen & set(self.stance.labels)
        if clash:
            raise ValueError(f"{sorted(clash)[0]!r} is both a framing key and a stance label")
        return self

    @property
    def framing_keys(self) -> list[str]:
        return [f.key for f in self.framings]

    @property
    def stance_labels(self) -> list[str]:
        return list(self.stance.labels)

    def framing(self, key: str) -> Framing:
        for framing in self.framings:
            if framing.key == key:
                return framing
        raise KeyError(key)

    def stance_table(self, label: str) -> StanceLabel:
        return self.stance.label_table(label)

    def check_labels(self, framings: list[str], stance: str | None) -> None:
        """ValueError naming the first framing key or stance label this codebook does not know."""
        known = set(self.framing_keys)
        for key in framings:
            if key not in known:
                raise ValueError(f"unknown framing {key!r} (codebook {self.name!r} has {', '.join(self.framing_keys)})")
        if stance is not None and stance not in self.stance.labels:
            raise ValueError(f"unknown stance {stance!r} (codebook {self.name!r} has {', '.join(self.stance.labels)})")


def _location(item: dict[str, Any], data: dict[str, Any]) -> str:
    """A readable key path; list positions of framings also show the framing's key."""
    parts: list[str] = []
    loc = list(item["loc"])
    node: Any = data
    for position, part in enumerate(loc):
        if isinstance(part, int):
            label = f"[{part}]"
            if position > 0 and loc[position - 1] == "framings" and isinstance(node, list) and part < len(node):
                key = node[part].get("key") if isinstance(node[part], dict) else None
                if isinstance(key, str):
                    label = f"[{part}] ({key})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(part))
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return "".join(parts) or "(top level)"


def parse_codebook(data: dict[str, Any], source: str = "codebook") -> Codebook:
    try:
        codebook = Codebook.model_validate(data)
        for label in codebook.stance.labels:
            codebook.stance.label_table(label)
    except ValidationError as exc:
        lines = []
        for item in exc.errors():
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown key"
            elif item["type"] == "missing":
                message = "required key is missing"
            lines.append(f"{source}: {_location(item, data)}: {message}")
        raise CodebookError("\n".join(lines)) from exc
    digest = hashlib.sha256(repr(_canonical(data)).encode()).hexdigest()[:16]
    return codebook.model_copy(update={"content_hash": digest})


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted((k, _canonical(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, str):
        return _clean(value)
    return value


def load_codebook(path: Path | str) -> Codebook:
    """Read and validate a codebook; CodebookError names the file and the offending key."""
    path = Path(path)
    if not path.exists():
        raise CodebookError(f"{path}: codebook file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CodebookError(f"{path}: not valid TOML: {exc}") from exc
    codebook = parse_codebook(data, str(path))
    return codebook.model_copy(update={"path": path})
