"""Search backends: embedded (default, on local disk) and OpenSearch, behind one protocol."""

from indexing.backends.base import SearchBackend
from indexing.backends.factory import open_backend

__all__ = ["SearchBackend", "open_backend"]
