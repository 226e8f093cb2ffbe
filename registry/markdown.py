"""Markdown descriptions rendered to sanitized HTML (markdown + bleach)."""

from functools import partial

import bleach
import markdown as markdown_lib
from bleach.linkifier import LinkifyFilter

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup",
    "table", "tbody", "td", "th", "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": ["href", "title"],
    "abbr": ["title"],
    "img": ["src", "alt", "title"],
    "td": ["align"],
    "th": ["align"],
    "code": ["class"],
}
# No javascript:, data:, vbscript: or other schemes; relative links stay allowed.
ALLOWED_PROTOCOLS = {"http", "https", "mailto"}


def _nofollow(attrs, new=False):
    attrs[(None, "rel")] = "nofollow noopener noreferrer"
    return attrs


def _cleaner() -> bleach.sanitizer.Cleaner:
    """Sanitizing and linkifying in one pass over one parse tree. Two passes (clean(), then
    linkify() on its output) escaped the text of skipped tags a second time: code showed
    `&lt;` and `&quot;` instead of `<` and `"`. A new one per call: a Cleaner keeps parser
    state and is not thread-safe."""
    return bleach.sanitizer.Cleaner(
        tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, protocols=ALLOWED_PROTOCOLS,
        strip=True, strip_comments=True,  # no `style` attribute is allowed at all
        filters=[partial(LinkifyFilter, callbacks=[_nofollow], skip_tags={"pre", "code"})],
    )


def render_markdown(text: str) -> str:
    """Markdown to HTML that is safe to embed: no script, event handler, style or unsafe URL."""
    if not text:
        return ""
    html = markdown_lib.markdown(text, extensions=["fenced_code", "tables", "sane_lists"], output_format="html")
    return _cleaner().clean(html)
