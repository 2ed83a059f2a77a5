"""The Atom feed of reports (RFC 4287): one entry per report, newest first.

Links are relative to the feed (``month-2019-02/index.html``), so the folder can be published
anywhere. Entry ids are stable across rebuilds; ``updated`` is when the report last changed.
"""

from __future__ import annotations

import os
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reports.text import clean_text

ATOM = "http://www.w3.org/2005/Atom"
MAX_ENTRIES = 100


def _id(*parts: str) -> str:
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, "framewatch:" + "/".join(parts)))


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        element.text = clean_text(text)
    return element


def write_feed(path: Path, settings: Any, manifests: list[dict[str, Any]]) -> Path:
    ET.register_namespace("", ATOM)
    title = clean_text(settings.report.title) or "framewatch report"
    feed = ET.Element(f"{{{ATOM}}}feed")
    _sub(feed, "title", title)
    _sub(feed, "subtitle", "How the framings of the debate shift, period by period")
    _sub(feed, "id", _id("feed", title))
    _sub(feed, "link", rel="alternate", type="text/html", href="index.html")
    _sub(feed, "link", rel="self", type="application/atom+xml", href="feed.xml")
    author = _sub(feed, "author")
    _sub(author, "name", "framewatch")
    _sub(feed, "generator", "framewatch")
    entries = sorted(manifests, key=lambda m: (m.get("built_at", ""), m.get("period_end", "")), reverse=True)
    updated = max((m.get("built_at", "") for m in entries), default="") or \
        datetime.now(timezone.utc).isoformat(timespec="seconds")
    _sub(feed, "updated", updated)
    for manifest in entries[:MAX_ENTRIES]:
        entry = _sub(feed, "entry")
        kind = "whole corpus" if manifest.get("kind") == "overall" else manifest.get("granularity", "")
        _sub(entry, "title", f"{manifest['title']} ({kind})")
        _sub(entry, "id", _id("report", title, manifest["slug"]))
        _sub(entry, "link", rel="alternate", type="text/html", href=f"{manifest['slug']}/index.html")
        _sub(entry, "updated", manifest.get("built_at") or updated)
        _sub(entry, "published", manifest.get("published_at") or manifest.get("built_at") or updated)
        lines = [*manifest.get("summary", [])]
        if manifest.get("failed_sources"):
            lines.append("Sources with problems in this run: " + ", ".join(manifest["failed_sources"]) + ".")
        _sub(entry, "summary", "\n".join(lines) or "No summary.", type="text")
    tree = ET.ElementTree(feed)
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tree.write(tmp, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, path)
    return path
