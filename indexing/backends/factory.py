"""The search URL chooses a backend: the one module that knows every implementation.

    >>> backend = open_backend("embedded://", home=Path("~/.ragloop"), dimension=384)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from indexing.backends.base import SearchBackend
from schemas.settings import redact_url

ACCEPTED_URLS = "'embedded://', 'http://host:port', 'https://host:port' or 'opensearch://host:port'"


def open_backend(search_url: str, *, home: Path, dimension: int, index_prefix: str = "ragloop-chunks") -> SearchBackend:
    """Open the backend a URL names: ``embedded://`` stores the index under ``home/"index"``;
    ``http(s)://`` and ``opensearch://`` (plain HTTP) connect to an OpenSearch node."""
    # Each backend is imported only when chosen: their libraries (bm25s, the OpenSearch client)
    # take seconds to import, and a process uses one of them.
    parts = urlsplit(search_url)
    scheme = parts.scheme.lower()
    if scheme == "embedded":
        from indexing.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(Path(home).expanduser() / "index", dimension=dimension)
    if scheme in ("http", "https", "opensearch"):
        if not parts.hostname:
            raise ValueError(f"search URL {redact_url(search_url)!r} names no host; expected one of {ACCEPTED_URLS}")
        from indexing.backends.opensearch import OpenSearchBackend

        url = search_url if scheme != "opensearch" else "http://" + search_url.split("://", 1)[1]
        return OpenSearchBackend(url, dimension=dimension, index_prefix=index_prefix)
    raise ValueError(f"unsupported search URL {redact_url(search_url)!r}; expected one of {ACCEPTED_URLS}")
