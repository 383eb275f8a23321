"""Real image files for the image tests, made with Pillow (every format the ingest accepts)."""

from __future__ import annotations

import io

from PIL import Image

from indexing.images.blobs import FolderBlobs
from indexing.images.store import ImageStore
from tests.s3_double import S3Double


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30),
                *, exif_orientation: int | None = None) -> bytes:
    """An image of one colour with a white square in its top-left corner (so orientation shows)."""
    image = Image.new("RGB", size, color)
    image.paste((255, 255, 255), (0, 0, size[0] // 4, size[1] // 4))
    out = io.BytesIO()
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(out, format=fmt, exif=exif.tobytes())
    else:
        image.save(out, format=fmt)
    return out.getvalue()


def bomb_png(width: int = 9000, height: int = 9000) -> bytes:
    """A tiny PNG file that declares width*height pixels: a decompression bomb for small limits."""
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def pdf_with_images(text: str, images: list[tuple[bytes, int, int]]) -> bytes:
    """A real PDF of one page: `text` in Helvetica and each (JPEG bytes, declared width, declared height) drawn as an
    image XObject (`/Im1`, `/Im2`, …; DCTDecode, the JPEG stored as is). The declared size may lie, as a bomb's does."""
    from pypdf import PdfWriter
    from pypdf.generic import ContentStream, DecodedStreamObject, DictionaryObject, NameObject, NumberObject, StreamObject

    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica"), NameObject("/Encoding"): NameObject("/WinAnsiEncoding")})
    xobjects = DictionaryObject()
    drawing = ""
    for number, (jpeg, width, height) in enumerate(images, start=1):
        image = StreamObject()
        image.set_data(jpeg)
        image.update({NameObject("/Type"): NameObject("/XObject"), NameObject("/Subtype"): NameObject("/Image"),
                      NameObject("/Width"): NumberObject(width), NameObject("/Height"): NumberObject(height),
                      NameObject("/ColorSpace"): NameObject("/DeviceRGB"), NameObject("/BitsPerComponent"): NumberObject(8),
                      NameObject("/Filter"): NameObject("/DCTDecode")})
        xobjects[NameObject(f"/Im{number}")] = writer._add_object(image)
        drawing += f"q 64 0 0 48 {72 * number} 500 cm /Im{number} Do Q "
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font}),
                                                       NameObject("/XObject"): xobjects})
    stream = DecodedStreamObject()
    stream.set_data(f"{drawing}BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1"))
    page.replace_contents(ContentStream(stream, writer))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def html_with_images(body: str, images: list[tuple[str, str]]) -> bytes:
    """An HTML page: `body` as a paragraph and one `<img>` per (src, alt)."""
    tags = "".join(f'<img src="{src}" alt="{alt}">' for src, alt in images)
    return f"<!doctype html><html><head><title>Catalogue</title></head><body><p>{body}</p>{tags}</body></html>".encode()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    import base64

    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def stored_names(store: ImageStore) -> set[str]:
    """The names of every file the store holds, in its folder or (the S3 double's) bucket."""
    if isinstance(store.blobs, FolderBlobs):
        return {path.name for path in store.blobs.root.rglob("*") if path.is_file()}
    return {key.rsplit("/", 1)[-1] for key in S3Double.objects}
