"""HTML to plain text for untrusted post content.

Keeps the words a reader sees: block elements become line breaks, entities are decoded,
scripts/styles and Mastodon's invisible URL parts are dropped. Never returns markup.
"""

from __future__ import annotations

import html
import re
import unicodedata

from selectolax.lexbor import LexborHTMLParser as HTMLParser, LexborNode as Node

_BLOCK = {
    "p", "div", "li", "ul", "ol", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6",
    "pre", "tr", "table", "section", "article", "aside", "header", "footer", "hr", "dd", "dt",
}
_DROP = {"script", "style", "noscript", "template", "iframe", "object", "embed", "head", "svg", "math"}
_TAG_HINT = re.compile(r"<[a-zA-Z/!][^>]*>|&[#a-zA-Z0-9]+;")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANKS = re.compile(r"\n\s*\n\s*\n+")


def looks_like_html(value: str) -> bool:
    return bool(_TAG_HINT.search(value))


def _walk(node: Node, out: list[str]) -> None:
    child = node.child
    while child is not None:
        tag = child.tag
        if tag == "-text":
            out.append(child.text_content or "")
        elif tag in _DROP or tag == "_comment":
            pass
        elif "invisible" in (child.attributes.get("class") or "").split():
            pass  # Mastodon hides "https://" and the tail of long URLs this way
        else:
            block = tag in _BLOCK
            if block:
                out.append("\n")
            _walk(child, out)
            if block or tag == "br":
                out.append("\n")
            if "ellipsis" in (child.attributes.get("class") or "").split():
                out.append("…")
        child = child.next


def html_to_text(value: str | None) -> str:
    """Plain text of a post; plain input passes through with entities decoded."""
    if not value:
        return ""
    if looks_like_html(value):
        tree = HTMLParser(value)
        root = tree.body or tree.root
        parts: list[str] = []
        if root is not None:
            _walk(root, parts)
        text = "".join(parts)
    else:
        text = value
    text = html.unescape(text)
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    text = _BLANKS.sub("\n\n", text)
    return text.strip()
