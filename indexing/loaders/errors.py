"""Why a document could not be loaded, as types a caller can map to a 4xx or a ``failed`` progress event.

Every error is a ``ValueError`` (bad input, not a bug) and its message names the input at
fault, what was wrong and what is accepted, so it can be shown to the user as is.
"""

from __future__ import annotations


class LoadError(ValueError):
    """A document could not be loaded; the message says why and how to fix it."""


class UnsupportedFormatError(LoadError):
    """The file type or media type has no loader."""


class CorruptDocumentError(LoadError):
    """The bytes do not parse as the format they claim to be (broken PDF, bad JSON, wrong encoding)."""


class DocumentTooLargeError(LoadError):
    """The input is over the size limit it was loaded with."""


class EmptyDocumentError(LoadError):
    """The document parsed but holds no text to index (e.g. a scanned PDF without a text layer)."""
