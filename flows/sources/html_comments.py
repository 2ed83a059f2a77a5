"""Comment sections of web pages (``type = "html"``), and the parser the WordPress source
falls back to when a site's REST API is switched off.

For each page: the article is the thread root, every comment a post with its parent. The
parser knows WordPress theme markup (``ol.commentlist`` / ``ol.comment-list`` /
``ul.comment-list``, ``li#comment-N``, ``article#div-comment-N``, ``cite.fn`` / ``b.fn``,
``time[datetime]``, nested ``ul.children`` / ``ol.children`` - also when a theme closes the
``li`` before its replies), schema.org ``Comment`` microdata, Disqus' server-rendered
no-script fallback (``div.d-noscript-comments div.comment``), and otherwise guesses from
class names. Themes it cannot read are configured with CSS selectors:
``selectors = { comment = "...", author = "...", time = "...", text = "...", children = "..." }``.

Identifiers are stable across runs: WordPress comments are ``comment-N`` (the same ids the
REST API and the comment feeds give), the article is ``post-N`` when the page reveals its
WordPress id, else ``page-<hash of its canonical URL>``; comments without any id get
``h-<hash of author, time text and text>`` (a counter is added for exact duplicates).
Times come from ``datetime`` attributes where the theme has them, else from the printed text
(best effort, taken as UTC, year from the article when the theme leaves it out); a comment
without any readable time keeps ``created_at = NULL``. robots.txt is honoured: a disallowed
page is not fetched and is recorded in provenance as ``skipped_consent``.
"""

from __future__ import annotations

import hashlib
import html as htmllib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator
from urllib.parse import urldefrag, urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, field_validator
from selectolax.lexbor import LexborHTMLParser, LexborNode

from flows.sources import register
from flows.sources._dates import parse_iso, parse_loose
from flows.sources._http import PoliteClient, host_of
from flows.sources.base import BaseCollector, Batch, PostRecord, SkipRecord, SourceOptions
from nlp.text import html_to_text

PLATFORM = "blog"

# -- where comments live -------------------------------------------------------------------

_WP_LISTS = (".commentlist", ".comment-list", ".comments-list", ".commentslist")
_WP_ITEMS = ("li.comment", "li[id^='comment-']")
_MICRODATA = "[itemtype*='schema.org/Comment'], [itemprop='comment']"
_DISQUS = ".d-noscript-comments .comment, #disqus_thread .comment, #dsq-comments .comment"
_GENERIC = ("[data-comment-id]", ".comment", "[class*='comment-item']", "[class*='comment_item']")
_CHILDREN = ("ul.children", "ol.children", ".children", ".comment-children", ".comment-replies", ".replies")

