"""JSON and text from clients: a nesting limit checked without recursion, and only characters
a database can store.

Python's `json` module recurses once per nested array or object (so do `json.dumps`, DRF's
renderer and PostgreSQL's jsonb input), so a body of 100,000 `[` would end in a
RecursionError; the nesting is measured on the text first, in a loop. PostgreSQL refuses a
NUL character in text and jsonb, and no database can store half of a surrogate pair (JSON
allows both as `\\u0000` and `\\ud800`): they are found after parsing, in a loop too.

Pure functions: the API's parser, the services' validators and the dashboard's JSON fields
turn what they return into their own kind of error.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A JSON string (escapes included) or one bracket. In valid JSON every string is closed, so
# brackets inside strings are never counted; in invalid JSON the parser stops where this
# scan could first disagree with it, so the scan never lets deeper text through.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_ESCAPE = "\\u"


class NestedTooDeep(ValueError):
    def __init__(self, limit: int):
        super().__init__(f"JSON can nest arrays and objects at most {limit} levels deep.")
        self.limit = limit


def check_nesting(text: str, limit: int) -> None:
    """Raise NestedTooDeep if arrays and objects in `text` nest more than `limit` levels."""
    if text.count("[") + text.count("{") <= limit:
        return
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                raise NestedTooDeep(limit)
        elif token in "]}":
            depth -= 1


def loads(text: str, *, max_depth: int) -> Any:
    """`json.loads` for client text: the nesting is checked first (NestedTooDeep), and NaN,
    Infinity and -Infinity, which JSON does not have, are refused (ValueError)."""
    check_nesting(text, max_depth)
    return json.loads(text, parse_constant=_refuse_constant)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON value; send null or a string instead.")


def bad_character(text: str) -> str | None:
    """What makes `text` unstorable (a NUL, an unpaired surrogate), or None."""
    if "\x00" in text:
        return "a NUL character (\\u0000)"
    if not text.isascii():
        for char in text:
            if "\ud800" <= char <= "\udfff":
                return f"an unpaired surrogate (\\u{ord(char):04x})"
    return None


def unstorable(value: Any, *, max_depth: int | None = None) -> tuple[str, str] | None:
    """(where, what is wrong) for the first string or key in a parsed JSON value that a database
    cannot store, or for nesting deeper than `max_depth`; None if all is well. `where` is a
    path such as `provenance.repository` or `[3].key` ("" for the value itself); what is wrong
    reads after it: "contains a NUL character (\\u0000), which cannot be stored"."""
    stack: list[tuple[Any, tuple, int]] = [(value, (), 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            problem = bad_character(item)
            if problem:
                return _path(path), f"contains {problem}, which cannot be stored"
        elif isinstance(item, (dict, list)):
            if max_depth is not None and depth > max_depth:
                return _path(path), f"nests arrays and objects deeper than {max_depth} levels, the most allowed"
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, str) and (problem := bad_character(key)):
                        return _path(path), f"has a key with {problem}, which cannot be stored"
                    stack.append((child, (*path, key), depth + 1))
            else:
                stack.extend((child, (*path, index), depth + 1) for index, child in enumerate(item))
    return None


def may_be_unstorable(text: str) -> bool:
    """False when JSON `text` cannot hold an unstorable string: no `\\u` escape at all (a raw
    NUL or control character is already a syntax error)."""
    return _ESCAPE in text


def _path(path: tuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            printable = part.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()
            out += f".{printable}" if out else printable
    return out
