"""Loading text, Markdown, HTML, PDF and JSON/JSONL records into SourceDocuments.

Every fixture is a real file written by the test: HTML pages as text, PDFs with pypdf's
writer (a Type1 font and a text content stream per page), records as JSON Lines.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.generic import ContentStream, DecodedStreamObject, DictionaryObject, NameObject

from indexing.loaders import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    LoadError,
    RecordFields,
    UnsupportedFormatError,
    iter_documents,
    iter_documents_from_bytes,
    load_bytes,
    load_path,
    markdown_to_text,
)

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

HTML = """<!doctype html>
<html lang="en"><head><title>Volcano facts</title>
<meta name="description" content="All about lava">
<style>body { color: red }</style><script>var tracking = "do not index";</script></head>
<body>
<nav><a href="/">Home</a> <a href="/about">About us</a></nav>
<h1>Volcanoes</h1>
<p>A volcano   erupts when <b>magma</b> rises.<br>Lava follows.</p>
<h2>Famous ones</h2>
<ul><li>Etna<ul><li>Sicily</li></ul></li><li>Fuji</li></ul>
<table><tr><th>name</th><th>height</th></tr><tr><td>Etna</td><td>3357 m</td></tr></table>
<pre>code   stays
  as is</pre>
<div hidden>hidden text</div>
<footer>Copyright notice</footer>
</body></html>
"""


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A real PDF: one Helvetica text content stream per page, written by pypdf."""
    writer = PdfWriter()
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica"),
                             NameObject("/Encoding"): NameObject("/WinAnsiEncoding")})
    for text in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        lines = " ".join(f"({line}) Tj T*" for line in text.split("\n")) if text else ""
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 14 TL 72 720 Td {lines} ET".encode("latin-1"))
        page.replace_contents(ContentStream(stream, writer))
    if title:
        writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# -- text and Markdown ---------------------------------------------------------------------------


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


def test_caller_fields_are_kept_on_the_document(tmp_path: Path):
    path = tmp_path / "a.md"
    path.write_text("# Heading\n\nbody")
    doc = load_path(path, tenant="acme", title="Override", metadata={"team": "infra"}, access=["group:infra"])
    assert (doc.tenant, doc.title, doc.access) == ("acme", "Override", ["group:infra"])
    assert doc.metadata["team"] == "infra" and doc.metadata["path"] == str(path.resolve())


def test_unsupported_type_names_the_file_and_what_is_accepted(tmp_path: Path):
    path = tmp_path / "report.docx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(UnsupportedFormatError, match=r"report\.docx.*'\.docx'.*\.html.*\.pdf.*\.txt.*application/pdf"):
        load_path(path)
    assert issubclass(UnsupportedFormatError, ValueError) and issubclass(UnsupportedFormatError, LoadError)


def test_non_utf8_text_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(CorruptDocumentError, match="not UTF-8"):
        load_path(path)


def test_declared_charset_is_honoured_for_bytes():
    doc = load_bytes("café".encode("latin-1"), media_type="text/plain; charset=ISO-8859-1", source="https://x/c")
    assert doc.text == "café"


def test_oversized_file_is_refused_before_it_is_read(tmp_path: Path):
    path = tmp_path / "big.txt"
    path.write_text("x" * 2000)
    with pytest.raises(DocumentTooLargeError, match=r"big\.txt.*2000 bytes.*limit of 1000"):
        load_path(path, max_bytes=1000)
    with pytest.raises(DocumentTooLargeError):
        load_bytes(b"x" * 2000, filename="big.txt", max_bytes=1000)


def test_gzip_bomb_is_refused_by_decompressed_size():
    with pytest.raises(DocumentTooLargeError, match="decompresses to over 1000"):
        load_bytes(gzip.compress(b"a" * 100_000), filename="notes.txt.gz", max_bytes=1000)


# -- HTML ------------------------------------------------------------------------------------------


def test_html_keeps_headings_as_lines_and_drops_scripts_styles_and_navigation(tmp_path: Path):
    path = tmp_path / "page.html"
    path.write_text(HTML)
    doc = load_path(path, tenant="acme")
    lines = doc.text.split("\n")
    assert "Volcanoes" in lines and "Famous ones" in lines
    assert "A volcano erupts when magma rises. Lava follows." in lines
    assert [line for line in lines if line.lstrip().startswith("- ")] == ["- Etna", "  - Sicily", "- Fuji"]
    assert "name | height" in lines and "Etna | 3357 m" in lines
    assert "code   stays\n  as is" in doc.text
    for dropped in ("tracking", "color", "Home", "About us", "hidden text", "Copyright"):
        assert dropped not in doc.text
    assert doc.title == "Volcano facts"
    assert doc.metadata["headings"] == ["Volcanoes", "Famous ones"]
    assert (doc.metadata["content_type"], doc.metadata["description"], doc.metadata["language"]) == \
        ("text/html", "All about lava", "en")


