"""Loading text and Markdown files into SourceDocuments."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexing.loaders import UnsupportedFormatError, load_path, markdown_to_text

MARKDOWN = """# Release notes

Some *emphasis*, a [link](https://example.com) and `code`.

## Fixes

- first **fix**
- second fix

```python
x = 1
```

| key | value |
|-----|-------|
| a   | 1     |

<div>raw html</div>
"""


def test_markdown_is_rendered_to_plain_text_with_headings_as_lines(tmp_path: Path):
    path = tmp_path / "notes.md"
    path.write_text(MARKDOWN)
    doc = load_path(path, tenant="acme")
    lines = doc.text.split("\n")
    assert "Release notes" in lines and "Fixes" in lines
    assert "Some emphasis, a link and code." in lines
    assert "- first fix" in lines and "x = 1" in lines and "a | 1" in lines
    assert not any(mark in doc.text for mark in ("**", "](", "#", "<div>", "```"))
    assert (doc.title, doc.tenant, doc.metadata["headings"]) == ("Release notes", "acme", ["Release notes", "Fixes"])


def test_markdown_blocks_are_separated_by_blank_lines():
    text, _, _ = markdown_to_text("# A\n\npara one\n\n## B\n\npara two")
    assert text == "A\n\npara one\n\nB\n\npara two"


def test_text_file_is_kept_verbatim_with_normalised_newlines(tmp_path: Path):
    path = tmp_path / "meeting_notes.txt"
    path.write_bytes(b"Line one  \r\nLine two\r\n\r\nNext paragraph\r\n")
    doc = load_path(path)
    assert doc.text == "Line one\nLine two\n\nNext paragraph"
    assert doc.title == "meeting notes"
    assert doc.metadata["content_type"] == "text/plain"


def test_document_id_defaults_to_the_resolved_path_and_can_be_given(tmp_path: Path):
    path = tmp_path / "a.txt"
    path.write_text("hello")
    assert load_path(path).id == str(path.resolve()) == load_path(path).source
    assert load_path(path, document_id="doc-7").id == "doc-7"


def test_unsupported_type_names_the_file_and_the_accepted_suffixes(tmp_path: Path):
    with pytest.raises(UnsupportedFormatError, match=r"report\.pdf.*\.md.*\.txt"):
        load_path(tmp_path / "report.pdf")


def test_non_utf8_text_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        load_path(path)