_AUTHOR = (
    ".comment-author .fn", "cite.fn", "b.fn", ".fn", "cite.comment-author",
    "[itemprop='author'] [itemprop='name']", "[itemprop='author']", ".comment-author-name",
    ".comment-author-link", ".comment-author", ".author-name", ".author", ".username", ".user-name",
    "[class*='author']", "cite",
)
_TIME_ATTR = ("time[datetime]", "[itemprop='datePublished']", "[itemprop='dateCreated']", "abbr[title]")
_TIME_TEXT = (
    ".comment-metadata a", ".comment-meta a", ".commentmetadata a", ".comment-metadata", ".comment-meta",
    ".commentmetadata", ".comment-date", ".comment-time", "[class*='date']", "[class*='time']",
)
_TEXT = (
    ".comment-content", ".comment-text", ".contenttext", "[itemprop='text']", ".comment-body-text",
    ".comment-entry", "[class*='comment-content']", "[class*='comment-text']", "[class*='comment_content']",
    ".comment-body",
)
# Always removed from a comment's text.
_JUNK = (
    "script", "style", "noscript", "form", "template", ".reply", ".comment-reply", ".comment-reply-link",
    ".comment-likes", ".comment-actions", ".says", "img.avatar", ".avatar", ".screen-reader-text",
    ".sharedaddy",
)
# Removed as well when the text had to be taken from the whole comment element.
_FRAME = (
    ".comment-author", ".vcard", ".comment-meta", ".commentmetadata", ".comment-metadata", "footer",
    "header", "cite", "time", "[class*='meta']", "[class*='avatar']", "[class*='author']", "[class*='reply']",
    "[class*='action']", "[class*='like']", "[class*='date']",
)
_ARTICLE_BODY = (
    "[itemprop='articleBody']", ".entry-content", ".post-content", ".article-content", ".post-body",
    ".article-body", ".blog_post-body", ".entrytext", ".entry-text", ".post-entry", ".entry",
)
_ARTICLE_WIDE = ("article", "main", "#content")
_NOT_ARTICLE = (
    "#comments", ".comments-area", ".comments", "#disqus_thread", ".commentlist", ".comment-list", "#respond",
    ".comment-respond", "form", "script", "style", "noscript", "nav", ".sharedaddy", ".jp-relatedposts",
    "aside", "footer.entry-footer", ".author-info",
)
_PAGINATION = (
    ".comment-navigation a", ".comments-pagination a", ".commentnav a", ".navigation a", ".nav-links a",
    "nav a", "a.page-numbers",
)
_WP_COMMENT_ID = re.compile(r"^(?:li-|div-)?comment[-_]?(\d+)$")
_HREF_COMMENT = re.compile(r"#comment-(\d+)$")
_REPLYTOCOM = re.compile(r"[?&]replytocom=(\d+)")
_SHORTLINK = re.compile(r"[?&]p=(\d+)")
_POSTID_CLASS = re.compile(r"\bpostid-(\d+)\b")
_REST_POST = re.compile(r"/wp/v2/(?:posts|pages)/(\d+)")
_COMMENT_PAGE = re.compile(r"/comment-page-\d+/?$|[?&]cpage=\d+")
_SAYS = re.compile(r"\s*(says|said|wrote)\s*:?\s*$", re.I)


