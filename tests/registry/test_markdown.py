"""Markdown descriptions: code shows exactly what was typed (escaped once), and nothing runs."""

from __future__ import annotations

import html
import re

import pytest

from registry.markdown import render_markdown

SNIPPET = 'if a < b && c > "d": print(\'x\') & 1'
DESCRIPTION = f"""Load it with `m = load("model.pkl") & x < 1`.

```python
{SNIPPET}
```

| Input | Example |
|-------|---------|
| `<x>` | a & b "quoted" |

See https://example.com/docs?a=1&b=2 and `http://not-a-link.example`.
"""


def text_of(fragment: str) -> str:
    """What a browser shows for an HTML fragment: tags removed, entities decoded once."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_inline_code_fenced_blocks_and_tables_are_escaped_once():
    rendered = render_markdown(DESCRIPTION)
    shown = text_of(rendered)
    assert 'm = load("model.pkl") & x < 1' in shown
    assert SNIPPET in shown
    assert "<x>" in shown and 'a & b "quoted"' in shown
    for doubled in ("&amp;lt;", "&amp;gt;", "&amp;quot;", "&amp;amp;", "&amp;#x27;"):
        assert doubled not in rendered, doubled
    assert '<code class="language-python">' in rendered
    assert "<table>" in rendered and "<th>Input</th>" in rendered


def test_links_outside_code_are_made_and_code_is_left_alone():
    rendered = render_markdown(DESCRIPTION)
    assert '<a href="https://example.com/docs?a=1&amp;b=2" rel="nofollow noopener noreferrer">' in rendered
    assert "<code>http://not-a-link.example</code>" in rendered


@pytest.mark.parametrize("attack", [
    "<script>alert(1)</script>",
    "`</code><script>alert(1)</script>`",
    "```\n</code></pre><script>alert(1)</script>\n```",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    '<a href="#" onclick="alert(1)" style="color:red">x</a>',
    "| a |\n|---|\n| <svg onload=alert(1)> |",
])
def test_attacks_stay_inert(attack):
    rendered = render_markdown(attack)
    for bad in ("<script", "<svg", "onerror=", "onload=", "onclick=", "javascript:", "style="):
        assert bad not in rendered, (bad, rendered)


def test_a_script_typed_in_code_is_shown_as_text():
    rendered = render_markdown("`<script>alert(1)</script>`")
    assert rendered == "<p><code>&lt;script&gt;alert(1)&lt;/script&gt;</code></p>"
