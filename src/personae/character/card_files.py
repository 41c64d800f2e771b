"""The files a Character Card comes in: JSON, a PNG with the card in a `tEXt` chunk, or a
CHARX zip. Reading takes bytes from a client and trusts none of them: chunks are walked
without decompressing anything, a zip's members are read only as far as their caps (a
declared size can lie), and only `card.json` and the icon are read at all. Blocking: call
these from a thread.

PNG: `chara` holds base64 of a V2 card's JSON, `ccv3` of a V3 card's; where both are
present `ccv3` wins. CHARX: `card.json` at the root, assets named by `embeded://` URIs
(the V3 specification's spelling); the icon (type `icon`, the one named `main` first)
becomes the avatar, other embedded files are not kept.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image

from personae.character.card import SPEC_V3, decode_json
from personae.errors import InvalidRequest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
CARD_CHUNKS = ("ccv3", "chara")  # the first found wins
MAX_CHUNKS = 10_000
MAX_CARD_CHUNK = 4 * 1024 * 1024  # base64 of a card: MAX_CARD_BYTES and then some
MAX_CARD_JSON = 3 * 1024 * 1024
MAX_ZIP_MEMBERS = 1_000
EMBEDDED = "embeded://"  # sic: the CHARX specification's spelling
ICON_PATH = "assets/icon/images/main.png"
# What a PNG export draws when the character has no avatar: a plain card-sized image.
PLAIN_SIZE, PLAIN_COLOUR = (400, 600), (96, 96, 112)
Container = Literal["json", "png", "charx"]


@dataclass(frozen=True)
class CardFile:
    """A card read from its file: the card's JSON (decoded, not yet checked) and the image
    that comes with it (a PNG card's own image, a CHARX icon), if any."""

    card: Any
    image: bytes | None
    container: Container


def read_card_file(raw: bytes, max_image_bytes: int, where: str = "card") -> CardFile:
    """A card in any of the three files, told apart by content, not by declared type.
    `max_image_bytes` bounds a CHARX icon as it is unpacked."""
    if not raw:
        raise InvalidRequest(f"{where}: empty file", details={"field": where})
    if raw.startswith(PNG_MAGIC):
        return CardFile(decode_json(png_card_text(raw, where), where), raw, "png")
    if raw.startswith(ZIP_MAGIC):
        return read_charx(raw, max_image_bytes, where)
    if raw.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] in (b"{", b"["):
        if len(raw) > MAX_CARD_JSON:
            raise _too_large(where, len(raw), MAX_CARD_JSON)
        return CardFile(decode_json(raw, where), None, "json")
    raise InvalidRequest(
        f"{where}: neither a card's JSON, a PNG nor a CHARX (zip) file",
        details={"field": where},
    )


def _too_large(where: str, size: int, most: int) -> InvalidRequest:
    return InvalidRequest(
        f"{where}: {size} bytes, over the limit of {most}",
        details={"field": where, "limit_bytes": most},
    )


# PNG
def _chunks(raw: bytes, where: str) -> list[tuple[bytes, bytes]]:
    """The PNG's chunks (type, data), CRCs checked; nothing is decompressed."""
    chunks: list[tuple[bytes, bytes]] = []
    at = len(PNG_MAGIC)
    while at < len(raw):
        if len(chunks) >= MAX_CHUNKS:
            raise InvalidRequest(
                f"{where}: more than {MAX_CHUNKS} PNG chunks", details={"field": where}
            )
        if at + 8 > len(raw):
            raise InvalidRequest(f"{where}: the PNG is truncated", details={"field": where})
        length, kind = struct.unpack(">I4s", raw[at : at + 8])
        end = at + 8 + length
        if end + 4 > len(raw):
            raise InvalidRequest(f"{where}: the PNG is truncated", details={"field": where})
        data = raw[at + 8 : end]
        (crc,) = struct.unpack(">I", raw[end : end + 4])
        if zlib.crc32(kind + data) != crc:
            name = kind.decode("latin-1")
            raise InvalidRequest(
                f"{where}: the PNG's {name!r} chunk is corrupt (CRC mismatch)",
                details={"field": where},
            )
        chunks.append((kind, data))
        at = end + 4
        if kind == b"IEND":
            break
    return chunks


