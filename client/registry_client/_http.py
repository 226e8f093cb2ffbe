"""One HTTP session to the registry: authentication, error mapping, retries, pagination."""

from __future__ import annotations

import json
import logging
import os
import random
import uuid
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx

from registry_client import __version__
from registry_client.errors import OfflineError, RegistryError, TransportError, error_for_status

logger = logging.getLogger("registry_client")

# Answers of a proxy or load balancer while the registry restarts: worth another try.
RETRY_STATUSES = {502, 503, 504}
IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"}
# Answers with a strong ETag kept for conditional GETs (a published version, its formats, its
# manifests): asked again, the registry answers 304 and the kept body is used.
VALIDATED_ANSWERS_KEPT = 256


def segment(value: Any) -> str:
    """One path segment, percent-encoded (alias names and kinds come from users)."""
    return quote(str(value), safe="")


def error_from_response(response: httpx.Response, method: str, path: str) -> RegistryError:
    """The typed error for a 4xx/5xx answer, with the server's message, code and field."""
    status = response.status_code
    body: dict = {}
    try:
        data = response.json()
        if isinstance(data, dict):
            body = data
    except (ValueError, UnicodeDecodeError, httpx.ResponseNotRead):
        pass
    message = body.get("detail") if isinstance(body.get("detail"), str) else ""
    if not message:
        text = ""
        try:
            text = response.text.strip()
        except (httpx.ResponseNotRead, UnicodeDecodeError):
            pass
        # A proxy's HTML error page is noise; keep it short.
        message = text[:200] if text and not text.lstrip().startswith("<") else (response.reason_phrase or "Error")
    cls = error_for_status(status)
    return cls(message, status=status, code=str(body.get("code") or ""), field=body.get("field") or None,
               method=method, path=path, body=body)


