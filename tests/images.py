"""Images made by the tests themselves: valid files, metadata-laden ones, and hostile ones."""

from __future__ import annotations

import io
import os
import struct
import zlib

from PIL import Image


def png(size: tuple[int, int] = (32, 24), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    info = {"Comment": "secret png comment"}
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    for k, v in info.items():
        meta.add_text(k, v)
    Image.new("RGB", size, color).save(out, format="PNG", pnginfo=meta)
    return out.getvalue()


def jpeg_with_exif(size: tuple[int, int] = (40, 20)) -> bytes:
    """A JPEG carrying EXIF (a camera model and an orientation of 'rotate 90')."""
    img = Image.new("RGB", size, (10, 120, 240))
    exif = Image.Exif()
    exif[0x0110] = "SecretCam 3000"  # Model
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    out = io.BytesIO()
    img.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def noise_png(side: int) -> bytes:
    """Incompressible: a side x side RGB PNG of random pixels (about 3 bytes a pixel)."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(
        out, format="PNG", compress_level=0
    )
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int) -> bytes:
    """A complete, valid grey PNG of side x side black pixels: about 100 KB on disk, `side`²
    bytes once decoded (36 MB for 6,000). Compressed as a stream, never held whole."""
    row = b"\x00" * (side + 1)  # filter byte + pixels
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )
