"""Images inside PDF and HTML files, as the loaders expose them: real files made in the test; a bomb's
declared size, a broken image, a bad data: URL or one image too many is refused alone, with the reason;
a remote <img> is never fetched."""

from __future__ import annotations

from indexing.loaders.embedded_images import embedded_images
from tests.images_support import data_url, html_with_images, image_bytes, pdf_with_images

RED = (200, 30, 30)


def test_a_pdf_page_image_is_found_and_a_bomb_and_a_broken_one_are_refused_alone() -> None:
    jpeg = image_bytes("JPEG", size=(64, 48), color=RED)
    pdf = pdf_with_images("A report with pictures", [(jpeg, 64, 48), (jpeg, 100_000, 100_000), (b"not a jpeg at all", 64, 48)])
    found, refused = embedded_images(pdf, fmt="pdf", name="report.pdf", limit=10, max_pixels=1_000_000)
    assert [(f.name, f.data[:2]) for f in found] == [("page 1 image /Im1", b"\xff\xd8")]
    reasons = {r.name: r.reason for r in refused}
    assert "100000x100000 = 10000000000 pixels; the limit is 1000000 (RAGLOOP_IMAGES_MAX_PIXELS)" in reasons["page 1 image /Im2"]
    assert "cannot be decoded" in reasons["page 1 image /Im3"]


def test_html_data_images_carry_their_alt_text_and_remote_ones_are_not_fetched() -> None:
    page = html_with_images("Our bikes", [(data_url(image_bytes("PNG")), "a red bicycle"), ("https://example.com/x.png", "remote"),
                                          ("data:image/png;base64,@@@", "broken"), ("data:image/png,plain", "not base64")])
    found, refused = embedded_images(page, fmt="html", name="bikes.html", limit=10, max_pixels=1_000_000)
    assert [(f.name, f.caption, f.data) for f in found] == [("<img> 1", "a red bicycle", image_bytes("PNG"))]
    assert [r.name for r in refused] == ["<img> 3", "<img> 4"]
    assert "not valid base64" in refused[0].reason and "not base64" in refused[1].reason


def test_images_over_the_per_document_limit_are_refused_with_the_setting() -> None:
    page = html_with_images("Many", [(data_url(image_bytes("PNG", color=(i, 0, 0))), f"pic {i}") for i in range(3)])
    found, refused = embedded_images(page, fmt="html", name="many.html", limit=2, max_pixels=1_000_000)
    assert [f.caption for f in found] == ["pic 0", "pic 1"]
    assert [r.name for r in refused] == ["<img> 3"] and "RAGLOOP_IMAGES_MAX_EMBEDDED" in refused[0].reason


def test_other_formats_expose_no_images() -> None:
    assert embedded_images(b"plain text", fmt="text", name="a.txt", limit=5, max_pixels=10) == ([], [])
