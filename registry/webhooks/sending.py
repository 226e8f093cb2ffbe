"""The one HTTP request that sends a delivery: to an address checked by
registry.webhooks.destinations (connecting to that address, never resolving the name again),
without following redirects, within time limits, reading at most a capped part of the answer."""

from __future__ import annotations

import time
from dataclasses import dataclass

import urllib3
from django.conf import settings

from registry import jsoninput
from registry.webhooks.destinations import DestinationRefused, resolve

EXCERPT_CHARS = 500
USER_AGENT = "model-registry-webhooks/1"


@dataclass
class Answer:
    """What one attempt got: the status code (None without an answer), the start of the body,
    the error, how long it took, and whether trying again later may help."""

    status: int | None
    excerpt: str
    error: str
    duration_ms: int
    retryable: bool

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _storable(text: str) -> str:
    """Text from a receiver, as the database can store it (no NUL, no lone surrogate)."""
    text = text[:EXCERPT_CHARS]
    return "".join("\ufffd" if jsoninput.bad_character(ch) else ch for ch in text)


def retryable_status(status: int) -> bool:
    """Answers worth trying again: the receiver's trouble (5xx), or it asks for time (408, 429).
    Anything else (a 3xx redirect, which is never followed, a 4xx) will be the same next time."""
    return status >= 500 or status in (408, 429)


def _pool(target, address) -> urllib3.HTTPConnectionPool:
    timeout = urllib3.Timeout(connect=settings.REGISTRY_WEBHOOK_CONNECT_TIMEOUT,
                              read=settings.REGISTRY_WEBHOOK_READ_TIMEOUT)
    if target.scheme == "https":
        # Connect to the checked address; TLS still names and verifies the URL's host.
        is_name = str(address) != target.host
        return urllib3.HTTPSConnectionPool(
            str(address), target.port, timeout=timeout, retries=False, maxsize=1, block=False,
            cert_reqs="CERT_REQUIRED", server_hostname=target.host if is_name else None,
            assert_hostname=target.host,
        )
    return urllib3.HTTPConnectionPool(str(address), target.port, timeout=timeout, retries=False, maxsize=1)


def _read_capped(response, deadline: float) -> bytes:
    """At most REGISTRY_WEBHOOK_MAX_RESPONSE_BYTES of the body, read until the deadline."""
    cap = settings.REGISTRY_WEBHOOK_MAX_RESPONSE_BYTES
    data = bytearray()
    while len(data) < cap and time.monotonic() < deadline:
        chunk = response.read1(min(16384, cap - len(data)))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def post(target, body: bytes, headers: dict[str, str]) -> Answer:
    """POST `body` to `target` (a destinations.Target). Never raises for what the network or the
    receiver does: the Answer says it."""
    started = time.monotonic()

    def answer(status=None, excerpt="", error="", retryable=False) -> Answer:
        return Answer(status, _storable(excerpt), _storable(error),
                      int((time.monotonic() - started) * 1000), retryable)

    try:
        addresses = resolve(target)
    except DestinationRefused as refused:
        return answer(error=str(refused), retryable=refused.retryable)
    headers = {**headers, "Host": target.host_header, "User-Agent": USER_AGENT,
               "Content-Type": "application/json", "Accept-Encoding": "identity", "Connection": "close"}
    deadline = started + settings.REGISTRY_WEBHOOK_CONNECT_TIMEOUT + settings.REGISTRY_WEBHOOK_READ_TIMEOUT
    error = ""
    for address in addresses:
        pool = _pool(target, address)
        try:
            response = pool.urlopen("POST", target.path, body=body, headers=headers, redirect=False,
                                    retries=False, preload_content=False, decode_content=False,
                                    assert_same_host=False)
        except urllib3.exceptions.NewConnectionError as exc:  # refused, unreachable: the next address
            error = f"Could not connect to {address}: {exc.__class__.__name__}"
            continue
        except urllib3.exceptions.ConnectTimeoutError:
            error = f"Connecting to {address} timed out."
            continue
        except urllib3.exceptions.ReadTimeoutError:
            return answer(error="The receiver did not answer in time.", retryable=True)
        except urllib3.exceptions.SSLError as exc:
            return answer(error=f"TLS failed: {exc}", retryable=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return answer(error=f"The request failed: {exc.__class__.__name__}: {exc}", retryable=True)
        else:
            try:
                try:
                    data = _read_capped(response, deadline)
                except (urllib3.exceptions.HTTPError, OSError):
                    data = b""  # the status is what counts; a body cut short changes nothing
                status = response.status
                error = "" if 200 <= status < 300 else f"The receiver answered {status}."
                if 300 <= status < 400:
                    error = f"The receiver answered {status} (a redirect, which is never followed)."
                return answer(status=status, excerpt=data.decode("utf-8", "replace"), error=error,
                              retryable=retryable_status(status))
            finally:
                response.release_conn()
                pool.close()
    return answer(error=error or "Could not connect.", retryable=True)
