"""Where the registry URL, the token, the default context and the cache live.

Each setting is taken from, in order: the argument given in code, the environment
(`REGISTRY_URL`, `REGISTRY_TOKEN`, `REGISTRY_CONTEXT`, `REGISTRY_CACHE_DIR`, `REGISTRY_OFFLINE`,
`REGISTRY_PROGRESS`), then a TOML file
(`REGISTRY_CONFIG`, default `~/.config/registry-client/config.toml`) with the keys `url`,
`token` and `context`:

    url = "https://registry.example"
    token = "..."
    context = "fraud"      # optional: the context of `models:/name@alias` URIs

The token is a secret: it is never printed, logged, or included in a repr or an error.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from registry_client.errors import ConfigError


def config_path() -> Path:
    explicit = os.environ.get("REGISTRY_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "registry-client" / "config.toml"


def cache_dir() -> Path:
    """Downloaded files, keyed by SHA-256: $REGISTRY_CACHE_DIR or ~/.cache/registry-client."""
    explicit = os.environ.get("REGISTRY_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "registry-client"


@dataclass(frozen=True)
class Settings:
    url: str
    token: str = field(repr=False)
    context: str = ""

    def __repr__(self) -> str:  # the dataclass repr=False above already hides it; be explicit
        return f"Settings(url={self.url!r}, token={'<set>' if self.token else '<unset>'}, context={self.context!r})"


def _read_file(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        # The parser's message quotes lines of the file, which may hold the token: keep only where.
        line = getattr(exc, "lineno", None)
        raise ConfigError(f"Cannot read the config file {path}" + (f" (line {line})" if line else "")) from None
    if "token" in data:
        try:
            mode = path.stat().st_mode
        except OSError:
            mode = 0
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            warnings.warn(f"{path} holds a token and is readable by others; chmod 600 it.", stacklevel=3)
    return data


def offline_mode(offline: bool | None = None) -> bool:
    """`offline` when given, else $REGISTRY_OFFLINE (1/true/yes/on)."""
    if offline is not None:
        return offline
    return os.environ.get("REGISTRY_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def load_settings(url: str | None = None, token: str | None = None, *, context: str | None = None,
                  require_token: bool = True, require_url: bool = True) -> Settings:
    """The registry URL, token and default context from the arguments, the environment or the config file."""
    file_data: dict | None = None

    def from_file(key: str) -> str:
        nonlocal file_data
        if file_data is None:
            file_data = _read_file(config_path())
        value = file_data.get(key, "")
        if not isinstance(value, str):
            raise ConfigError(f"'{key}' in {config_path()} must be a string.")
        return value

    url = url or os.environ.get("REGISTRY_URL") or from_file("url")
    token = token or os.environ.get("REGISTRY_TOKEN") or from_file("token")
    context = context or os.environ.get("REGISTRY_CONTEXT") or from_file("context")
    if not url and not require_url:
        return Settings(url="", token="", context=context.strip())
    if not url:
        raise ConfigError(f"No registry URL: pass url=, set REGISTRY_URL, or put url = \"...\" in {config_path()}.")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"The registry URL must start with http:// or https://, not {url[:40]!r}.")
    if require_token and not token:
        raise ConfigError(f"No token: pass token=, set REGISTRY_TOKEN, or put token = \"...\" in {config_path()}.")
    return Settings(url=url.rstrip("/"), token=token or "", context=context.strip())


def _toml_string(value: str) -> str:
    """A TOML basic string (what tomllib reads back as `value`)."""
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    out = []
    for char in value:
        if char in escapes:
            out.append(escapes[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def save_settings(values: dict[str, str], path: Path | None = None) -> Path:
    """Write `values` (url, token, context) into the config file, keeping its other string keys.

    Atomically, and never readable by others at any moment: a new file created with mode 600
    beside the old one, then renamed over it. The folder is created with mode 700."""
    path = path or config_path()
    kept = {key: value for key, value in _read_file(path).items() if isinstance(value, str)} if path.exists() else {}
    kept.update({key: value for key, value in values.items() if value})
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = "".join(f"{key} = {_toml_string(value)}\n" for key, value in kept.items())
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    return path
