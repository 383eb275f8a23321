"""The outbound webhook: a finished task POSTed to its `callback_url`, only to addresses the SSRF guard allowed.

The guard (`indexing/url_guard.py`) checks every address the callback host resolves to, and the POST
goes to exactly those addresses with redirects and proxies off, so a callback URL cannot make the
server call its own network (`RAGLOOP_ALLOW_PRIVATE_CALLBACKS=1` lifts that for tests and private
deployments). Resolving once and connecting to the checked address (not to whatever the name
resolves to next) is what defeats DNS rebinding.
"""

from __future__ import annotations

import asyncio

import httpx

from indexing.url_guard import FetchError, ForbiddenURLError, resolve_allowed
from streams.callbacks.outcome import Outcome


async def post_guarded(url: str, body: bytes, headers: dict[str, str], *, timeout_s: float, allow_private: bool) -> Outcome:
    """POST `body` to `url` at the addresses the SSRF guard checked, trying the next one when one does not connect."""
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as error:
        return Outcome(False, False, f"callback_url {url!r} is not a valid URL ({error})")
    if target.scheme not in ("http", "https") or not target.raw_host:
        return Outcome(False, False, f"callback_url {url!r} must be an http:// or https:// URL with a host")
    host = target.raw_host.decode("ascii")
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        addresses = await asyncio.to_thread(resolve_allowed, host, port, allow_private=allow_private, timeout_s=timeout_s)
    except ForbiddenURLError as error:
        return Outcome(False, False, f"{error} (set RAGLOOP_ALLOW_PRIVATE_CALLBACKS=1 to allow private callback hosts)")
    except FetchError as error:
        return Outcome(False, True, str(error))
    last = "no address"
    async with httpx.AsyncClient(trust_env=False, follow_redirects=False, timeout=timeout_s) as client:
        for ip in addresses:
            try:
                response = await client.post(target.copy_with(host=str(ip)), content=body,
                                             headers={**headers, "Host": target.netloc.decode("ascii")},
                                             extensions={"sni_hostname": host})
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                last = f"cannot connect to {ip}: {error!r}"
                continue  # the next checked address
            except httpx.HTTPError as error:
                return Outcome(False, True, f"{type(error).__name__}: {error}")
            return Outcome(response.is_success, True, f"HTTP {response.status_code}")
    return Outcome(False, True, last)