def test_html_main_element_is_the_content_when_present():
    doc = load_bytes(b"<body><header>Site name</header><main><h1>Article</h1><p>Body text</p></main>"
                     b"<div>Related links</div></body>", media_type="text/html", source="https://x/a")
    assert doc.text == "Article\n\nBody text"
    assert doc.title == "Article"  # no <title>: the first h1


def test_html_bytes_use_their_meta_charset():
    page = '<html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head><body><p>cr\xe8me</p></body></html>'
    doc = load_bytes(page.encode("latin-1"), filename="menu.html")
    assert (doc.title, doc.text) == ("Café", "crème")


def test_html_is_recognised_from_its_first_bytes_when_the_type_is_generic():
    doc = load_bytes(b"<!DOCTYPE html><html><body><p>hi</p></body></html>",
                     media_type="application/octet-stream", source="https://x/page")
    assert doc.metadata["content_type"] == "text/html" and doc.text == "hi"


def test_deeply_nested_html_does_not_exhaust_the_stack():
    doc = load_bytes(b"<div>" * 20_000 + b"deep" + b"</div>" * 20_000, media_type="text/html", source="s")
    assert doc.text == "deep"


# -- PDF -------------------------------------------------------------------------------------------


def test_pdf_text_is_extracted_page_by_page(tmp_path: Path):
    path = tmp_path / "annual_report.pdf"
    path.write_bytes(make_pdf(["Revenue grew in 2024\nCosts fell", "Outlook is stable"], title="Annual report 2024"))
    doc = load_path(path, tenant="acme", access=["finance"])
    assert doc.text == "Revenue grew in 2024\nCosts fell\n\nOutlook is stable"
    assert (doc.title, doc.access, doc.metadata["content_type"]) == ("Annual report 2024", ["finance"], "application/pdf")
    assert doc.metadata["pages"] == 2
    second = doc.metadata["page_starts"][1]
    assert doc.text[second:] == "Outlook is stable"


def test_pdf_without_a_title_is_named_after_its_file(tmp_path: Path):
    path = tmp_path / "q3_summary.pdf"
    path.write_bytes(make_pdf(["Quarter three"]))
    assert load_path(path).title == "q3 summary"


def test_pdf_from_bytes_is_recognised_by_media_type_or_magic():
    data = make_pdf(["Hello PDF"])
    assert load_bytes(data, media_type="application/pdf", source="u1").text == "Hello PDF"
    assert load_bytes(data, media_type="application/octet-stream", source="u2").text == "Hello PDF"


def test_corrupt_pdf_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(make_pdf(["some text"])[:200])
    with pytest.raises(CorruptDocumentError, match=r"broken\.pdf.*not a readable PDF"):
        load_path(path)
    path.write_bytes(b"this is not a pdf at all")
    with pytest.raises(CorruptDocumentError, match=r"broken\.pdf.*not a PDF"):
        load_path(path)


def test_pdf_without_a_text_layer_is_refused_with_the_reason(tmp_path: Path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf(["", ""]))
    with pytest.raises(EmptyDocumentError, match=r"scan\.pdf.*2 page.*no text layer"):
        load_path(path)


# -- JSON and JSON Lines records --------------------------------------------------------------------


def test_beir_corpus_jsonl_loads_one_document_per_record(tmp_path: Path):
    path = tmp_path / "corpus.jsonl"
    records = [{"_id": "4983", "title": "Microstructural development", "text": "Alterations of the architecture.",
                "metadata": {"year": 2004}},
               {"_id": "5836", "title": "Induction of myelodysplasia", "text": "Myelodysplastic syndromes."}]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    docs = list(iter_documents(path, tenant="bench"))
    assert [(d.id, d.title, d.text, d.tenant) for d in docs] == [
        ("4983", "Microstructural development", "Alterations of the architecture.", "bench"),
        ("5836", "Induction of myelodysplasia", "Myelodysplastic syndromes.", "bench")]
    assert docs[0].metadata["year"] == 2004 and docs[0].metadata["content_type"] == "application/x-ndjson"


