"""Where a webhook may point (OWASP API7, SSRF), and an HTTP POST that goes only where it was vetted.

A name is resolved when the webhook is saved and again for every attempt; the request then connects
to the address that was just checked, so a DNS answer that changes in between (rebinding) cannot
redirect it. Redirects are never followed.
"""
import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
MAX_RESPONSE_BYTES = 65536


class UnsafeURL(ValueError):
    """The URL may not be used as a webhook target; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str


def _parse(url: str):
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"URL must be 1-{MAX_URL_LENGTH} characters")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("Only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeURL("Credentials in the URL are not allowed")
    if not parts.hostname:
        raise UnsafeURL("URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeURL("URL has an invalid port") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(url: str, *, allow_private: bool) -> Target:
    """Check the URL and every address its host resolves to; answer the first one to connect to."""
    scheme, host, port, path = _parse(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeURL(f"Host {host!r} does not resolve") from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise UnsafeURL(f"Host {host!r} does not resolve")
    if not allow_private:
        blocked = [a for a in addresses if not _is_public(a)]
        if blocked:
            raise UnsafeURL(f"Host {host!r} resolves to a non-public address ({blocked[0]})")
    return Target(scheme, host, port, path, addresses[0])


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self):
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # certificate checked for the name


@dataclass
class Response:
    status: int
    headers: dict
    duration_ms: int


def post(url: str, body: bytes, headers: dict, *, timeout: float, allow_private: bool) -> Response:
    """POST once. Raises UnsafeURL (refused before connecting) or OSError/HTTPException (network)."""
    target = resolve(url, allow_private=allow_private)
    conn_cls = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    conn = conn_cls(target, timeout)
    started = time.perf_counter()
    try:
        conn.request("POST", target.path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": "Conveyor-Webhooks/1", **headers})
        res = conn.getresponse()
        res.read(MAX_RESPONSE_BYTES)
        return Response(res.status, {k.lower(): v for k, v in res.getheaders()},
                         int((time.perf_counter() - started) * 1000))
    finally:
        conn.close()
