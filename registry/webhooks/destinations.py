"""Where a webhook may point (SSRF: a hook must not reach the registry's own network).

A URL is checked twice: when it is registered (shape: http/https, a host, no credentials; an IP
literal in a refused range) and at every delivery, after DNS resolution, on every address the
name resolves to. The delivery then connects to the address checked here, never resolving again,
so a name that resolves to a public address for the check and to 127.0.0.1 for the connection
(DNS rebinding) cannot slip through.

Refused unless the operator allows them: every address that is not plainly global unicast
(private, loopback, link-local, shared, reserved, benchmarking, documentation, IPv6 ULA and
site-local), IPv4-mapped IPv6 addresses, and IPv4 addresses wrapped in IPv6 otherwise
(IPv4-compatible, 6to4, Teredo, NAT64) whose IPv4 address is refused. Multicast, broadcast and unspecified addresses are never a
destination, whatever the settings.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from registry.errors import InvalidInput
from registry.models.webhooks import WEBHOOK_URL_MAX_LENGTH

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class DestinationRefused(Exception):
    """The destination is not one a delivery may go to; the message says why. `retryable`: it
    may change by itself (a name that does not resolve now), so the delivery is tried again."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Target:
    """A URL taken apart for sending: scheme, the host as written, port, path with query."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url) -> Target:
    """The URL's parts, or InvalidInput (400) saying what is wrong with it."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("A webhook needs a URL.", field="url")
    url = url.strip()
    if len(url) > WEBHOOK_URL_MAX_LENGTH:
        raise InvalidInput(f"A webhook URL can have at most {WEBHOOK_URL_MAX_LENGTH} characters.", field="url")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidInput("A webhook URL cannot contain spaces or control characters.", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidInput(f"This is not a valid URL: {error}.", field="url") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("A webhook URL must start with http:// or https://.", field="url")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidInput("A webhook URL cannot carry credentials (user:password@): "
                           "verify deliveries by their signature instead.", field="url")
    host = parts.hostname or ""
    if not host:
        raise InvalidInput("A webhook URL needs a host name or address.", field="url")
    if parts.fragment:
        raise InvalidInput("A webhook URL cannot have a #fragment (it is never sent).", field="url")
    if port == 0:
        raise InvalidInput("A webhook URL cannot use port 0.", field="url")
    if not host.isascii():  # an internationalised name: sent and resolved in its ASCII (IDNA) form
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidInput(f"{host!r} is not a valid host name.", field="url") from None
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    path = "".join(char if char.isascii() else quote(char) for char in path)  # HTTP sends ASCII only
    return Target(parts.scheme, host.rstrip(".") or host, port or (443 if parts.scheme == "https" else 80), path)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_registration(url) -> str:
    """Validate a URL being registered (400 for a bad one); returns it trimmed. A name is not
    resolved here (its addresses may change): only an address written in the URL is checked."""
    target = parse_url(url)
    address = _literal(target.host)
    if address is not None:
        try:
            check_address(address)
        except DestinationRefused as refused:
            raise InvalidInput(f"{refused}", field="url") from None
    elif target.host.lower() == "localhost" or target.host.lower().endswith(".localhost"):
        try:
            check_address(ipaddress.ip_address("127.0.0.1"))
        except DestinationRefused as refused:
            raise InvalidInput(f"{refused}", field="url") from None
    return url.strip()


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(item, strict=False) for item in settings.REGISTRY_WEBHOOK_ALLOWED_NETWORKS]
    except ValueError as error:
        raise ImproperlyConfigured(f"REGISTRY_WEBHOOK_ALLOWED_NETWORKS: {error}") from None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries, for the forms that reach it."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.teredo is not None:
        return address.teredo[1]
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in IPV4_COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address))
    return None


def _why_not_public(address: IPAddress) -> str | None:
    """Why `address` is not a public unicast address, or None if it is."""
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            inner_reason = _why_not_public(address.ipv4_mapped)
            return f"an IPv4-mapped IPv6 address{f' of {inner_reason}' if inner_reason else ''}"
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = _why_not_public(inner)
            return f"an IPv6 form of {inner}, {reason}" if reason else None
        if address.is_site_local:
            return "a site-local address"
        if address in NAT64_LOCAL:
            return "a private address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "an address outside the public internet"
    return None


def check_address(address: IPAddress) -> None:
    """DestinationRefused unless a delivery may connect to `address` (see the module's docstring)."""
    if address.is_multicast or address.is_unspecified or address == ipaddress.IPv4Address("255.255.255.255"):
        raise DestinationRefused(f"{address} is not a destination a webhook can be sent to.")
    inner = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if inner is not None and (inner.is_multicast or inner.is_unspecified):
        raise DestinationRefused(f"{address} is not a destination a webhook can be sent to.")
    reason = _why_not_public(address)
    if reason is None or settings.REGISTRY_WEBHOOK_ALLOW_PRIVATE:
        return
    candidates = [address] + ([inner] if inner is not None else [])
    for network in _allowed_networks():
        if any(candidate.version == network.version and candidate in network for candidate in candidates):
            return
    raise DestinationRefused(
        f"{address} is {reason}: webhooks are not sent there unless the operator allows it "
        f"(REGISTRY_WEBHOOK_ALLOW_PRIVATE or REGISTRY_WEBHOOK_ALLOWED_NETWORKS)."
    )


def resolve(target: Target) -> list[IPAddress]:
    """Every address `target`'s host stands for, each checked; DestinationRefused if any is
    refused (a name with one private address among public ones is refused: which one a client
    uses is not ours to pick) or the name does not resolve."""
    address = _literal(target.host)
    if address is not None:
        addresses = [address]
    else:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise DestinationRefused(f"The host name {target.host} does not resolve: {error}.",
                                    retryable=True) from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
        if not addresses:
            raise DestinationRefused(f"The host name {target.host} has no address.", retryable=True)
    for candidate in addresses:
        check_address(candidate)
    return addresses
