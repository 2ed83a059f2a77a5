"""Reading JSON Lines files one object per line, with a `file:line: reason` for each bad line.

Used by every JSONL input (interchange imports, labelled data, classify/eval inputs) so they
report problems the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, TextIO


def jsonl_objects(handle: TextIO) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, object, None) for good lines and (line number, None, reason) for bad ones;
    blank lines are skipped."""
    for line_no, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield line_no, None, f"invalid JSON ({exc.msg} at column {exc.colno})"
            continue
        if not isinstance(row, dict):
            yield line_no, None, "not an object"
            continue
        yield line_no, row, None


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    with path.open(encoding="utf-8") as handle:
        yield from jsonl_objects(handle)
