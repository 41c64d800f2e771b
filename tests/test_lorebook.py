"""Lorebooks: the API that edits one, its checks, and its entries firing at prompt time
(through the HTTP API with the embedded engine, `verbose` saying which fired and why; and
the prompt building on its own)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from conftest import MakeAccount
from helpers import bearer, characters_error, x_api_key
from personae.account.service import Credentials
from personae.conversation.lore import LoreSettings, select_lore
from personae.conversation.prompt import PromptTemplate, fill_names
from personae.models import Character

QUICK = {"max_tokens": 4, "temperature": 0}
LIGHTHOUSE = {
    "keys": ["lighthouse"],
    "content": "{{char}} keeps the lighthouse of Port Mireille.",
    "extensions": {},
    "enabled": True,
    "insertion_order": 10,
    "name": "the lighthouse",
}
BOOK: dict[str, Any] = {"name": "Coast", "scan_depth": 2, "entries": [LIGHTHOUSE]}


async def character(client: httpx.AsyncClient, creds: Credentials, **fields: Any) -> str:
    body = {"name": "Ondine", "description": "a sailor", "personality": "calm",
            "background": "grew up by the sea"} | fields  # fmt: skip
    response = await client.post("/v1/characters", json=body, headers=x_api_key(creds))
    assert response.status_code == 201, response.text
    char_id: str = response.json()["id"]
    return char_id


async def put_book(
    client: httpx.AsyncClient, creds: Credentials, char_id: str, book: Any
) -> httpx.Response:
    return await client.put(
        f"/v1/characters/{char_id}/lorebook",
        content=json.dumps(book),
        headers=x_api_key(creds) | {"Content-Type": "application/json"},
    )


async def test_the_owner_reads_replaces_and_removes_the_book(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    owner, other = await make_account(), await make_account()
    char_id = await character(client, owner)
    url = f"/v1/characters/{char_id}/lorebook"
    empty = (await client.get(url, headers=x_api_key(owner))).json()
    assert empty == {"character_id": char_id, "lorebook": None, "updated_at": None}

    book = BOOK | {"extensions": {"x": [1, {"y": None}]}, "unknown_field": "kept"}
    put = await put_book(client, owner, char_id, book)
    assert put.status_code == 200, put.text
    assert put.json()["lorebook"] == book  # as given, unknown fields included
    assert (await client.get(url, headers=x_api_key(owner))).json()["lorebook"] == book

    # Owner only: another account gets 403 on a public character, 404 on a private one.
    characters_error(await client.get(url, headers=x_api_key(other)), 403, "forbidden")
    characters_error(await put_book(client, other, char_id, BOOK), 403, "forbidden")
    hidden = await character(client, owner, visibility="private")
    characters_error(
        await client.get(f"/v1/characters/{hidden}/lorebook", headers=x_api_key(other)),
        404,
        "not_found",
    )

    gone = await client.delete(url, headers=x_api_key(owner))
    assert gone.status_code == 200, gone.text
    assert (await client.get(url, headers=x_api_key(owner))).json()["lorebook"] is None


def entry(**fields: Any) -> dict[str, Any]:
    return LIGHTHOUSE | fields


INVALID: dict[str, tuple[Any, str]] = {
    "not an object": ([LIGHTHOUSE], "lorebook: must be a JSON object"),
    "no entries": ({"name": "x"}, "lorebook.entries: Field required"),
    "keys not a list": ({"entries": [entry(keys="lighthouse")]}, "lorebook.entries.0.keys"),
    "empty key": ({"entries": [entry(keys=[""])]}, "lorebook.entries.0.keys.0"),
    "content too long": ({"entries": [entry(content="x" * 16_001)]}, "lorebook.entries.0.content"),
    "too many entries": ({"entries": [LIGHTHOUSE] * 257}, "lorebook.entries"),
    "bad position": ({"entries": [entry(position="middle")]}, "lorebook.entries.0.position"),
    "scan depth": ({"scan_depth": 101, "entries": []}, "lorebook.scan_depth"),
    "text for a number": ({"entries": [entry(insertion_order="1")]}, "insertion_order"),
    "invalid regex": (
        {"entries": [entry(keys=["(unclosed"], use_regex=True)]},
        "lorebook.entries.0.keys: the regular expression '(unclosed' is not valid",
    ),
    "nested repeat": (
        {"entries": [entry(keys=["(a+)+b"], use_regex=True)]},
        "repeats more than one thing",
    ),
    "repeated alternation": (
        {"entries": [entry(keys=["/(a|aa)*b/i"], use_regex=True)]},
        "repeats an alternation",
    ),
    "backreference": ({"entries": [entry(keys=[r"(a)\1"], use_regex=True)]}, "backreferences"),
    "deep extensions": (
        {"entries": [], "extensions": json.loads("[" * 40 + "]" * 40)},
        "lorebook: nested deeper",
    ),
}


@pytest.mark.parametrize("case", INVALID)
async def test_invalid_books_are_400_and_change_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, case: str
) -> None:
    creds = await make_account()
    char_id = await character(client, creds)
    assert (await put_book(client, creds, char_id, BOOK)).status_code == 200
    book, says = INVALID[case]
    error = characters_error(await put_book(client, creds, char_id, book), 400, "invalid_request")
    assert says in error["message"], error
    kept = await client.get(f"/v1/characters/{char_id}/lorebook", headers=x_api_key(creds))
    assert kept.json()["lorebook"] == BOOK


async def test_malformed_json_is_400(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    creds = await make_account()
    char_id = await character(client, creds)
    response = await client.put(
        f"/v1/characters/{char_id}/lorebook",
        content=b'{"entries": [',
        headers=x_api_key(creds) | {"Content-Type": "application/json"},
    )
    assert (
        "lorebook: not valid JSON" in characters_error(response, 400, "invalid_request")["message"]
    )


def fired(body: dict[str, Any]) -> list[str]:
    lore = body["thought_process"]["lorebook"]
    return [f["name"] for f in lore["fired"]]


async def test_an_entry_fires_on_its_keyword_and_not_otherwise(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    char_id = await character(client, creds)
    assert (await put_book(client, creds, char_id, BOOK)).status_code == 200

    async def say(message: str, conversation_id: str | None = None) -> dict[str, Any]:
        body = {"message": message, "verbose": True} | QUICK
        if conversation_id:
            body["conversation_id"] = conversation_id
        response = await client.post(
            f"/v1/chat/{char_id}/messages", json=body, headers=x_api_key(creds)
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    quiet = await say("Good morning, how are you?")
    assert fired(quiet) == []
    assert quiet["thought_process"]["lorebook"]["scan_depth"] == 2
    hit = await say("Tell me about the Lighthouse.", quiet["conversation_id"])
    assert fired(hit) == ["the lighthouse"]
    [why] = hit["thought_process"]["lorebook"]["fired"]
    assert why["reason"] == "key 'lighthouse' in the new message"
    assert why["tokens"] > 0
    # A regeneration of that answer reads the same messages.
    again = await client.post(
        f"/v1/chat/conversations/{quiet['conversation_id']}/messages/{hit['id']}/regenerate",
        json={"verbose": True} | QUICK,
        headers=x_api_key(creds),
    )
    assert again.status_code == 200, again.text
    assert fired(again.json()) == ["the lighthouse"]

    # Stateless completions with the agent, and agents-API turns, read the same book.
    models = await client.get("/api/v1/models", params={"type": "llm"}, headers=bearer(creds))
    llm_id = models.json()[0]["id"]
    completion = await client.post(
        "/api/v1/completions",
        json={"messages": [{"role": "user", "content": "a lighthouse?"}], "llm_id": llm_id,
              "agent_id": char_id, "verbose": True} | QUICK,
        headers=bearer(creds),
    )  # fmt: skip
    assert completion.status_code == 200, completion.text
    assert fired(completion.json()) == ["the lighthouse"]
    plain = await client.post(
        "/api/v1/completions",
        json={"messages": [{"role": "user", "content": "hello"}], "llm_id": llm_id,
              "agent_id": char_id, "verbose": True} | QUICK,
        headers=bearer(creds),
    )  # fmt: skip
    assert fired(plain.json()) == []


# the prompt, built on its own
def fake_character(**fields: Any) -> Character:
    base = {"name": "Ondine", "age": None, "description": "a sailor", "personality": "",
            "background": "", "scenario": "", "example_dialogue": "", "system_prompt": "",
            "post_history_instructions": ""}  # fmt: skip
    return cast(Character, SimpleNamespace(**(base | fields)))


async def count(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


async def lore_for(book: dict[str, Any], messages: list[str], **settings: int) -> Any:
    async def recent(n: int) -> list[str]:
        return messages[-n:]

    return await select_lore(
        book, recent, count, LoreSettings(**settings), lambda t: fill_names(t, "Ondine", "User")
    )


def book_of(*entries: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"entries": [LIGHTHOUSE | e for e in entries]} | fields


async def test_prompt_places_entries_and_names_them() -> None:
    book = book_of(
        {"keys": ["harbour"], "content": "After: the harbour.", "position": "after_char",
         "insertion_order": 1, "name": "harbour"},
        {"keys": ["harbour"], "content": "Before: {{char}} knows the harbour.",
         "insertion_order": 2, "name": "knows"},
    )  # fmt: skip
    lore = await lore_for(book, ["We sail to the harbour."])
    assert [f["name"] for f in lore.report["fired"]] == ["harbour", "knows"]
    prompt = PromptTemplate().render(
        fake_character(system_prompt="Speak like {{char}}.", post_history_instructions="Brief."),
        "",
        lore=lore,
    )
    system = prompt.system
    assert system.startswith("Your name is Ondine.\nBefore: Ondine knows the harbour.\nYou are")
    assert system.index("After: the harbour.") > system.index("a sailor")
    assert "Speak like Ondine." in system
    assert prompt.post_history == "Brief."
    assert prompt.lore == lore.report
    # Without a book, the prompt is what it was.
    assert (
        PromptTemplate()
        .render(fake_character(), "")
        .system.startswith("Your name is Ondine. You are Ondine, a sailor")
    )


@pytest.mark.parametrize(
    ("changes", "message", "fires"),
    [
        ({}, "the LIGHTHOUSE at dusk", True),
        ({"case_sensitive": True}, "the LIGHTHOUSE at dusk", False),
        ({}, "lighthouses everywhere", False),  # a whole word
        ({"keys": ["/lighthouses?/"], "use_regex": True}, "two lighthouses", True),
        ({"enabled": False}, "the lighthouse", False),
        ({"constant": True}, "nothing", True),
        ({"selective": True, "secondary_keys": ["night"]}, "the lighthouse", False),
        ({"selective": True, "secondary_keys": ["night"]}, "the lighthouse at night", True),
        ({"selective": True, "secondary_keys": ["night"],
          "extensions": {"selectiveLogic": 2}}, "the lighthouse at night", False),
        ({"selective": True, "secondary_keys": ["night", "fog"],
          "selective_logic": "and_all"}, "lighthouse, night", False),
    ],
)  # fmt: skip
async def test_when_an_entry_fires(changes: dict[str, Any], message: str, fires: bool) -> None:
    lore = await lore_for(book_of(changes), ["older text", message])
    assert bool(lore.report["fired"]) is fires


async def test_scan_depth_budget_priority_and_recursion() -> None:
    old = ["the lighthouse", "hello", "hi"]
    assert (await lore_for(book_of({}), old, scan_depth=2)).report["fired"] == []
    assert (await lore_for(book_of({}), old, scan_depth=3)).report["fired"] != []
    assert (await lore_for(book_of({}, scan_depth=3), old, scan_depth=2)).report["fired"] != []

    # Over the budget, the lowest priority goes first; the rest keep insertion order.
    entries = [
        {"keys": ["sea"], "content": "one two three four", "priority": 1, "name": "low",
         "insertion_order": 1},
        {"keys": ["sea"], "content": "five six seven", "priority": 9, "name": "high",
         "insertion_order": 3},
        {"keys": ["sea"], "content": "eight", "priority": 5, "name": "mid", "insertion_order": 2},
    ]  # fmt: skip
    lore = await lore_for(book_of(*entries), ["the sea"], token_budget=5)
    assert [f["name"] for f in lore.report["fired"]] == ["mid", "high"]
    assert [s["name"] for s in lore.report["skipped"]] == ["low"]
    assert lore.report["tokens"] == 4
    assert (await lore_for(book_of(*entries, token_budget=1), ["sea"])).report["tokens"] == 1

    chain = [
        {"keys": ["storm"], "content": "The storm wakes the kraken.", "name": "storm"},
        {"keys": ["kraken"], "content": "The kraken sleeps.", "name": "kraken"},
    ]
    flat = await lore_for(book_of(*chain), ["a storm"])
    assert [f["name"] for f in flat.report["fired"]] == ["storm"]
    deep = await lore_for(book_of(*chain, recursive_scanning=True), ["a storm"])
    assert [f["name"] for f in deep.report["fired"]] == ["storm", "kraken"]
    assert deep.report["fired"][1]["reason"] == "key 'kraken' in entry 'storm' (recursion 1)"
    none = await lore_for(book_of(*chain, recursive_scanning=True), ["a storm"], max_recursion=0)
    assert len(none.report["fired"]) == 1
