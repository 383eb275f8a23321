"""Fetch a document over HTTP(S) with a size limit, a time limit, a redirect limit and the SSRF guard.

Why this shape:
- Every hop (the URL and each redirect target) is checked by ``indexing.url_guard`` and the
  connection goes to the very addresses that were checked (the request is sent to the IP, with
  the original ``Host`` header and TLS server name, so certificates are still verified against
  the host name). Redirects are followed by hand for that reason, at most ``max_redirects``.
- The body is streamed and counted as it arrives (after content decoding, so a compressed
  bomb is cut off too); a ``Content-Length`` over the limit is refused before reading.
- ``timeout_s`` bounds the whole fetch, resolution and redirects included, not each read: a
  server that drips one byte a second is cut off as surely as one that never answers.
- Environment proxies are ignored (``trust_env=False``): a proxy would connect on our behalf
  to addresses the guard never saw. For the same reason ``SSL_CERT_FILE`` is not read: servers
  behind a private certificate authority are trusted with ``verify=trusted_context(ca_file)``
  (RAGLOOP_INGEST_FETCH_CA_FILE), on top of the public ones.

    >>> fetched = fetch_url("https://example.org/guide.html", max_bytes=5_000_000, timeout_s=20)  # doctest: +SKIP
    >>> doc = load_url("https://example.org/guide.html", tenant="acme")                          # doctest: +SKIP
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import certifi
import httpx

from indexing.loaders import DEFAULT_MAX_BYTES, RecordFields, load_bytes
from indexing.loaders.errors import DocumentTooLargeError
from indexing.types import SourceDocument
from indexing.url_guard import (
    FetchError,
    FetchFailedError,
    FetchTimeoutError,
    ForbiddenURLError,
    IPAddress,
    Resolver,
    resolve_allowed,
)

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_REDIRECTS = 5
USER_AGENT = "ragloop-ingest/0.1 (+https://github.com/ragloop)"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ACCEPT = ("text/html,application/xhtml+xml,application/pdf,text/markdown,text/plain,application/json,"
           "application/x-ndjson;q=0.9,*/*;q=0.1")

__all__ = ["FetchError", "FetchFailedError", "FetchTimeoutError", "FetchTooLargeError", "FetchedResource",
           "ForbiddenURLError", "fetch_url", "load_url", "trusted_context"]


class FetchTooLargeError(FetchError, DocumentTooLargeError):
    """The response body is over the size limit."""


@dataclass(frozen=True)
class FetchedResource:
    """A fetched body and what the server said about it."""

    url: str  # as asked for
    final_url: str  # after redirects
    status_code: int
    content_type: str | None  # the Content-Type header, parameters included
    content: bytes
    redirects: list[str] = field(default_factory=list)  # every URL that answered with a redirect
    elapsed_s: float = 0.0


def fetch_url(url: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout_s: float = DEFAULT_TIMEOUT_S,
              allow_private: bool = False, allowed_networks: Sequence[str | IPv4Network | IPv6Network] = (),
              max_redirects: int = DEFAULT_MAX_REDIRECTS, resolve: Resolver | None = None,
              user_agent: str = USER_AGENT, accept: str = _ACCEPT, verify: ssl.SSLContext | bool = True) -> FetchedResource:
    """GET ``url`` within the limits; every failure is a ``FetchError`` (a ``ValueError``) naming the URL.
    ``accept`` is the Accept header (documents by default); ``verify`` the TLS trust (see ``trusted_context``)."""
    started = time.monotonic()
    deadline = started + timeout_s
    current = url
    redirects: list[str] = []
    with httpx.Client(trust_env=False, follow_redirects=False, headers={"User-Agent": user_agent, "Accept": accept},
                      verify=verify) as client:
        while True:
            target = _checked_url(current)
            port = target.port or (443 if target.scheme == "https" else 80)
            host = target.raw_host.decode("ascii")
            addresses = resolve_allowed(host, port, allow_private=allow_private, allowed_networks=allowed_networks,
                                        resolve=resolve, timeout_s=_remaining(deadline, url, timeout_s))
            status, location, content_type, body = _get(client, target, addresses, deadline=deadline, url=url,
                                                         timeout_s=timeout_s, max_bytes=max_bytes)
            if status in _REDIRECTS and location:
                if len(redirects) >= max_redirects:
                    raise FetchFailedError(f"cannot fetch {url!r}: more than {max_redirects} redirects "
                                           f"(last to {urljoin(current, location)!r})")
                redirects.append(current)
                current = urljoin(current, location)
                continue
            if status >= 400:
                raise FetchFailedError(f"cannot fetch {url!r}: {current!r} answered HTTP {status}",
                                       retryable=status >= 500 or status in (408, 429))
            return FetchedResource(url=url, final_url=current, status_code=status, content_type=content_type,
                                   content=body, redirects=redirects, elapsed_s=time.monotonic() - started)


def load_url(url: str, *, tenant: str = "default", document_id: str | None = None, title: str | None = None,
             metadata: Mapping[str, Any] | None = None, access: Sequence[str] = (),
             max_bytes: int = DEFAULT_MAX_BYTES, timeout_s: float = DEFAULT_TIMEOUT_S, allow_private: bool = False,
             allowed_networks: Sequence[str | IPv4Network | IPv6Network] = (),
             max_redirects: int = DEFAULT_MAX_REDIRECTS, fields: RecordFields = RecordFields(),
             resolve: Resolver | None = None, verify: ssl.SSLContext | bool = True) -> SourceDocument:
    """Fetch ``url`` and load it as one document (format from the response's media type, else
    the URL's suffix, else the first bytes); the id defaults to the URL as given."""
    fetched = fetch_url(url, max_bytes=max_bytes, timeout_s=timeout_s, allow_private=allow_private,
                        allowed_networks=allowed_networks, max_redirects=max_redirects, resolve=resolve,
                        verify=verify)
    return load_fetched(fetched, tenant=tenant, document_id=document_id, title=title, metadata=metadata, access=access,
                        max_bytes=max_bytes, fields=fields)


def load_fetched(fetched: FetchedResource, *, tenant: str = "default", document_id: str | None = None, title: str | None = None,
                 metadata: Mapping[str, Any] | None = None, access: Sequence[str] = (), max_bytes: int = DEFAULT_MAX_BYTES,
                 fields: RecordFields = RecordFields()) -> SourceDocument:
    """A fetched resource as one document, its fetch recorded in the metadata (`url`, `final_url`, `http_status`)."""
    about = {"url": fetched.url, "final_url": fetched.final_url, "http_status": fetched.status_code,
             "fetched_at": datetime.now(UTC).isoformat(), **(metadata or {})}
    return load_bytes(fetched.content, media_type=fetched.content_type, filename=httpx.URL(fetched.final_url).path,
                      tenant=tenant, document_id=document_id or fetched.url, source=fetched.final_url, title=title,
                      metadata=about, access=access, fields=fields, max_bytes=max_bytes)


def trusted_context(ca_file: Path | None) -> ssl.SSLContext | bool:
    """TLS trust for fetches: the public authorities (certifi), plus those in ``ca_file`` when one is given
    (an intranet's private authority); ``True`` (the public ones only) without one."""
    if ca_file is None:
        return True
    context = ssl.create_default_context(cafile=certifi.where())
    try:
        context.load_verify_locations(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as error:
        raise ValueError(f"RAGLOOP_INGEST_FETCH_CA_FILE={str(ca_file)!r} is not a readable PEM file of CA certificates ({error})") from error
    return context


def _checked_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ForbiddenURLError(f"cannot fetch {url!r}: it is not a valid URL ({exc})") from exc
    if parsed.scheme not in ("http", "https"):
        raise ForbiddenURLError(f"cannot fetch {url!r}: only http:// and https:// URLs are fetched")
    if not parsed.raw_host:
        raise ForbiddenURLError(f"cannot fetch {url!r}: the URL names no host")
    return parsed


def _get(client: httpx.Client, target: httpx.URL, addresses: list[IPAddress], *, deadline: float, url: str,
         timeout_s: float, max_bytes: int) -> tuple[int, str | None, str | None, bytes]:
    """One GET to the checked addresses (the next one if a connection fails); returns
    (status, Location, Content-Type, body) — the body is read only for a non-redirect success."""
    host_header = target.netloc.decode("ascii")
    last_error: Exception | None = None
    for ip in addresses:
        pinned = target.copy_with(host=str(ip))
        try:
            with client.stream("GET", pinned, headers={"Host": host_header},
                               extensions={"sni_hostname": target.raw_host.decode("ascii")},
                               timeout=httpx.Timeout(_remaining(deadline, url, timeout_s))) as response:
                status = response.status_code
                if status in _REDIRECTS or status >= 400:
                    return status, response.headers.get("location"), None, b""
                return status, None, response.headers.get("content-type"), _read_limited(
                    response, url=url, max_bytes=max_bytes, deadline=deadline, timeout_s=timeout_s)
        except httpx.TimeoutException as exc:
            raise FetchTimeoutError(f"cannot fetch {url!r}: no answer within {timeout_s:g} s") from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            last_error = exc  # try the next checked address
        except httpx.HTTPError as exc:
            raise FetchFailedError(f"cannot fetch {url!r}: {type(exc).__name__}: {exc}", retryable=True) from exc
    raise FetchFailedError(f"cannot fetch {url!r}: cannot connect to {target.host} ({last_error})",
                           retryable=True) from last_error


def _read_limited(response: httpx.Response, *, url: str, max_bytes: int, deadline: float, timeout_s: float) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchTooLargeError(f"cannot fetch {url!r}: it is {declared} bytes, over the limit of {max_bytes}")
    parts: list[bytes] = []
    size = 0
    for part in response.iter_bytes():
        size += len(part)
        if size > max_bytes:
            raise FetchTooLargeError(f"cannot fetch {url!r}: the body is over the limit of {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise FetchTimeoutError(f"cannot fetch {url!r}: the download took over {timeout_s:g} s")
        parts.append(part)
    return b"".join(parts)


def _remaining(deadline: float, url: str, timeout_s: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchTimeoutError(f"cannot fetch {url!r}: it took over {timeout_s:g} s")
    return left
