"""Names of a model version in one string, for `registry_client.load(uri)`.

    ctx/model@alias                     ctx/model/3
    registry://ctx/model@alias          registry://ctx/model/3
    registry://ctx/<model-id>/versions/3/formats/pkl     (a manifest's source_uri: names the kind too)
    models:/model@alias                 models:/model/3    (MLflow's forms: the default context)

`model` is a model's name or its ID. A name may hold "/" or "@": the version number is what follows
the last "/", the alias what follows the last "@" (aliases are `A-Z a-z 0-9 . _ -`). The default
context is the client's (`Registry(default_context=...)`, REGISTRY_CONTEXT, or `context = "..."` in
the config file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry_client.errors import ConfigError

ALIAS = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_BY_ALIAS = re.compile(rf"^(?P<model>.+)@(?P<alias>{ALIAS})$", re.DOTALL)
_BY_NUMBER = re.compile(r"^(?P<model>.+)/(?P<number>[0-9]+)$", re.DOTALL)
_SOURCE_URI = re.compile(r"^(?P<model>[^/]+)/versions/(?P<number>[0-9]+)/formats/(?P<kind>[^/]+)$")
FORMS = ("ctx/model@alias, ctx/model/3, registry://ctx/model@alias, registry://ctx/model/3, "
         "models:/model@alias or models:/model/3")


@dataclass(frozen=True)
class VersionURI:
    """One version of a model: by `number` or by `alias` (exactly one is set); `kind` when the URI
    named a file too."""

    context: str
    model: str
    number: int | None = None
    alias: str | None = None
    kind: str | None = None


def parse_version_uri(uri: str, *, default_context: str | None = None) -> VersionURI:
    """Read one of the forms above; ValueError for anything else, ConfigError for a `models:/`
    URI when no default context is configured."""
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"Not a model URI: {uri!r}; use {FORMS}.")
    text = uri.strip()
    if text.startswith("models:/"):
        if not default_context:
            raise ConfigError(f"{text!r} names no context: set a default context (Registry(default_context=...), "
                              "REGISTRY_CONTEXT, or context = \"...\" in the config file) or write ctx/model@alias.")
        context, rest = default_context, text.removeprefix("models:/")
        if rest.startswith("/"):
            raise ValueError(f"Not a model URI: {text!r}; use {FORMS}.")
    else:
        scheme = "registry://" if text.startswith("registry://") else ""
        if not scheme and ("://" in text or text.startswith("models:")):
            raise ValueError(f"Unsupported URI scheme in {text!r}; use {FORMS}.")
        context, _, rest = text.removeprefix(scheme).partition("/")
        if scheme:
            source = _SOURCE_URI.match(rest)
            if source and context:
                return VersionURI(context, source["model"], number=_number(source["number"], text),
                                  kind=source["kind"])
    by_alias = _BY_ALIAS.match(rest)
    if context and by_alias:
        return VersionURI(context, by_alias["model"], alias=by_alias["alias"])
    by_number = _BY_NUMBER.match(rest)
    if context and by_number:
        return VersionURI(context, by_number["model"], number=_number(by_number["number"], text))
    raise ValueError(f"Not a model URI: {text!r}; use {FORMS} (a version by number or @alias).")


def _number(digits: str, uri: str) -> int:
    number = int(digits)
    if number < 1:
        raise ValueError(f"Version numbers start at 1: {uri!r}.")
    return number