def png_card_text(raw: bytes, where: str) -> bytes:
    """The card's JSON text from a PNG's `ccv3` chunk, else its `chara` chunk."""
    found: dict[str, bytes] = {}
    for kind, data in _chunks(raw, where):
        if kind != b"tEXt":
            continue
        keyword, sep, value = data.partition(b"\0")
        name = keyword.decode("latin-1").lower()
        if sep and name in CARD_CHUNKS and name not in found:
            found[name] = value
    for name in CARD_CHUNKS:
        if name in found:
            value = found[name]
            field = f"{where}.{name}"
            if len(value) > MAX_CARD_CHUNK:
                raise _too_large(field, len(value), MAX_CARD_CHUNK)
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidRequest(
                    f"{field}: the tEXt chunk is not valid base64 ({exc})",
                    details={"field": field},
                ) from exc
    raise InvalidRequest(
        f"{where}: the PNG carries no card (no `chara` or `ccv3` tEXt chunk)",
        details={"field": where},
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_card(image: bytes | None, texts: dict[str, bytes]) -> bytes:
    """`image` (PNG or JPEG, as storage/processing.py keeps them; a plain image when None)
    as a PNG carrying `texts` (keyword -> JSON) in tEXt chunks, base64, before IEND. Card
    chunks the image already had are replaced."""
    png = _as_png(image)
    out = [PNG_MAGIC]
    for kind, data in _chunks(png, "image"):
        if kind == b"tEXt" and data.partition(b"\0")[0].decode("latin-1").lower() in CARD_CHUNKS:
            continue
        if kind == b"IEND":
            out += [
                _chunk(b"tEXt", k.encode() + b"\0" + base64.b64encode(v)) for k, v in texts.items()
            ]
        out.append(_chunk(kind, data))
    return b"".join(out)


def _as_png(image: bytes | None) -> bytes:
    if image is not None and image.startswith(PNG_MAGIC):
        return image
    out = io.BytesIO()
    if image is None:
        Image.new("RGB", PLAIN_SIZE, PLAIN_COLOUR).save(out, format="PNG")
    else:  # a stored JPEG avatar (already checked when it was uploaded)
        with Image.open(io.BytesIO(image), formats=["JPEG"]) as img:
            img.save(out, format="PNG")
    return out.getvalue()


# CHARX
def _member(archive: zipfile.ZipFile, name: str, most: int, where: str) -> bytes:
    """A zip member's bytes, read no further than `most` whatever its header declares."""
    field = f"{where}:{name}"
    try:
        info = archive.getinfo(name)
    except KeyError as exc:
        raise InvalidRequest(
            f"{where}: the CHARX has no {name!r}", details={"field": where}
        ) from exc
    if info.file_size > most:
        raise _too_large(field, info.file_size, most)
    try:
        with archive.open(info) as member:
            data = member.read(most + 1)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression.
        raise InvalidRequest(
            f"{field}: cannot be read from the zip ({exc})", details={"field": field}
        ) from exc
    if len(data) > most:  # the header lied about the size: a zip bomb
        raise _too_large(field, len(data), most)
    return data


def read_charx(raw: bytes, max_image_bytes: int, where: str) -> CardFile:
    """`card.json` and its icon. Embedded assets other than the icon are dropped from the
    card's `assets` (their files are not kept); assets found elsewhere stay as given."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidRequest(
            f"{where}: not a valid zip file ({exc})", details={"field": where}
        ) from exc
    with archive:
        if len(archive.infolist()) > MAX_ZIP_MEMBERS:
            raise InvalidRequest(
                f"{where}: more than {MAX_ZIP_MEMBERS} files in the CHARX",
                details={"field": where},
            )
        card = decode_json(
            _member(archive, "card.json", MAX_CARD_JSON, where), f"{where}:card.json"
        )
        image = None
        data = card.get("data") if isinstance(card, dict) else None
        assets = data.get("assets") if isinstance(data, dict) else None
        icon = _icon(assets) if isinstance(assets, list) else None
        if icon is not None:
            image = _member(archive, icon["uri"][len(EMBEDDED) :], max_image_bytes, where)
        else:  # a card without an icon asset (a V2 card): the conventional place
            found = [n for n in archive.namelist() if n.startswith(ICON_PATH.rsplit("/", 1)[0])]
            if found:
                image = _member(archive, sorted(found)[0], max_image_bytes, where)
        if isinstance(data, dict) and isinstance(assets, list):
            data["assets"] = [
                a
                for a in assets
                if a is icon
                or not (isinstance(a, dict) and str(a.get("uri", "")).startswith(EMBEDDED))
            ]
    return CardFile(card, image, "charx")


def _icon(assets: list[Any]) -> dict[str, Any] | None:
    icons = [
        a
        for a in assets
        if isinstance(a, dict)
        and a.get("type") == "icon"
        and isinstance(a.get("uri"), str)
        and a["uri"].startswith(EMBEDDED)
    ]
    return next((a for a in icons if a.get("name") == "main"), icons[0] if icons else None)


def charx_with_card(card: dict[str, Any], card_json: bytes, image: bytes | None) -> bytes:
    """A CHARX of `card` (whose JSON is `card_json`) with the avatar as its icon, at the
    path its icon asset names (`assets/icon/images/main.png` for a card without one)."""
    data = card.get("data", {})
    assets = data.get("assets") if isinstance(data.get("assets"), list) else None
    icon = _icon(assets) if assets is not None else None
    path = icon["uri"][len(EMBEDDED) :] if icon is not None else ICON_PATH
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("card.json", card_json)
        if image is not None:
            archive.writestr(path, image)
    return out.getvalue()


def place_icon(card: dict[str, Any], container: Container, image_ext: str | None) -> None:
    """A V3 card's icon asset where `container` keeps the image: a CHARX file names it
    (`embeded://`, added when the card has none and there is an image); a PNG is itself
    the icon (`ccdefault:`); a JSON card keeps what it has."""
    data = card["data"]
    assets = data.get("assets")
    if card.get("spec") != SPEC_V3:
        return
    icon = _icon(assets) if isinstance(assets, list) else None
    if container == "charx" and icon is None and image_ext is not None:
        path = ICON_PATH.rsplit(".", 1)[0] + "." + image_ext
        entry = {"type": "icon", "uri": EMBEDDED + path, "name": "main", "ext": image_ext}
        data["assets"] = [*(assets if isinstance(assets, list) else []), entry]
    elif container == "png" and icon is not None and isinstance(assets, list):
        data["assets"] = [{**a, "uri": "ccdefault:"} if a is icon else a for a in assets]
