"""Which URLs a server-side fetch may connect to: the SSRF guard for URL ingestion.

A URL given by a user must not make the server reach what only the server can reach: its own
loopback, the cloud metadata endpoint (169.254.169.254, link-local), the private network, or
addresses that are not routable on the internet. The guard resolves the host name and checks
*every* address it resolves to (a name with one public and one private record is refused), and
the fetcher then connects to exactly the addresses that were checked, so a DNS answer that
changes between the check and the connection (DNS rebinding) cannot slip through. IPv6
addresses that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible,
6to4, NAT64) are judged by the IPv4 address inside.

    >>> check_address(ip_address("169.254.169.254"))
    'link-local'
    >>> resolve_allowed("localhost", 80, allow_private=True)[0].is_loopback   # doctest: +SKIP
    True
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from indexing.loaders.errors import LoadError

IPAddress = IPv4Address | IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

_NAT64 = ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ip_network("::/96")
_resolver_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ragloop-dns")


class FetchError(LoadError):
    """A URL could not be fetched; ``retryable`` says whether trying again later may succeed."""

    retryable = False


class ForbiddenURLError(FetchError):
    """The URL's scheme is not HTTP(S), or its host resolves to an address the guard refuses."""


class FetchFailedError(FetchError):
    """The server could not be reached, or answered with an error status."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class FetchTimeoutError(FetchError):
    """Resolving, connecting or downloading took longer than the time limit."""

    retryable = True


def check_address(ip: IPAddress) -> str | None:
    """Why a connection to ``ip`` is refused (``'loopback'``, ``'private'``, …), or None if it is public."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        reason = check_address(embedded)
        return f"{reason} (IPv4 {embedded} inside IPv6)" if reason else None
    for reason, flag in (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
                         ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                         ("reserved", ip.is_reserved), ("private", ip.is_private),
                         ("site-local", isinstance(ip, IPv6Address) and ip.is_site_local)):
        if flag:
            return reason
    if not ip.is_global:
        return "not globally routable"
    return None


def resolve_allowed(host: str, port: int, *, allow_private: bool = False,
                    allowed_networks: Sequence[str | IPv4Network | IPv6Network] = (),
                    resolve: Resolver | None = None, timeout_s: float = 10.0) -> list[IPAddress]:
    """Resolve ``host`` and return its addresses, all of them checked; ``ForbiddenURLError`` if
    any is refused. ``allow_private`` turns the guard off (multicast and unspecified addresses
    stay refused: nothing serves HTTP there); ``allowed_networks`` lets chosen private networks
    through (e.g. an intranet wiki) while the rest stay refused."""
    addresses = _resolve(host, port, resolve=resolve, timeout_s=timeout_s)
    networks = [ip_network(n) if isinstance(n, str) else n for n in allowed_networks]
    for ip in addresses:
        reason = check_address(ip)
        if reason is None or any(ip.version == n.version and ip in n for n in networks):
            continue
        if allow_private and reason not in ("multicast", "unspecified"):
            continue
        shown = host if host == str(ip) else f"{host} ({ip})"
        raise ForbiddenURLError(f"refusing to fetch from {shown}: the address is {reason}; only public "
                                "internet addresses are fetched unless private ones are explicitly allowed")
    return addresses


def _resolve(host: str, port: int, *, resolve: Resolver | None, timeout_s: float) -> list[IPAddress]:
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return [ip_address(literal.split("%", 1)[0])]
    except ValueError:
        pass  # a name, not an address literal
    lookup = resolve or _getaddrinfo
    future = _resolver_pool.submit(lookup, host, port)
    try:
        raw = future.result(timeout=timeout_s)
    except FutureTimeout as exc:
        raise FetchTimeoutError(f"cannot fetch from {host}: resolving the name took over {timeout_s:g} s") from exc
    except OSError as exc:
        raise FetchFailedError(f"cannot fetch from {host}: the name does not resolve ({exc})", retryable=True) from exc
    except UnicodeError as exc:  # a label IDNA cannot encode: no lookup can ever succeed
        raise FetchFailedError(f"cannot fetch from {host!r}: it is not a valid host name ({exc})") from exc
    addresses = list(dict.fromkeys(ip_address(a.split("%", 1)[0]) for a in raw))
    if not addresses:
        raise FetchFailedError(f"cannot fetch from {host}: the name resolves to no address", retryable=True)
    return addresses


def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(ip: IPAddress) -> IPv4Address | None:
    if not isinstance(ip, IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None
