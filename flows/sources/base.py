"""The one interface every source implements, and the records it yields.

A collector turns a source's native payloads into ``PostRecord``s and hands them over in
``Batch``es. Each batch carries the cursor that is true once the batch is stored; the
warehouse commits both in one transaction, so a source that dies halfway resumes from the
last stored batch and never skips or duplicates anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Iterator, Protocol

from pydantic import BaseModel, ConfigDict


@dataclass
class PostRecord:
    """One post or comment as a source delivered it (text may be HTML)."""

    platform: str
    site: str
    native_id: str
    content: str
    created_at: datetime | None
    author: str | None = None
    thread_native_id: str | None = None
    parent_native_id: str | None = None
    edited_at: datetime | None = None
    url: str | None = None
    lang: str | None = None
    spoiler_text: str | None = None
    raw: dict[str, Any] | None = None
    # Set by collectors that already produced plain text (e.g. Mastodon's careful conversion).
    text: str | None = None


@dataclass
class SkipRecord:
    """Something deliberately not stored (consent) or rejected (bad input), for provenance."""

    platform: str
    site: str
    native_id: str | None
    action: str  # skipped_consent | rejected | deleted
    reason: str
    detail: str | None = None


@dataclass
class Batch:
    posts: list[PostRecord] = field(default_factory=list)
    skips: list[SkipRecord] = field(default_factory=list)
    # Problems with single items ("file:line: reason"); the run becomes partial.
    errors: list[str] = field(default_factory=list)
    # The cursor to store together with this batch (None: leave the stored cursor as is).
    cursor: dict[str, Any] | None = None
    # Stored posts the source reports gone (404): marked deleted, text removed.
    deleted_native_ids: list[tuple[str, str, str]] = field(default_factory=list)
    fetched: int = 0
    requests: int = 0


class SourceError(Exception):
    """A source failed as a whole (unreachable, malformed payload, missing file).

    The message names the source and the problem; ``fatal_config`` marks problems a user must
    fix in the configuration (exit code 2) rather than transient ones.
    """

    def __init__(self, source: str, problem: str, *, url: str | None = None, fatal_config: bool = False):
        self.source = source
        self.problem = problem
        self.url = url
        self.fatal_config = fatal_config
        where = f" ({url})" if url else ""
        super().__init__(f"source {source!r}{where}: {problem}")


class SourceOptions(BaseModel):
    """Base for each source type's own config keys; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class BaseCollector:
    """Common state of a collector: its source name, validated options and run context."""

    type_name: ClassVar[str]
    Options: ClassVar[type[SourceOptions]]

    def __init__(self, name: str, options: Any, context: Any) -> None:
        self.name = name
        self.options = options
        self.context = context

    def require(self, option: str, hint: str) -> None:
        """A list option the source cannot work without: empty is a config error that names it."""
        if not getattr(self.options, option):
            raise SourceError(self.name, f"{option} is empty; {hint}", fatal_config=True)

    def resolve_path(self, path: Path) -> Path:
        """A file path from the config, relative to the project root."""
        root = Path(getattr(self.context, "project_root", ".") or ".")
        return path if path.is_absolute() else root / path


class CollectorContext(Protocol):
    """What a collector may know about the run: politeness settings and secrets lookup."""

    http: Any
    project_root: Any


class Collector(Protocol):
    """A source. ``collect`` yields batches from ``cursor`` on; it must not touch the warehouse."""

    type_name: ClassVar[str]
    Options: ClassVar[type[SourceOptions]]

    def __init__(self, name: str, options: SourceOptions, context: CollectorContext) -> None: ...

    def collect(self, cursor: dict[str, Any] | None) -> Iterator[Batch]: ...
