"""Character Cards: import (JSON V1/V2/V3, PNG `chara`/`ccv3`, CHARX), export, the round
trip of every field, and every malformed card refused with a 400 that names the fault."""

from __future__ import annotations

import base64
import copy
import io
import json
import struct
import zipfile
import zlib
from typing import Any

import httpx
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from conftest import MakeAccount
from helpers import characters_error, x_api_key
from personae.account.service import Credentials
from personae.config import Settings
from test_webhooks import FAST, hooks, register
from webhook_receiver import Receiver

__all__ = ["hooks"]  # the fixture, used by name
CAP = 4  # characters per account in these tests


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A small per-account cap, and webhooks to loopback delivered at once."""
    return settings.model_copy(update=FAST | {"max_characters_per_account": CAP})


LONG = "Caf\u00e9 \u2014 \u65e5\u672c\u8a9e \U0001f409\r\nline two\u00a0end. " * 80  # > 1,000
BOOK: dict[str, Any] = {
    "name": "Eldoria \u2728",
    "description": "The forest's lore\r\n",
    "scan_depth": 3,
    "token_budget": 400,
    "recursive_scanning": True,
    "extensions": {"world": {"nested": [1, {"deep": None}]}},
    "entries": [
        {
            "id": 7,
            "keys": ["forest", "Wood"],
            "secondary_keys": ["night"],
            "content": "The forest of {{char}} glows\u00a0at night.\r\n",
            "extensions": {"selectiveLogic": 0, "probability": None, "useProbability": False},
            "enabled": True,
            "insertion_order": 100,
            "case_sensitive": False,
            "name": "forest",
            "priority": 10,
            "comment": "",
            "selective": True,
            "constant": False,
            "position": "after_char",
        },
        {
            "id": "two",
            "keys": ["dragon"],
            "content": "",
            "extensions": {},
            "enabled": False,
            "insertion_order": 5,
            "constant": True,
            "position": "before_char",
        },
    ],
}


def card_data(name: str = " Nyx \u00e9toile ") -> dict[str, Any]:
    """A V2 card's `data` with every field set: unicode, CRLF, U+00A0, empty strings."""
    return {
        "name": name,
        "description": LONG,
        "personality": "",
        "scenario": "A night\u00a0market.\r\n\r\nRain.",
        "first_mes": "  *waves* Hello, {{user}}!  \r\n",
        "mes_example": "",
        "creator_notes": "Notes \u2014 \U0001f600",
        "system_prompt": "Write as {{char}}.\r\n",
        "post_history_instructions": "[Stay brief, {{char}}.]",
        "alternate_greetings": ["", "Hi again\r\n", "\u3053\u3093\u306b\u3061\u306f"],
        "tags": ["Fantasy", "Sci-Fi", "a,b", "Fantasy"],
        "creator": "someone@example \u00e9",
        "character_version": "1.0.2",
        "extensions": {"talkativeness": "0.5", "fav": False, "depth_prompt": {"depth": 4}},
        "character_book": copy.deepcopy(BOOK),
    }


def v2_card(**data: Any) -> dict[str, Any]:
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": card_data() | data}


def v3_card(icon_uri: str = "ccdefault:", **data: Any) -> dict[str, Any]:
    book = copy.deepcopy(BOOK)
    for entry in book["entries"]:
        entry["use_regex"] = False
    book["entries"].append(
        {
            "keys": ["/\\bdragons?\\b/i"],
            "content": "Dragons sleep.",
            "extensions": {},
            "enabled": True,
            "insertion_order": 1,
            "use_regex": True,
        }
    )
    v3 = {
        "nickname": "N",
        "creator_notes_multilingual": {"fr": "Notes"},
        "source": ["https://example.com/card"],
        "group_only_greetings": ["Hello, all."],
        "creation_date": 1700000000,
        "modification_date": 1700000001,
        "assets": [{"type": "icon", "uri": icon_uri, "name": "main", "ext": "png"}],
        "character_book": book,
    }
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": card_data() | v3 | data}


def encoded(card: Any) -> bytes:
    return base64.b64encode(json.dumps(card, ensure_ascii=False).encode())


