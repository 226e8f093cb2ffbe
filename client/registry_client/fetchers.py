"""Fetchers for external files: manifest entries the registry does not store (`s3://`,
`gs://`, `https://`, `data://`), each given with its SHA-256 (and MD5, size).

A fetcher is a callable `fetch(uri, out)` that writes the file's bytes to the binary file
object `out` (streaming: never the whole file in memory) and raises on failure. The manifest
hashes what it writes and checks it against the entry exactly as it checks the registry's own
files: a mismatch is a TamperError (exit 4 in regctl), and the bytes are never served.

Built in:

- `https://` streams with httpx (the client's HTTP library), following redirects, with no
  registry credentials: the registry's token is never sent to another host;
- `s3://bucket/key` uses boto3 when it is installed (`pip install boto3`), configured as boto3
  is: `AWS_PROFILE`, `AWS_ACCESS_KEY_ID`..., and `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`)
  for an S3-compatible server.

`gs://` and `data://` (and `s3://` without boto3) raise NoFetcher until one is registered:

    import registry_client

    def fetch_gcs(uri, out):
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        storage.Client().bucket(bucket).blob(name).download_to_file(out)

    registry_client.register_fetcher("gs", fetch_gcs)
"""

from __future__ import annotations

import importlib.util
import ssl
import threading
from collections.abc import Callable
from typing import BinaryIO
from urllib.parse import urlsplit

import httpx

from registry_client.errors import ConfigError, TransportError

Fetcher = Callable[[str, BinaryIO], None]
SCHEMES = ("s3", "gs", "https", "data")
BLOCK = 1024 * 1024

_registered: dict[str, Fetcher] = {}
_lock = threading.Lock()


class NoFetcher(ConfigError):
    """No fetcher is registered for an external file's scheme (gs://, data://, s3:// without boto3)."""


class FetchError(TransportError):
    """An external file could not be fetched from where its manifest entry points."""


def register_fetcher(scheme: str, fetcher: Fetcher | None) -> None:
    """Use `fetcher(uri, out)` for external files whose URI starts with `scheme://` (one of
    s3, gs, https, data); it replaces the built-in one. `None` restores the built-in one."""
    scheme = scheme.lower().removesuffix("://")
    if scheme not in SCHEMES:
        raise ValueError(f"A manifest's external files use {', '.join(s + '://' for s in SCHEMES)}; "
                         f"not {scheme}://.")
    with _lock:
        if fetcher is None:
            _registered.pop(scheme, None)
        else:
            _registered[scheme] = fetcher


def fetcher_for(uri: str) -> Fetcher:
    """The fetcher for `uri`, or NoFetcher saying how to provide one."""
    scheme = urlsplit(uri).scheme.lower()
    with _lock:
        registered = _registered.get(scheme)
    if registered is not None:
        return registered
    if scheme == "https":
        return fetch_https
    if scheme == "s3":
        if importlib.util.find_spec("boto3") is None:
            raise NoFetcher(f"No fetcher for scheme s3:// ({uri}): install boto3 (pip install boto3), or register "
                            "one with registry_client.register_fetcher('s3', fetch).")
        return fetch_s3
    if scheme in SCHEMES:
        raise NoFetcher(f"No fetcher for scheme {scheme}:// ({uri}): register one with "
                        f"registry_client.register_fetcher({scheme!r}, fetch), a function fetch(uri, out) that "
                        "writes the file's bytes to `out`.")
    raise NoFetcher(f"No fetcher for scheme {scheme or '(none)'}:// ({uri}): an external file is one of "
                    f"{', '.join(s + '://' for s in SCHEMES)}.")


def fetch_https(uri: str, out: BinaryIO, *, verify: bool | str | ssl.SSLContext = True,
                timeout: float = 60.0) -> None:
    """Stream `uri` into `out` (redirects followed, no credentials sent). `verify`: True (the
    system's and certifi's trust), a CA bundle path, or an ssl.SSLContext."""
    if isinstance(verify, str):
        verify = ssl.create_default_context(cafile=verify)
    try:
        with httpx.stream("GET", uri, follow_redirects=True, verify=verify,
                          timeout=httpx.Timeout(timeout, read=max(timeout, 300.0))) as response:
            if response.status_code != 200:
                raise FetchError(f"GET {uri} answered {response.status_code}.", status=response.status_code)
            for block in response.iter_bytes(BLOCK):
                out.write(block)
    except httpx.HTTPError as exc:
        raise FetchError(f"GET {uri} failed: {type(exc).__name__}: {exc}") from exc


def https_fetcher(*, verify: bool | str | ssl.SSLContext = True, timeout: float = 60.0) -> Fetcher:
    """An https fetcher with its own TLS trust (`verify`: a CA bundle path) or time-out, e.g.
    `register_fetcher("https", https_fetcher(verify="/etc/ssl/corp-ca.pem"))`."""
    def fetch(uri: str, out: BinaryIO) -> None:
        fetch_https(uri, out, verify=verify, timeout=timeout)

    return fetch


def fetch_s3(uri: str, out: BinaryIO) -> None:
    """Stream `s3://bucket/key` into `out` with boto3 (credentials and endpoint as boto3 finds them)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    parts = urlsplit(uri)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    try:
        boto3.client("s3").download_fileobj(bucket, key, out)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise FetchError(f"S3 refused {uri}: {code or exc}.") from exc
    except BotoCoreError as exc:
        raise FetchError(f"Fetching {uri} from S3 failed: {exc}") from exc
