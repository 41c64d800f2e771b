"""Checking uploaded images by their content and re-encoding them.

The declared type and file name are ignored: Pillow must recognise a PNG or a JPEG.
Dimensions are read from the header and capped *before* any pixel is decoded, which is
what stops a decompression bomb (a few KB of PNG that inflates to gigabytes). The image
is then re-encoded, which drops every metadata chunk (EXIF with GPS, comments, ICC
quirks) after applying the EXIF orientation. Blocking: call it from a thread.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from personae.errors import InvalidRequest, PayloadTooLarge

MAX_PIXELS = 4096 * 4096
MAX_SIDE = 8192
FORMATS = {"PNG": "png", "JPEG": "jpg"}


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    ext: str  # "png" or "jpg"
    width: int
    height: int


def sanitize_image(data: bytes, max_bytes: int, field: str = "image") -> CleanImage:
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"{field}: file is {len(data)} bytes, the limit is {max_bytes}",
            details={"field": field, "limit_bytes": max_bytes},
        )
    if not data:
        raise InvalidRequest(f"{field}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(FORMATS)) as img:
                width, height = img.size
                if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
                    raise InvalidRequest(
                        f"{field}: {width}x{height} is too large "
                        f"(at most {MAX_PIXELS} pixels and {MAX_SIDE} per side)"
                    )
                ext = FORMATS[str(img.format)]
                img.load()
                clean = ImageOps.exif_transpose(img)
                return _encode(clean, ext)
    except InvalidRequest:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidRequest(f"{field}: too many pixels (decompression bomb refused)") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidRequest(f"{field}: not a valid PNG or JPEG image") from exc


def _encode(img: Image.Image, ext: str) -> CleanImage:
    out = io.BytesIO()
    if ext == "jpg":
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        img.save(out, format="JPEG", quality=90, optimize=True)
    else:
        if img.mode not in ("RGB", "RGBA", "L", "LA"):  # P keeps its transparency as RGBA
            img = img.convert("RGBA")
        img.save(out, format="PNG", optimize=True)
    return CleanImage(out.getvalue(), ext, img.width, img.height)