def png(texts: dict[str, bytes], size: tuple[int, int] = (12, 18)) -> bytes:
    """A PNG with tEXt chunks (Pillow's PngInfo)."""
    info = PngInfo()
    for keyword, value in texts.items():
        info.add_text(keyword, value.decode("latin-1"))
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 90)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def charx(card: Any, files: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        if card is not None:
            archive.writestr("card.json", json.dumps(card, ensure_ascii=False))
        for name, data in (files or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def png_texts(data: bytes) -> dict[str, Any]:
    """The cards in a PNG's tEXt chunks, decoded."""
    with Image.open(io.BytesIO(data)) as img:
        return {k: json.loads(base64.b64decode(v)) for k, v in img.text.items()}  # type: ignore[attr-defined]


async def import_card(
    client: httpx.AsyncClient,
    creds: Credentials,
    data: bytes,
    *,
    raw_type: str | None = None,
    form: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a card as a multipart `file`, or as the whole body with `raw_type`."""
    headers = x_api_key(creds) | (headers or {})
    if raw_type is not None:
        return await client.post(
            "/v1/characters/import",
            content=data,
            headers=headers | {"Content-Type": raw_type},
            params=params,
        )
    return await client.post(
        "/v1/characters/import",
        files={"file": ("card", data, "application/octet-stream")},
        data=form or {},
        headers=headers,
        params=params,
    )


async def imported(client: httpx.AsyncClient, creds: Credentials, data: bytes) -> dict[str, Any]:
    response = await import_card(client, creds, data)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def export(
    client: httpx.AsyncClient, creds: Credentials, char_id: str, fmt: str, spec: str
) -> httpx.Response:
    return await client.get(
        f"/v1/characters/{char_id}/card",
        params={"format": fmt, "spec": spec},
        headers=x_api_key(creds),
    )


async def characters_of(client: httpx.AsyncClient, creds: Credentials) -> int:
    me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
    count: int = me["stats"]["characters_created"]
    return count


# import
async def test_json_cards_of_every_version_import(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    v1 = {
        "name": "Old One",
        "description": "From 2023",
        "personality": "Terse",
        "scenario": "",
        "first_mes": "Hm.",
        "mes_example": "<START>\n{{char}}: Hm.",
    }
    for card in (v1, v2_card(), v3_card()):
        response = await import_card(
            client, creds, json.dumps(card).encode(), raw_type="application/json"
        )
        assert response.status_code == 201, response.text
        body = response.json()
        data = card.get("data", card)
        assert body["name"] == data["name"].strip()
        assert body["description"] == data["description"]
        assert body["greeting"] == data["first_mes"]  # verbatim: not trimmed
        assert body["example_dialogue"] == data["mes_example"]
        assert body["visibility"] == "public"
        if card is not v1:
            assert len(body["description"]) > 1_000
            assert body["tags"] == ["fantasy", "sci-fi"]
            assert body["alternate_greetings"] == data["alternate_greetings"]
            assert body["system_prompt"] == data["system_prompt"]
            assert body["post_history_instructions"] == data["post_history_instructions"]
            assert body["creator_notes"] == data["creator_notes"]
            assert body["card_creator"] == data["creator"]
            assert body["card_version"] == data["character_version"]
        fetched = await client.get(f"/v1/characters/{body['id']}", headers=x_api_key(creds))
        assert fetched.json() == body
    assert await characters_of(client, creds) == 3


async def test_png_cards_import_and_ccv3_wins(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    chara = await imported(client, creds, png({"chara": encoded(v2_card(name="From chara"))}))
    assert chara["name"] == "From chara"
    ccv3 = await imported(client, creds, png({"ccv3": encoded(v3_card(name="From ccv3"))}))
    assert ccv3["name"] == "From ccv3"
    both = png({"chara": encoded(v2_card(name="Old")), "ccv3": encoded(v3_card(name="New"))})
    assert (await imported(client, creds, both))["name"] == "New"
    # The PNG is the avatar, re-encoded without the card's chunk.
    assert chara["image_url"]
    avatar = await client.get(chara["image_url"].removeprefix("http://testserver"))
    assert avatar.status_code == 200
    with Image.open(io.BytesIO(avatar.content)) as img:
        assert img.size == (12, 18)
        assert img.text == {}  # type: ignore[attr-defined]


async def test_charx_imports_with_its_icon_as_the_avatar(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    icon = png({}, size=(30, 40))
    card = v3_card(icon_uri="embeded://assets/icon/images/main.png")
    card["data"]["assets"].append(
        {
            "type": "emotion",
            "uri": "embeded://assets/emotion/happy.png",
            "name": "happy",
            "ext": "png",
        }
    )
    body = await imported(
        client,
        creds,
        charx(card, {"assets/icon/images/main.png": icon, "assets/emotion/happy.png": icon}),
    )
    assert body["name"] == "Nyx \u00e9toile"
    avatar = await client.get(body["image_url"].removeprefix("http://testserver"))
    with Image.open(io.BytesIO(avatar.content)) as img:
        assert img.size == (30, 40)
    exported = await export(client, creds, body["id"], "json", "v3")
    assets = exported.json()["data"]["assets"]
    # Embedded files other than the icon are not kept, nor are their entries.
    assert [a["name"] for a in assets] == ["main"]


async def test_visibility_by_form_or_query(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds, other = await make_account(), await make_account()
    card = json.dumps(v2_card()).encode()
    by_form = await import_card(client, creds, card, form={"visibility": "private"})
    by_query = await import_card(client, creds, card, params={"visibility": "private"})
    for response in (by_form, by_query):
        assert response.status_code == 201, response.text
        assert response.json()["visibility"] == "private"
        char_id = response.json()["id"]
        hidden = await client.get(f"/v1/characters/{char_id}", headers=x_api_key(other))
        characters_error(hidden, 404, "not_found")
        characters_error(await export(client, other, char_id, "json", "v2"), 404, "not_found")
    public = await imported(client, creds, card)
    assert (await export(client, other, public["id"], "json", "v2")).status_code == 200
    characters_error(
        await import_card(client, creds, card, form={"visibility": "friends"}),
        400,
        "invalid_request",
    )


# the round trip
def card_for(container: str, spec: str) -> dict[str, Any]:
    if spec == "v2":
        return v2_card()
    uri = "embeded://assets/icon/images/main.png" if container == "charx" else "ccdefault:"
    return v3_card(icon_uri=uri)


def container_of(container: str, spec: str, card: dict[str, Any]) -> bytes:
    if container == "json":
        return json.dumps(card, ensure_ascii=False).encode()
    if container == "png":
        return png({"chara" if spec == "v2" else "ccv3": encoded(card)})
    return charx(card, {"assets/icon/images/main.png": png({})})


def card_in(container: str, spec: str, data: bytes) -> dict[str, Any]:
    if container == "json":
        card: dict[str, Any] = json.loads(data)
        return card
    if container == "png":
        cards = png_texts(data)
        if spec == "v3":
            assert cards["chara"]["spec"] == "chara_card_v2"  # for V2 readers, beside it
        return cards["chara" if spec == "v2" else "ccv3"]  # type: ignore[no-any-return]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert "assets/icon/images/main.png" in names
        return json.loads(archive.read("card.json"))  # type: ignore[no-any-return]


@pytest.mark.parametrize("container", ["json", "png", "charx"])
@pytest.mark.parametrize("spec", ["v2", "v3"])
async def test_import_then_export_gives_back_every_field(
    client: httpx.AsyncClient, make_account: MakeAccount, container: str, spec: str
) -> None:
    creds = await make_account()
    card = card_for(container, spec)
    body = await imported(client, creds, container_of(container, spec, card))
    response = await export(client, creds, body["id"], container, spec)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(
        {"json": "application/json", "png": "image/png", "charx": "application/zip"}[container]
    )
    assert card_in(container, spec, response.content) == card


async def test_export_follows_edits_and_a_character_made_here(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    body = await imported(client, creds, json.dumps(v2_card()).encode())
    url = f"/v1/characters/{body['id']}"
    patched = await client.patch(
        url, json={"tags": ["noir"], "name": "Nyx"}, headers=x_api_key(creds)
    )
    assert patched.status_code == 200, patched.text
    data = (await export(client, creds, body["id"], "json", "v2")).json()["data"]
    assert data["tags"] == ["noir"]
    assert data["name"] == "Nyx"
    assert data["description"] == LONG  # what did not change stays the card's

    made = await client.post(
        "/v1/characters",
        json={"name": "Plain", "description": "d", "personality": "p", "background": "b"},
        headers=x_api_key(creds),
    )
    char_id = made.json()["id"]
    exported = await export(client, creds, char_id, "png", "v3")
    cards = png_texts(exported.content)
    assert cards["ccv3"]["spec"] == "chara_card_v3"
    assert cards["ccv3"]["data"]["name"] == "Plain"
    assert cards["chara"]["data"]["first_mes"] == ""
    with Image.open(io.BytesIO(exported.content)) as img:
        assert img.size == (400, 600)  # a plain image for a character without an avatar
    characters_error(
        await client.get(f"/v1/characters/{char_id}/card?format=gif", headers=x_api_key(creds)),
        400,
        "invalid_request",
    )


# refusals
def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb() -> bytes:
    """A PNG whose header claims 5000x5000 pixels (75 MB decoded), with a valid card."""
    ihdr = struct.pack(">IIBBBBB", 5000, 5000, 8, 2, 0, 0, 0)
    text = b"chara\0" + encoded(v2_card())
    idat = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"tEXt", text)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def zip_bomb() -> bytes:
    """A CHARX whose card.json inflates to 4 MB from a few KB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("card.json", b" " * (4 * 1024 * 1024))
    return out.getvalue()


def too_many_entries() -> dict[str, Any]:
    entry = {"keys": ["k"], "content": "c", "extensions": {}, "enabled": True, "insertion_order": 0}
    return v2_card(character_book={"entries": [entry] * 257, "extensions": {}})


MALFORMED: dict[str, tuple[bytes, str]] = {
    "bad base64": (
        png({"chara": b"not*base64!"}),
        "card.chara: the tEXt chunk is not valid base64",
    ),
    "bad JSON in the chunk": (png({"chara": base64.b64encode(b"{nope")}), "card: not valid JSON"),
    "bad JSON": (b'{"spec": "chara_card_v2", ', "card: not valid JSON"),
    "not an object": (b"[1, 2]", "card: must be a JSON object"),
    "wrong spec": (json.dumps({"spec": "chara_card_v9", "data": {}}).encode(), "card.spec"),
    "no data": (json.dumps({"spec": "chara_card_v2"}).encode(), "card.data"),
    "no name": (json.dumps(v2_card(name=None)).encode(), "card.data.name"),
    "oversized field": (
        json.dumps(v2_card(description="x" * 64_001)).encode(),
        "card.data.description",
    ),
    "control character": (
        json.dumps(v2_card(personality="a\u0007b")).encode(),
        "card.data.personality",
    ),
    "U+0000 in extensions": (
        json.dumps(v2_card(extensions={"x": ["\u0000"]})).encode(),
        "card: holds U+0000",
    ),
    "a number for text": (json.dumps(v2_card(scenario=3)).encode(), "card.data.scenario"),
    "too many entries": (
        json.dumps(too_many_entries()).encode(),
        "card.data.character_book.entries",
    ),
    "unsafe regex key": (
        json.dumps(
            v2_card(
                character_book={
                    "entries": [
                        {
                            "keys": ["(a+)+$"],
                            "content": "c",
                            "use_regex": True,
                            "extensions": {},
                            "enabled": True,
                            "insertion_order": 0,
                        }
                    ]
                }
            )
        ).encode(),
        "card.data.character_book.entries.0.keys: the regular expression",
    ),
    "no card chunk": (png({"Comment": b"hello"}), "no `chara` or `ccv3` tEXt chunk"),
    "truncated png": (png({"chara": encoded(v2_card())})[:60], "truncated"),
    "png bomb": (png_bomb(), "image: 5000x5000 is too large"),
    "zip bomb": (zip_bomb(), "card:card.json: 4194304 bytes, over the limit"),
    "not a zip": (b"PK\x03\x04" + b"\0" * 64, "card: not a valid zip file"),
    "charx without card.json": (charx(None, {"x.txt": b"x"}), "the CHARX has no 'card.json'"),
    "neither": (b"GIF89a....", "card: neither a card's JSON, a PNG nor a CHARX"),
    "empty": (b"", "card: empty file"),
}


@pytest.mark.parametrize("case", MALFORMED)
async def test_malformed_cards_are_400_and_write_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, case: str
) -> None:
    creds = await make_account()
    data, says = MALFORMED[case]
    error = characters_error(await import_card(client, creds, data), 400, "invalid_request")
    assert says in error["message"], error
    assert await characters_of(client, creds) == 0


async def test_other_media_types_and_forms_are_refused(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    text = await import_card(client, creds, b"{}", raw_type="text/plain")
    characters_error(text, 415, "unsupported_media_type")
    no_file = await client.post(
        "/v1/characters/import", data={"visibility": "public"}, files={"x": ("x", b"1")},
        headers=x_api_key(creds),
    )  # fmt: skip
    assert "x" in characters_error(no_file, 400, "invalid_request")["message"]
    assert await characters_of(client, creds) == 0


async def test_the_same_import_retried_with_a_key_makes_one_character(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    card = png({"chara": encoded(v2_card())})
    key = {"Idempotency-Key": "import-card-1"}
    first = await import_card(client, creds, card, headers=key)
    again = await import_card(client, creds, card, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    assert await characters_of(client, creds) == 1


async def test_imports_count_toward_the_cap_and_announce_the_character(
    client: httpx.AsyncClient, make_account: MakeAccount, hooks: Receiver
) -> None:
    creds = await make_account("premium")
    await register(client, creds, hooks.base + "/hook", ["character.created"])
    card = png({"chara": encoded(v2_card())})
    made = [await imported(client, creds, card) for _ in range(CAP)]
    refused = characters_error(await import_card(client, creds, card), 429, "rate_limited")
    assert refused["details"]["limit"] == "characters_per_account"
    assert await characters_of(client, creds) == CAP
    await hooks.wait_for(CAP)
    announced = [received.json["data"] for received in hooks.on("/hook")]
    assert sorted(d["id"] for d in announced) == sorted(c["id"] for c in made)
    assert announced[0]["description"] == LONG