class Selectors(BaseModel):
    """CSS selectors for a theme the heuristics do not know (each optional)."""

    model_config = ConfigDict(extra="forbid")
    comment: str | None = None   # one element per comment
    author: str | None = None    # inside a comment: the author's name
    time: str | None = None      # inside a comment: datetime/content/title attribute or text
    text: str | None = None      # inside a comment: the comment's text
    children: str | None = None  # the element holding a comment's replies

    @field_validator("comment", "author", "time", "text", "children")
    @classmethod
    def _valid_css(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                LexborHTMLParser("<p></p>").css(value)
            except Exception as exc:
                raise ValueError(f"not a valid CSS selector: {value!r} ({exc})") from None
        return value


class HtmlOptions(SourceOptions):
    urls: list[str]
    selectors: Selectors | None = None
    follow_comment_pages: bool = True
    max_comment_pages: int = 20
    store_article: bool = True

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
                raise ValueError(f"{url!r} is not an http(s) URL")
        return value


@dataclass
class PageResult:
    root: PostRecord | None
    comments: list[PostRecord]
    more_pages: list[str] = field(default_factory=list)
    method: str | None = None


# -- small DOM helpers ---------------------------------------------------------------------


def _classes(node: LexborNode) -> list[str]:
    return (node.attributes.get("class") or "").split()


def _text(node: LexborNode | None) -> str:
    if node is None:
        return ""
    return " ".join((node.text(separator=" ") or "").split())


def _attr(node: LexborNode, *names: str) -> str | None:
    for name in names:
        value = node.attributes.get(name)
        if value and value.strip():
            return value.strip()
    return None


def _css(node: LexborNode | LexborHTMLParser, selector: str) -> list[LexborNode]:
    try:
        return node.css(selector)
    except Exception:
        return []


class _Comments:
    """The comment elements of a page and which comment any element belongs to."""

    def __init__(self, nodes: list[LexborNode]):
        self.nodes = nodes
        self.ids = {n.mem_id for n in nodes}

    def owner(self, node: LexborNode) -> int | None:
        """mem_id of the nearest comment element enclosing ``node`` (not itself)."""
        current = node.parent
        while current is not None:
            if current.mem_id in self.ids:
                return current.mem_id
            current = current.parent
        return None

    def own(self, comment: LexborNode, selectors: tuple[str, ...] | list[str]) -> LexborNode | None:
        """First element matching one of ``selectors`` (in that order) that belongs to
        ``comment`` itself rather than to a nested reply."""
        for selector in selectors:
            for match in _css(comment, selector):
                if match.mem_id != comment.mem_id and self.owner(match) == comment.mem_id:
                    return match
        return None


def _dedupe(nodes: list[LexborNode]) -> list[LexborNode]:
    seen: set[int] = set()
    out = []
    for node in nodes:
        if node.mem_id not in seen:
            seen.add(node.mem_id)
            out.append(node)
    return out


def _find_comments(tree: LexborHTMLParser,
                   selectors: Selectors | None) -> tuple[list[LexborNode], str | None, str | None]:
    """(comment elements, how they were found, the selector that found them)."""
    if selectors and selectors.comment:
        return _dedupe(_css(tree, selectors.comment)), "selectors", selectors.comment
    strategies: list[tuple[str, str, list[LexborNode]]] = []
    wp_selector = ", ".join(f"{lst} {item}" for lst in _WP_LISTS for item in _WP_ITEMS)
    strategies.append(("wordpress", wp_selector, [n for n in _dedupe(_css(tree, wp_selector))
                                                  if not {"pingback", "trackback"} & set(_classes(n))]))
    id_selector = "[id^='comment-'], [id^='comment_']"
    strategies.append(("comment-ids", id_selector, [n for n in _css(tree, id_selector)
                                                    if _WP_COMMENT_ID.match(n.attributes.get("id") or "")]))
    strategies.append(("microdata", _MICRODATA, _dedupe(_css(tree, _MICRODATA))))
    strategies.append(("disqus-noscript", _DISQUS, _dedupe(_css(tree, _DISQUS))))
    for selector in _GENERIC:
        strategies.append(("generic", selector, _dedupe(_css(tree, selector))))
    for name, selector, nodes in strategies:
        nodes = [n for n in nodes if n.tag not in ("html", "body", "head")]
        if any(_text(n) for n in nodes):
            return nodes, name, selector
    return [], None, None


def _clean_html(node: LexborNode, remove: tuple[str, ...]) -> str:
    """Inner HTML of a copy of ``node`` without the elements matching ``remove``."""
    copy = node.clone()
    try:
        found = copy.css(", ".join(remove))  # one pass over the copy
    except Exception:  # a user selector lexbor rejects in a list: go one by one
        found = [match for selector in remove for match in _css(copy, selector)]
    gone: set[int] = set()
    for junk in found:
        if junk.mem_id == copy.mem_id or junk.mem_id in gone:  # css() also matches the element itself
            continue
        for inner in junk.traverse(include_text=False):
            gone.add(inner.mem_id)
        junk.decompose()
    return (copy.inner_html or "").strip()


# -- the article ---------------------------------------------------------------------------


def _meta(tree: LexborHTMLParser, *keys: str) -> str | None:
    for key in keys:
        node = tree.css_first(f"meta[property='{key}']") or tree.css_first(f"meta[name='{key}']")
        if node is not None and (node.attributes.get("content") or "").strip():
            return node.attributes["content"].strip()
    return None


def canonical_url(tree: LexborHTMLParser, page_url: str) -> str:
    link = tree.css_first("link[rel='canonical']")
    href = link.attributes.get("href") if link is not None else None
    href = href or _meta(tree, "og:url")
    if href:
        absolute = urljoin(page_url, href.strip())
        # Only trust it on the same site (a copied canonical tag must not merge two pages).
        if host_of(absolute) == host_of(page_url):
            return urldefrag(absolute)[0]
    return urldefrag(page_url)[0]


def page_native_id(url: str) -> str:
    return "page-" + hashlib.sha1(urldefrag(url)[0].encode("utf-8")).hexdigest()[:16]


def wordpress_post_id(tree: LexborHTMLParser) -> str | None:
    """The WordPress post id a page reveals (shortlink ``?p=N``, ``postid-N`` body class,
    REST alternate link, the comment form's ``comment_post_ID``, reply links)."""
    link = tree.css_first("link[rel='shortlink']")
    if link is not None:
        found = _SHORTLINK.search(link.attributes.get("href") or "")
        if found:
            return found.group(1)
    body = tree.body
    if body is not None:
        found = _POSTID_CLASS.search(body.attributes.get("class") or "")
        if found:
            return found.group(1)
    for node in _css(tree, "link[rel='alternate'][href*='/wp/v2/']"):
        found = _REST_POST.search(node.attributes.get("href") or "")
        if found:
            return found.group(1)
    for node in _css(tree, "article[id^='post-'], div[id^='post-']"):
        found = re.fullmatch(r"post-(\d+)", node.attributes.get("id") or "")
        if found:
            return found.group(1)
    node = tree.css_first("input[name='comment_post_ID']")
    if node is not None and (node.attributes.get("value") or "").isdigit():
        return node.attributes["value"]
    node = tree.css_first("a.comment-reply-link[data-postid]")
    if node is not None and (node.attributes.get("data-postid") or "").isdigit():
        return node.attributes["data-postid"]
    return None


def _outside(comments: _Comments, node: LexborNode) -> bool:
    return node.mem_id not in comments.ids and comments.owner(node) is None


def _densest_block(tree: LexborHTMLParser, comments: _Comments) -> LexborNode | None:
    """The element whose own paragraphs hold the most text, outside the comments and the
    usual page furniture (the classic readability heuristic for themes without markers)."""
    scores: dict[int, int] = {}
    nodes: dict[int, LexborNode] = {}
    for paragraph in _css(tree, "p"):
        parent = paragraph.parent
        if parent is None or not _outside(comments, paragraph):
            continue
        if any(paragraph.css_matches(f"{area} p") for area in ("#comments", ".comments-area", "#respond",
                                                               "aside", "nav", "footer", "form")):
            continue
        scores[parent.mem_id] = scores.get(parent.mem_id, 0) + len(_text(paragraph))
        nodes[parent.mem_id] = parent
    if not scores:
        return None
    best = max(scores, key=scores.get)
    return nodes[best] if scores[best] >= 200 else None


def _article_body(tree: LexborHTMLParser, comments: _Comments) -> str:
    """HTML of the article's main text: a theme's content block, unless the densest block of
    paragraphs holds far more text (a theme whose ``.entry`` is only a subtitle)."""
    def cleaned(node: LexborNode | None) -> tuple[str, int]:
        if node is None:
            return "", 0
        body = _clean_html(node, _NOT_ARTICLE + _WP_LISTS)
        return body, len(html_to_text(body))

    marked = ("", 0)
    for selector in _ARTICLE_BODY:
        node = next((n for n in _css(tree, selector) if _outside(comments, n)), None)
        marked = cleaned(node)
        if marked[1]:
            break
    densest = cleaned(_densest_block(tree, comments))
    if densest[1] > 2 * marked[1]:
        return densest[0]
    if marked[1]:
        return marked[0]
    for selector in _ARTICLE_WIDE:
        wide = cleaned(next((n for n in _css(tree, selector) if _outside(comments, n)), None))
        if wide[1]:
            return wide[0]
    return ""


def _article(tree: LexborHTMLParser, page_url: str, site: str, comments: _Comments) -> PostRecord:
    url = canonical_url(tree, page_url)
    post_id = wordpress_post_id(tree)
    native_id = f"post-{post_id}" if post_id else page_native_id(url)
    title = _meta(tree, "og:title")
    if not title:
        for selector in ("h1.entry-title", ".entry-title", "h1", "title"):
            node = tree.css_first(selector)
            if node is not None and _text(node):
                title = _text(node)
                break
    body_html = _article_body(tree, comments)
    created = parse_iso(_meta(tree, "article:published_time", "datePublished", "date"))
    if created is None:
        for selector in ("time.entry-date[datetime]", "time.published[datetime]",
                         "[itemprop='datePublished']", "time[datetime]"):
            node = next((n for n in _css(tree, selector) if _outside(comments, n)), None)
            if node is not None:
                created = parse_iso(_attr(node, "datetime", "content")) or parse_loose(_text(node))
                if created:
                    break
    edited = parse_iso(_meta(tree, "article:modified_time"))
    author = _meta(tree, "author", "article:author")
    if author and author.startswith("http"):
        author = None
    if not author:
        for selector in (".byline .fn", ".entry-meta .author", "a[rel='author']",
                         "[itemprop='author'] [itemprop='name']"):
            node = next((n for n in _css(tree, selector) if _outside(comments, n)), None)
            if node is not None and _text(node):
                author = _text(node)
                break
    html_node = tree.css_first("html")
    lang = (html_node.attributes.get("lang") or "").split("-")[0].lower() or None if html_node is not None else None
    heading = f"<h1>{htmllib.escape(title)}</h1>\n" if title else ""
    return PostRecord(
        platform=PLATFORM, site=site, native_id=native_id, thread_native_id=native_id,
        content=heading + body_html, created_at=created,
        edited_at=edited if edited and created and edited > created else None,
        author=author, url=url, lang=lang,
        raw={"page": page_url, "title": title, "wordpress_post_id": post_id},
    )


# -- comments ------------------------------------------------------------------------------


def _comment_id(comments: _Comments, node: LexborNode) -> tuple[str | None, str]:
    """(native id, where it came from); (None, "hash") when the markup has no id."""
    own_id = (node.attributes.get("id") or "").strip()
    found = _WP_COMMENT_ID.match(own_id)
    if found:
        return f"comment-{found.group(1)}", "id"
    inner = comments.own(node, ("[id^='div-comment-']", "[id^='comment-']"))
    if inner is not None:
        found = _WP_COMMENT_ID.match(inner.attributes.get("id") or "")
        if found:
            return f"comment-{found.group(1)}", "id"
    for name in ("data-comment-id", "data-commentid", "data-comment", "data-id"):
        value = (node.attributes.get(name) or "").strip()
        if value.isdigit():
            return f"comment-{value}", name
    link = comments.own(node, (".comment-metadata a[href*='#comment-']", ".comment-meta a[href*='#comment-']",
                               ".commentmetadata a[href*='#comment-']", "time a[href*='#comment-']"))
    if link is not None:
        found = _HREF_COMMENT.search(link.attributes.get("href") or "")
        if found:
            return f"comment-{found.group(1)}", "permalink"
    reply = comments.own(node, ("a.comment-reply-link",))
    if reply is not None:
        value = (reply.attributes.get("data-commentid") or "").strip()
        if value.isdigit():
            return f"comment-{value}", "reply-link"
        found = _REPLYTOCOM.search(reply.attributes.get("href") or "")
        if found:
            return f"comment-{found.group(1)}", "reply-link"
    if own_id and not own_id.isdigit():
        return f"id-{own_id}", "id"
    return None, "hash"


def _children_container(node: LexborNode, extra: str | None) -> bool:
    if set(_classes(node)) & {"children", "comment-children", "comment-replies", "replies"}:
        return True
    if extra:
        try:
            return bool(node.css_matches(extra))
        except Exception:
            return False
    return False


def _parent_of(comments: _Comments, node: LexborNode, extra_children: str | None) -> int | None:
    """mem_id of the comment this one replies to (None: a top-level comment)."""
    current = node.parent
    while current is not None and current.tag not in ("body", "html"):
        if current.mem_id in comments.ids:
            return current.mem_id
        if _children_container(current, extra_children):
            # Replies placed after their parent rather than inside it (themes that close the
            # <li> early, or put ol.children beside article#comment-N).
            sibling = current.prev
            while sibling is not None:
                if sibling.is_element_node:
                    if sibling.mem_id in comments.ids:
                        return sibling.mem_id
                    break
                sibling = sibling.prev
        current = current.parent
    return None


def _time_of(comments: _Comments, node: LexborNode, selectors: Selectors | None,
             reference: datetime | None) -> tuple[datetime | None, str | None]:
    candidates: list[LexborNode] = []
    if selectors and selectors.time:
        found = comments.own(node, (selectors.time,))
        if found is not None:
            candidates.append(found)
    found = comments.own(node, _TIME_ATTR)
    if found is not None:
        candidates.append(found)
    found = comments.own(node, _TIME_TEXT)
    if found is not None:
        candidates.append(found)
    for candidate in candidates:
        attr = _attr(candidate, "datetime", "content", "title", "data-time", "data-timestamp")
        text = _text(candidate)
        for value in (attr, text):
            if not value:
                continue
            if value.isdigit() and len(value) >= 9:
                return datetime.fromtimestamp(int(value[:10]), timezone.utc), value
            stamp = parse_iso(value) or parse_loose(value, reference=reference)
            if stamp is not None:
                return stamp, value
    return None, (_text(candidates[0]) if candidates else None)


def parse_page(tree: LexborHTMLParser, page_url: str, *, site: str, selectors: Selectors | None = None,
               root: PostRecord | None = None) -> PageResult:
    """The article and the comments of one page. ``root`` (from an earlier comment page of the
    same article) is reused instead of reading the article again."""
    nodes, method, found_by = _find_comments(tree, selectors)
    comments = _Comments(nodes)
    article = root or _article(tree, page_url, site, comments)
    reference = article.created_at
    page = urldefrag(page_url)[0]

    ids: dict[int, str] = {}
    records: dict[int, PostRecord] = {}
    hashed: dict[str, int] = {}
    extra_children = selectors.children if selectors else None
    text_selectors = ((selectors.text,) if selectors and selectors.text else ()) + _TEXT
    author_selectors = ((selectors.author,) if selectors and selectors.author else ()) + _AUTHOR
    nested = tuple(s for s in (extra_children, found_by) if s) + _CHILDREN + _WP_ITEMS
    for node in nodes:
        text_node = comments.own(node, text_selectors)
        framed = text_node is None or "comment-body" in _classes(text_node)
        content = _clean_html(text_node or node, nested + _JUNK + (_FRAME if framed else ()))
        author_node = comments.own(node, author_selectors)
        author = _SAYS.sub("", _text(author_node)) or None if author_node is not None else None
        created, time_text = _time_of(comments, node, selectors, reference)
        native_id, id_source = _comment_id(comments, node)
        plain = html_to_text(content)
        if not plain and not author:
            continue
        if native_id is not None and native_id in hashed:  # the same comment shown twice
            ids[node.mem_id] = native_id
            continue
        if native_id is None:
            key = f"{author or ''}\x1f{time_text or ''}\x1f{plain}"
            base = "h-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]
            count = hashed.get(base, 0) + 1
            hashed[base] = count
            native_id = base if count == 1 else f"{base}-{count}"
        else:
            hashed[native_id] = 1
        ids[node.mem_id] = native_id
        records[node.mem_id] = PostRecord(
            platform=PLATFORM, site=site, native_id=native_id, thread_native_id=article.native_id,
            content=content, created_at=created, author=author,
            url=f"{page}#{native_id}" if native_id.startswith("comment-") else page,
            raw={"page": page_url, "method": method, "id_from": id_source, "time_text": time_text},
        )
    for node in nodes:
        record = records.get(node.mem_id)
        if record is None:
            continue
        parent = _parent_of(comments, node, extra_children)
        record.parent_native_id = ids.get(parent) if parent is not None else None
        if record.parent_native_id is None:
            record.parent_native_id = article.native_id
    more = []
    for selector in _PAGINATION:
        for link in _css(tree, selector):
            href = urldefrag(urljoin(page_url, link.attributes.get("href") or ""))[0]
            if href and _COMMENT_PAGE.search(href) and host_of(href) == host_of(page_url) and href not in more:
                more.append(href)
    return PageResult(root=article, comments=list(records.values()), more_pages=more, method=method)


# -- fetching ------------------------------------------------------------------------------


def fetch_page(client: PoliteClient, url: str, state: dict[str, Any]) -> tuple[LexborHTMLParser | None, str]:
    """GET an HTML page with conditional headers from ``state`` (updated in place).
    Returns (tree, status) with status ``ok``, ``not-modified``, ``robots``, ``missing (...)``
    (404/410) or ``forbidden (...)`` (401/403)."""
    if not client.robots_allows(url):
        return None, "robots"
    headers = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"}
    if state.get("etag"):
        headers["If-None-Match"] = state["etag"]
    if state.get("last_modified"):
        headers["If-Modified-Since"] = state["last_modified"]
    response = client.get(url, headers=headers, allow_status={304, 401, 403, 404, 410})
    if response.status_code == 304:
        return None, "not-modified"
    if response.status_code in (404, 410):
        return None, f"missing (HTTP {response.status_code})"
    if response.status_code in (401, 403):
        return None, f"forbidden (HTTP {response.status_code})"
    tree = client.html_of(response)
    for key, header in (("etag", "etag"), ("last_modified", "last-modified")):
        if response.headers.get(header):
            state[key] = response.headers[header]
        else:
            state.pop(key, None)
    return tree, "ok"


def robots_skip(site: str, url: str) -> SkipRecord:
    return SkipRecord(platform=PLATFORM, site=site, native_id=None, action="skipped_consent",
                      reason="robots.txt disallows fetching this page", detail=url)


def collect_pages(client: PoliteClient, source: str, start_url: str, *, site: str,
                  selectors: Selectors | None, follow: bool, max_pages: int, store_article: bool,
                  pages_state: dict[str, Any], cursor_of: Any) -> Iterator[Batch]:
    """One batch per fetched page (the article's comment pages followed when ``follow``)."""
    queue = [start_url]
    seen: set[str] = set()
    root: PostRecord | None = None
    while queue and len(seen) < max(1, max_pages):
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        state = dict(pages_state.get(url) or {})
        tree, status = fetch_page(client, url, state)
        batch = Batch()
        if status == "robots":
            batch.skips.append(robots_skip(site, url))
        elif status.startswith(("missing", "forbidden")):
            batch.errors.append(f"{url}: page {status}")
        elif status == "not-modified":
            # Unchanged since the last run: nothing to parse, but its comment pages may have
            # changed, and they belong to the same article.
            if root is None and state.get("root"):
                root = PostRecord(platform=PLATFORM, site=site, native_id=state["root"], content="",
                                  created_at=parse_iso(state.get("root_created_at")))
            if follow:
                queue.extend(u for u in state.get("more") or [] if u not in seen)
        elif status == "ok":
            result = parse_page(tree, url, site=site, selectors=selectors, root=root)
            if root is None:
                root = result.root
                if store_article and root is not None:
                    batch.posts.append(root)
            batch.posts.extend(result.comments)
            batch.fetched += len(batch.posts)
            if selectors and selectors.comment and not result.comments:
                batch.errors.append(f"{url}: the selector {selectors.comment!r} matched no comment")
            state["comments"] = len(result.comments)
            if root is not None:
                state["root"] = root.native_id
                if root.created_at is not None:
                    state["root_created_at"] = root.created_at.isoformat()
            state["more"] = result.more_pages
            if follow:
                queue.extend(u for u in result.more_pages if u not in seen)
        pages_state[url] = state
        batch.cursor = cursor_of()
        batch.requests = client.take_requests()
        yield batch


@register("html")
class HtmlCommentsCollector(BaseCollector):
    Options = HtmlOptions

    def check(self) -> None:
        self.require("urls", "list the pages to collect")

    def collect(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        self.check()
        state: dict[str, Any] = {"pages": dict((cursor or {}).get("pages") or {})}

        def snapshot() -> dict[str, Any]:
            return {"pages": {k: dict(v) for k, v in state["pages"].items()}}

        with PoliteClient(self.name, self.context.http) as client:
            for url in self.options.urls:
                yield from collect_pages(
                    client, self.name, url, site=host_of(url), selectors=self.options.selectors,
                    follow=self.options.follow_comment_pages, max_pages=self.options.max_comment_pages,
                    store_article=self.options.store_article, pages_state=state["pages"], cursor_of=snapshot,
                )
