"""Property-based fuzzing of every loader (issue #11, proof by fuzzing): arbitrary bytes given as
any accepted format (by media type, by file name, plain or gzipped, or undeclared) load into
``SourceDocument``s or raise a ``LoadError`` whose message can be shown to the user; never another
exception. Broken files are near-valid ones too: a real PDF, HTML page or JSON record with bytes
flipped, cut or inserted. Examples are bounded (and derandomised) so the file runs in seconds."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from indexing.loaders import FORMATS, LoadError, iter_documents_from_bytes, load_path
from indexing.types import SourceDocument
from tests.unit.test_indexing_loaders import make_pdf

EXAMPLES = hsettings(max_examples=60, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SAMPLES: dict[str, bytes] = {
    "text": "Plain text\r\nwith lines, é and ✓\n".encode(),
    "markdown": b"# Title\n\nSome *text* and a [link](http://x).\n\n- item\n\n```\ncode\n```\n",
    "html": b"<html><head><meta charset='utf-8'><title>T</title><script>x()</script></head><body><main><h1>H</h1><p>p&amp;q</p></main></body></html>",
    "pdf": make_pdf(["Revenue grew", "Outlook stable"], title="Report"),
    "json": json.dumps([{"id": "a", "title": "A", "text": "first"}, {"id": "b", "text": "second"}]).encode(),
    "jsonl": b'{"id": "a", "text": "first"}\n{"_id": "b", "title": "B", "text": "second"}\n',
}
assert set(SAMPLES) == {f.name for f in FORMATS}, "a new format needs a sample here"


@st.composite
def corrupted(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bytes flipped, a slice cut out or random bytes inserted."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, max(len(out) - 1, 0)))
        action = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if action == "flip" and out:
            out[where] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del out[where:where + draw(st.integers(1, 64))]
        elif action == "insert":
            out[where:where] = draw(st.binary(min_size=1, max_size=32))
        else:
            del out[where:]
    return bytes(out)


def loads_or_refuses(data: bytes, **how: str | None) -> None:
    try:
        documents = list(iter_documents_from_bytes(data, max_bytes=1 << 20, **how))
    except LoadError as error:
        assert str(error), "a LoadError says why"
        return
    assert all(isinstance(d, SourceDocument) and d.text.strip() for d in documents)


def declarations(fmt_name: str) -> list[dict[str, str | None]]:
    fmt = next(f for f in FORMATS if f.name == fmt_name)
    return [{"media_type": fmt.media_types[0]}, {"media_type": f"{fmt.media_types[-1]}; charset=latin-1"},
            {"filename": f"doc{fmt.suffixes[0]}"}, {"filename": f"doc{fmt.suffixes[0]}.gz"}, {"media_type": "application/octet-stream"}]


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_arbitrary_bytes_load_or_raise_a_load_error(fmt: str) -> None:
    choices = declarations(fmt)

    @EXAMPLES
    @given(st.binary(max_size=512) | st.text(max_size=200).map(str.encode), st.sampled_from(choices))
    def run(data: bytes, how: dict[str, str | None]) -> None:
        loads_or_refuses(gzip.compress(data) if str(how.get("filename", "")).endswith(".gz") else data, **how)

    run()


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_corrupted_files_load_or_raise_a_load_error(fmt: str) -> None:
    choices = declarations(fmt)
    loads_or_refuses(SAMPLES[fmt], **choices[0])  # the sample itself is valid

    @EXAMPLES
    @given(corrupted(SAMPLES[fmt]), st.sampled_from(choices), st.booleans())
    def run(data: bytes, how: dict[str, str | None], gzipped_then_corrupted: bool) -> None:
        if str(how.get("filename", "")).endswith(".gz"):
            data = gzip.compress(SAMPLES[fmt])[: len(data)] if gzipped_then_corrupted else gzip.compress(data)
        loads_or_refuses(data, **how)

    run()


def test_arbitrary_files_load_or_raise_a_load_error(tmp_path) -> None:
    """The path entry point (CLI), which recognises a file by its suffix alone."""
    suffixes = sorted({s for f in FORMATS for s in f.suffixes} | {".bin", ""})

    @hsettings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.binary(max_size=512) | st.sampled_from(list(SAMPLES.values())).flatmap(corrupted), st.sampled_from(suffixes))
    def run(data: bytes, suffix: str) -> None:
        path = tmp_path / f"doc{suffix}"
        path.write_bytes(data)
        try:
            load_path(path)
        except LoadError as error:
            assert str(error)

    run()