def test_gzipped_jsonl_streams_like_plain(tmp_path: Path):
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"_id": "1", "text": "one"}\n{"_id": "2", "text": "two"}\n'))
    assert [d.id for d in iter_documents(path)] == ["1", "2"]


def test_record_keys_have_common_defaults_and_can_be_configured():
    data = json.dumps([{"id": 7, "content": "from content", "author": "ann"},
                       {"doc_id": "x", "body": ["para one", "para two"], "headline": "H"}]).encode()
    docs = list(iter_documents_from_bytes(data, media_type="application/json", tenant="t"))
    assert [(d.id, d.text, d.title) for d in docs] == [("7", "from content", ""), ("x", "para one\n\npara two", "H")]
    assert docs[0].metadata["author"] == "ann"
    custom = RecordFields(id=("key",), text=("summary",), title=("label",), access="acl")
    line = b'{"key": "k1", "summary": "custom text", "label": "L", "acl": ["group:a"]}'
    doc = load_bytes(line, filename="x.jsonl", fields=custom, access=["ignored-when-record-has-acl"])
    assert (doc.id, doc.text, doc.title, doc.access) == ("k1", "custom text", "L", ["group:a"])


def test_a_record_cannot_choose_its_tenant_or_access_unless_asked():
    doc = load_bytes(b'{"id": "1", "text": "t", "tenant": "other", "access": ["everyone"]}',
                     media_type="application/json", tenant="acme", access=["team"])
    assert (doc.tenant, doc.access) == ("acme", ["team"])


def test_records_without_an_id_get_one_from_the_file_and_position(tmp_path: Path):
    path = tmp_path / "notes.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n')
    assert [d.id for d in iter_documents(path, document_id="batch-1")] == ["batch-1#1", "batch-1#2"]
    assert [d.id for d in iter_documents(path)] == [f"{path.resolve()}#1", f"{path.resolve()}#2"]


def test_bad_json_line_names_the_line(tmp_path: Path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "1", "text": "ok"}\n{"_id": "2", "text": \n')
    with pytest.raises(CorruptDocumentError, match=r"corpus\.jsonl.*line 2 is not valid JSON"):
        list(iter_documents(path))


def test_record_without_text_names_the_keys_it_looked_for():
    with pytest.raises(CorruptDocumentError, match=r"record 1 has none of the text keys.*'text', 'content'.*'summary'"):
        load_bytes(b'[{"id": "1", "summary": "s"}]', media_type="application/json")


def test_oversized_jsonl_record_is_refused_by_line(tmp_path: Path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"text": "small"}\n' + json.dumps({"text": "x" * 5000}) + "\n")
    with pytest.raises(DocumentTooLargeError, match="line 2 is over the limit of 1000 bytes"):
        list(iter_documents(path, max_bytes=1000))


def test_load_path_on_a_file_of_many_records_points_to_iter_documents(tmp_path: Path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n')
    with pytest.raises(LoadError, match=r"several records.*iter_documents"):
        load_path(path)


def test_a_document_without_text_is_refused(tmp_path: Path):
    with pytest.raises(EmptyDocumentError, match=r"page\.html.*no text"):
        load_bytes(b"<html><head><script>x()</script></head><body><nav>menu</nav></body></html>", filename="page.html")
    path = tmp_path / "empty.md"
    path.write_text("\n\n")
    with pytest.raises(EmptyDocumentError):
        load_path(path)


def test_pdf_text_beyond_the_character_limit_is_refused_naming_the_setting() -> None:
    from indexing.loaders.errors import DocumentTooLargeError
    from indexing.loaders.pdf import parse_pdf

    with pytest.raises(DocumentTooLargeError, match=r"over the limit of 300 characters.*page 2.*RAGLOOP_FETCH_MAX_BYTES"):
        parse_pdf(make_pdf(["a" * 200, "b" * 200, "c" * 200]), name="big.pdf", max_chars=300)


def test_pdf_with_more_pages_than_the_limit_is_refused_before_extraction() -> None:
    from indexing.loaders.errors import DocumentTooLargeError
    from indexing.loaders.pdf import parse_pdf

    with pytest.raises(DocumentTooLargeError, match=r"4 pages, over the limit of 3 \(MAX_PAGES"):
        parse_pdf(make_pdf(["p"] * 4), name="long.pdf", max_pages=3)
