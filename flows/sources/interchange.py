"""framewatch's interchange format (JSONL or CSV, one post per line/row).

Fields: id, thread_id, parent_id, author, created_at (ISO 8601 with zone), text (plain or
HTML); optional url, platform, lang, site. This is how analysts bring their own data.
A bad line is reported as ``file:line: reason`` and the valid lines are still stored.
"""

from __future__ import annotations

import csv
import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from flows.sources import register
from framewatch.jsonl import jsonl_objects
from flows.sources.base import BaseCollector, Batch, PostRecord, SourceError, SourceOptions

REQUIRED = ("id", "thread_id", "created_at", "text")
OPTIONAL = ("parent_id", "author", "url", "platform", "lang", "site")
BATCH_ROWS = 5000


class InterchangeOptions(SourceOptions):
    path: Path
    platform: str = "import"  # used when a row has no platform
    site: str | None = None   # used when a row has no site (default: the source name)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def parse_row(row: dict[str, Any], default_platform: str, default_site: str) -> PostRecord:
    """One interchange row as a PostRecord; ValueError says what is wrong with it."""
    if not isinstance(row, dict):
        raise ValueError("not an object")
    missing = [key for key in REQUIRED if _text(row.get(key)) is None and key != "text"]
    if row.get("text") is None:
        missing.append("text")
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    stamp = str(row["created_at"]).strip()
    try:
        created = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"created_at {stamp!r} is not ISO 8601") from None
    if created.tzinfo is None:
        raise ValueError(f"created_at {stamp!r} has no time zone")
    native_id = _text(row["id"])
    parent = _text(row.get("parent_id"))
    if parent == native_id:
        raise ValueError("parent_id equals id")
    return PostRecord(
        platform=_text(row.get("platform")) or default_platform,
        site=_text(row.get("site")) or default_site,
        native_id=native_id,
        thread_native_id=_text(row["thread_id"]),
        parent_native_id=parent,
        author=_text(row.get("author")),
        created_at=created,
        content=str(row["text"]),
        url=_text(row.get("url")),
        lang=_text(row.get("lang")),
        raw=row,
    )


class _FileCollector(BaseCollector):
    """Shared reading loop; subclasses yield (line number, row or parse error) pairs."""

    Options = InterchangeOptions

    def __init__(self, name: str, options: InterchangeOptions, context: Any):
        super().__init__(name, options, context)
        self.path = self.resolve_path(options.path)

    def rows(self, handle) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
        raise NotImplementedError

    def check(self) -> None:
        if not self.path.is_file():
            raise SourceError(self.name, f"{self.path}: file not found", fatal_config=True)

    def collect(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        self.check()
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        site = self.options.site or self.name
        batch = Batch()
        rows_read = 0
        with self.path.open(encoding="utf-8", newline="") as handle:
            for line_no, row, problem in self.rows(handle):
                rows_read += 1
                batch.fetched += 1
                if problem is None:
                    try:
                        batch.posts.append(parse_row(row, self.options.platform, site))
                    except ValueError as exc:
                        problem = str(exc)
                if problem is not None:
                    batch.errors.append(f"{self.path}:{line_no}: {problem}")
                if len(batch.posts) >= BATCH_ROWS:
                    yield batch
                    batch = Batch()
        batch.cursor = {"file": str(self.path), "sha256": digest, "rows": rows_read}
        yield batch


@register("jsonl")
class JsonlCollector(_FileCollector):
    def rows(self, handle):
        return jsonl_objects(handle)


@register("csv")
class CsvCollector(_FileCollector):
    def rows(self, handle):
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        absent = [key for key in REQUIRED if key not in header]
        if absent:
            raise SourceError(self.name, f"{self.path}: header lacks {', '.join(absent)}", fatal_config=True)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield reader.line_num, None, f"unreadable CSV ({exc})"
                continue
            if None in row:
                yield reader.line_num, None, f"{len(row[None])} more fields than the header"
                continue
            yield reader.line_num, row, None