class Transport:
    """An httpx.Client with the bearer token, typed errors and retries with backoff.

    Idempotent requests (everything but POST) are retried on connection errors, timeouts and
    502/503/504; a POST only when the connection could not even be opened (nothing was sent).
    A GET answered with a strong ETag is asked again with If-None-Match: a 304 costs the
    registry no serialization and the client no download.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 60.0, retries: int = 5,
                 retry_backoff: float = 0.5, verify: bool | str = True):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.retry_backoff = retry_backoff
        headers = {"User-Agent": f"registry-client/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(base_url=f"{self.url}/api/v1/", headers=headers, timeout=timeout,
                                   follow_redirects=False, verify=verify)
        self._validated: OrderedDict[str, tuple[str, bytes]] = OrderedDict()  # GET → (ETag, body)

    def __repr__(self) -> str:
        return f"Transport({self.url!r})"

    def close(self) -> None:
        self.client.close()

    # --- retries -----------------------------------------------------------------------
    def backoff(self, attempt: int, response: httpx.Response | None = None) -> float:
        """Seconds to wait before retry `attempt` (1-based): exponential, jittered, capped."""
        if response is not None:
            retry_after = response.headers.get("Retry-After", "")
            if retry_after.isdigit():
                return min(float(retry_after), 60.0)
        delay = min(self.retry_backoff * (2 ** (attempt - 1)), 30.0)
        return delay * (0.5 + random.random() / 2)

    def retrying(self, method: str, path: str, send: Callable[[], httpx.Response], *,
                 idempotent: bool | None = None, on_retry: Callable[[], None] | None = None) -> httpx.Response:
        """Call `send` until it gives an answer that is not a transient failure."""
        idempotent = method in IDEMPOTENT if idempotent is None else idempotent
        attempt = 0
        while True:
            try:
                response = send()
            except httpx.TransportError as exc:
                retryable = idempotent or isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if not retryable or attempt >= self.retries:
                    raise TransportError(f"Cannot reach the registry at {self.url}: {_describe(exc)}",
                                         method=method, path=path) from exc
                attempt += 1
                delay = self.backoff(attempt)
                logger.warning("%s %s failed (%s); retry %d/%d in %.1f s", method, path, _describe(exc),
                               attempt, self.retries, delay)
            else:
                if response.status_code not in RETRY_STATUSES or not idempotent or attempt >= self.retries:
                    return response
                attempt += 1
                delay = self.backoff(attempt, response)
                logger.warning("%s %s answered %d; retry %d/%d in %.1f s", method, path, response.status_code,
                               attempt, self.retries, delay)
                response.close()
            if on_retry is not None:
                on_retry()
            time.sleep(delay)

    # --- requests ----------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
                ok: tuple[int, ...] = (200, 201, 204), **kwargs) -> httpx.Response:
        """Send a request (retried when safe); raise the typed error for any other status."""
        if json is not None:
            kwargs["content"] = dumps(json)
            kwargs["headers"] = {"Content-Type": "application/json", **kwargs.get("headers", {})}
        response = self.retrying(method, path, lambda: self.client.request(method, path, params=params, **kwargs))
        if response.status_code not in ok:
            raise error_from_response(response, method, path)
        return response

    def get(self, path: str, **params) -> Any:
        params = _clean(params)
        key = f"{path}?{urlencode(sorted(params.items()), doseq=True)}"
        held = self._validated.get(key)
        if held is None:
            response = self.request("GET", path, params=params)
        else:
            response = self.request("GET", path, params=params, headers={"If-None-Match": held[0]}, ok=(200, 304))
            if response.status_code == 304:
                self._validated.move_to_end(key)
                return json.loads(held[1])
        etag = response.headers.get("ETag", "")
        if etag.startswith('"'):  # strong: the same tag is the same bytes
            self._validated[key] = (etag, response.content)
            self._validated.move_to_end(key)
            while len(self._validated) > VALIDATED_ANSWERS_KEPT:
                self._validated.popitem(last=False)
        else:
            self._validated.pop(key, None)
        return response.json()

    def post(self, path: str, json: Any = None) -> Any:
        response = self.request("POST", path, json=json if json is not None else {})
        return response.json() if response.content else None

    def patch(self, path: str, json: dict) -> Any:
        return self.request("PATCH", path, json=json).json()

    def put(self, path: str, json: dict) -> Any:
        return self.request("PUT", path, json=json).json()

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def paginate(self, path: str, page_size: int = 200, **params) -> Iterator[dict]:
        """Every item of a paginated list, page after page."""
        query = {**_clean(params), "page_size": page_size}
        while True:
            data = self.request("GET", path, params=query).json()
            if isinstance(data, list):  # an unpaginated list
                yield from data
                return
            yield from data.get("results", [])
            following = data.get("next")
            if not following:
                return
            # Keep our own base URL (the server may see another host behind a proxy); take the query only.
            query = dict(parse_qsl(urlsplit(following).query, keep_blank_values=True))


class OfflineTransport:
    """Transport's stand-in in offline mode: whatever needs the registry (a request, the HTTP
    client itself) raises OfflineError, so no connection is ever opened."""

    def __init__(self, url: str = ""):
        self.url = url

    def __repr__(self) -> str:
        return "OfflineTransport()"

    def close(self) -> None:
        pass

    def __getattr__(self, name: str):
        raise OfflineError("Offline mode (REGISTRY_OFFLINE=1 or offline=True): the registry is not contacted, and "
                           "this needs it. Offline, only the files of a frozen manifest already verified in the "
                           "cache are served (Manifest.load, regctl pull --manifest).")


def _jsonable(value: Any) -> Any:
    """What json cannot encode but notebooks hold: numpy scalars and arrays, datetimes, paths, sets."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (os.PathLike, uuid.UUID)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=_jsonable, ensure_ascii=False).encode("utf-8")


def _clean(params: dict) -> dict:
    return {key: value for key, value in params.items() if value is not None and value != ""}


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
