"""Steering a conversation after the fact, in both dialects: the versions of a message
(alternate greetings) and choosing one, editing and deleting messages, deleting and
branching conversations, renaming them, listing them by character; unknown query
parameters refused everywhere; the webhook events of each change."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from conftest import MakeAccount
from helpers import agents_error, bearer, characters_error, generating, wait_for, x_api_key
from personae.account.service import Credentials
from personae.config import Settings
from personae.models import ChatTurn, Image, Message, MessageAlternative
from personae.state import AppState
from test_webhooks import FAST, register, verify
from webhook_receiver import receiver

CHAR = {"description": "A courier", "personality": "Calm", "background": "The docks"}
GREETING = "Hello {{user}}, I am Nell."
ALTERNATES = ["Nell waves.", "Nell nods."]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update=FAST)


async def make_character(
    client: httpx.AsyncClient, creds: Credentials, name: str = "Nell", **kw: Any
) -> str:
    body = {"name": name, **CHAR, **kw}
    response = await client.post("/v1/characters", json=body, headers=x_api_key(creds))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def make_conversation(
    client: httpx.AsyncClient,
    creds: Credentials,
    agent_id: str | None = None,
    messages: tuple[str, ...] = ("Hi", "Hello, traveller", "Where to?"),
    **kw: Any,
) -> dict[str, Any]:
    """A conversation made through the agents API, alternating user and agent messages
    (after the character's greeting, if it has one)."""
    roles = ["user", "agent"]
    body = {
        "agent_id": agent_id,
        "messages": [{"role": roles[i % 2], "content": c} for i, c in enumerate(messages)],
        **kw,
    }
    response = await client.post("/api/v1/conversations", json=body, headers=bearer(creds))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def agents_messages(
    client: httpx.AsyncClient, creds: Credentials, conv: str
) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/conversations/{conv}/messages", headers=bearer(creds))
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


async def chat_messages(
    client: httpx.AsyncClient, creds: Credentials, conv: str
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/chat/conversations/{conv}/messages?limit=100", headers=x_api_key(creds)
    )
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()["data"]
    return listed


async def chat_list(
    client: httpx.AsyncClient, creds: Credentials, query: str = ""
) -> dict[str, Any]:
    response = await client.get(f"/v1/chat/conversations{query}", headers=x_api_key(creds))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def count_rows(app: FastAPI, model: Any, *where: Any) -> int:
    state: AppState = app.state.personae
    async with state.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_alternatives_are_rendered_in_both_dialects(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account(username="ada")
    char = await make_character(client, creds, greeting=GREETING, alternate_greetings=ALTERNATES)
    conv = (await make_conversation(client, creds, char))["id"]

    agents = await agents_messages(client, creds, conv)
    assert [(m["role"], m["content"]) for m in agents] == [
        ("agent", "Hello User, I am Nell."), ("user", "Hi"), ("agent", "Hello, traveller"),
        ("user", "Where to?"),
    ]  # fmt: skip
    greeting = agents[0]
    assert greeting["selected"] == 0
    assert [(a["index"], a["content"]) for a in greeting["alternatives"]] == [
        (0, "Hello User, I am Nell."), (1, "Nell waves."), (2, "Nell nods."),
    ]  # fmt: skip
    assert all(a["created_at"].endswith("Z") for a in greeting["alternatives"])
    for plain in agents[1:]:  # left out, not null, without versions
        assert "alternatives" not in plain
        assert "selected" not in plain

    characters = await chat_messages(client, creds, conv)
    assert [m["id"] for m in characters] == [m["id"] for m in reversed(agents)]
    assert characters[-1]["alternatives"] == greeting["alternatives"]
    assert characters[-1]["selected"] == 0
    assert characters[-1]["is_character"] is True
    assert "alternatives" not in characters[0]
    assert "selected" not in characters[0]


async def test_choosing_a_version_in_both_dialects(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds, other = await make_account(username="ada"), await make_account()
    char = await make_character(client, creds, greeting=GREETING, alternate_greetings=ALTERNATES)
    conv = (await make_conversation(client, creds, char))["id"]
    greeting, user_message = (await agents_messages(client, creds, conv))[:2]
    path = f"/conversations/{conv}/messages/{greeting['id']}"

    chosen = await client.patch(f"/api/v1{path}", json={"selected": 2}, headers=bearer(creds))
    assert chosen.status_code == 200, chosen.text
    assert (chosen.json()["content"], chosen.json()["selected"]) == ("Nell nods.", 2)
    assert chosen.json()["role"] == "agent"
    assert len(chosen.json()["alternatives"]) == 3
    assert (await agents_messages(client, creds, conv))[0]["content"] == "Nell nods."

    chosen = await client.patch(f"/v1/chat{path}", json={"selected": 1}, headers=x_api_key(creds))
    assert chosen.status_code == 200, chosen.text
    body = chosen.json()
    assert (body["content"], body["selected"], body["is_character"]) == ("Nell waves.", 1, True)
    assert body["conversation_id"] == conv
    assert body["character_id"] == char
    assert (await chat_messages(client, creds, conv))[-1]["content"] == "Nell waves."

    user_path = f"/conversations/{conv}/messages/{user_message['id']}"
    bad: list[tuple[str, dict[str, Any]]] = [
        (path, {"selected": 3}),  # out of range
        (path, {"selected": -1}),
        (path, {"selected": "x"}),
        (path, {"selected": None}),
        (path, {"selected": 0, "content": "Both"}),  # exactly one
        (path, {}),
        (path, {"content": "   "}),
        (path, {"content": "x" * 10_001}),
        (path, {"colour": "red"}),
        (user_path, {"selected": 0}),  # a message without versions
    ]
    for where, edit in bad:
        agents_error(await client.patch(f"/api/v1{where}", json=edit, headers=bearer(creds)), 400)
        characters_error(
            await client.patch(f"/v1/chat{where}", json=edit, headers=x_api_key(creds)),
            400,
            "invalid_request",
        )
    message = agents_error(
        await client.patch(f"/api/v1{path}", json={"selected": 3}, headers=bearer(creds)), 400
    )
    assert message.startswith("selected:"), message
    # another account sees none of it
    agents_error(
        await client.patch(f"/api/v1{path}", json={"selected": 0}, headers=bearer(other)), 404
    )
    characters_error(
        await client.patch(f"/v1/chat{path}", json={"selected": 0}, headers=x_api_key(other)),
        404,
        "not_found",
    )
    assert (await agents_messages(client, creds, conv))[0]["selected"] == 1


async def test_editing_messages_in_both_dialects(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds, other = await make_account(username="ada"), await make_account()
    char = await make_character(client, creds, greeting=GREETING, alternate_greetings=ALTERNATES)
    conv = (await make_conversation(client, creds, char))["id"]
    elsewhere = (await make_conversation(client, creds, char))["id"]
    greeting, user_message, answer = (await agents_messages(client, creds, conv))[:3]

    edited = await client.patch(
        f"/api/v1/conversations/{conv}/messages/{user_message['id']}",
        json={"content": "  Hi there  "},
        headers=bearer(creds),
    )
    assert edited.status_code == 200, edited.text
    assert set(edited.json()) == {"id", "content", "role", "created_at", "image_url"}
    assert (edited.json()["id"], edited.json()["content"]) == (user_message["id"], "Hi there")
    assert edited.json()["created_at"] == user_message["created_at"]

    edited = await client.patch(
        f"/v1/chat/conversations/{conv}/messages/{answer['id']}",
        json={"content": "Well met."},
        headers=x_api_key(creds),
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["content"], edited.json()["is_character"]) == ("Well met.", True)

    # A message with versions: the selected version changes with it, the others stay.
    await client.patch(
        f"/api/v1/conversations/{conv}/messages/{greeting['id']}",
        json={"selected": 1},
        headers=bearer(creds),
    )
    edited = await client.patch(
        f"/v1/chat/conversations/{conv}/messages/{greeting['id']}",
        json={"content": "Nell waves twice."},
        headers=x_api_key(creds),
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["content"] == "Nell waves twice."
    assert [a["content"] for a in edited.json()["alternatives"]] == [
        "Hello User, I am Nell.", "Nell waves twice.", "Nell nods.",
    ]  # fmt: skip
    chosen = await client.patch(
        f"/api/v1/conversations/{conv}/messages/{greeting['id']}",
        json={"selected": 0},
        headers=bearer(creds),
    )
    assert chosen.json()["content"] == "Hello User, I am Nell."

    listed = await agents_messages(client, creds, conv)
    assert [m["content"] for m in listed] == [
        "Hello User, I am Nell.", "Hi there", "Well met.", "Where to?",
    ]  # fmt: skip
    # the conversation's list shows the last message as it now reads
    await client.patch(
        f"/api/v1/conversations/{conv}/messages/{listed[-1]['id']}",
        json={"content": "Where now?"},
        headers=bearer(creds),
    )
    # and an edit is activity: the conversation comes first again
    summary, _ = (await chat_list(client, creds))["data"]
    assert (summary["id"], summary["last_message"]["content"]) == (conv, "Where now?")

    # 404: another account's conversation, a message of another conversation, no message
    for cid, mid, who in [
        (conv, answer["id"], other),
        (elsewhere, answer["id"], creds),
        (conv, "msg_nope", creds),
        ("conv_nope", answer["id"], creds),
    ]:
        path = f"/conversations/{cid}/messages/{mid}"
        body = {"content": "Mine now"}
        agents_error(await client.patch(f"/api/v1{path}", json=body, headers=bearer(who)), 404)
        characters_error(
            await client.patch(f"/v1/chat{path}", json=body, headers=x_api_key(who)),
            404,
            "not_found",
        )
    assert (await agents_messages(client, creds, conv))[2]["content"] == "Well met."


async def test_deleting_messages_keeps_counters_and_images(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds, other = await make_account(), await make_account()
    char = await make_character(client, creds)
    conv = (await make_conversation(client, creds, char, ("one", "two", "three", "four")))["id"]
    one, two, three, four = await agents_messages(client, creds, conv)

    # the newest: the conversation's last message moves back
    deleted = await client.delete(
        f"/api/v1/conversations/{conv}/messages/{four['id']}", headers=bearer(creds)
    )
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    got = (await client.get(f"/api/v1/conversations/{conv}", headers=bearer(creds))).json()
    assert got["message_count"] == 3
    assert got["last_message_at"] == three["created_at"]
    [summary] = (await chat_list(client, creds))["data"]
    assert (summary["message_count"], summary["last_message"]["content"]) == (3, "three")

    # one in the middle, through the characters API
    deleted = await client.delete(
        f"/v1/chat/conversations/{conv}/messages/{two['id']}", headers=x_api_key(creds)
    )
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {
        "success": True,
        "message": "Message deleted",
        "message_id": two["id"],
    }
    assert [m["id"] for m in await agents_messages(client, creds, conv)] == [one["id"], three["id"]]

    # A message appended now takes a seq never handed out (a count-based one would collide).
    image = (
        await client.post(
            "/api/v1/images",
            json={"prompt": "a map", "conversation_id": conv},
            headers=bearer(creds),
        )
    ).json()
    assert image["status"] == "completed", image
    listed = await agents_messages(client, creds, conv)
    assert [m["id"] for m in listed] == [one["id"], three["id"], image["message_id"]]
    assert listed[-1]["image_url"] == image["url"]

    # The image's message goes; the image stays in the gallery, unlinked from it.
    deleted = await client.delete(
        f"/api/v1/conversations/{conv}/messages/{image['message_id']}", headers=bearer(creds)
    )
    assert deleted.status_code == 204
    kept = (await client.get(f"/api/v1/images/{image['id']}", headers=bearer(creds))).json()
    assert (kept["message_id"], kept["conversation_id"], kept["url"]) == (None, conv, image["url"])

    # 404 for another account, a message already gone, a message of another conversation
    elsewhere = (await make_conversation(client, creds, char))["id"]
    for cid, mid, who in [
        (conv, one["id"], other),
        (conv, two["id"], creds),
        (elsewhere, one["id"], creds),
        ("conv_nope", one["id"], creds),
    ]:
        path = f"/conversations/{cid}/messages/{mid}"
        agents_error(await client.delete(f"/api/v1{path}", headers=bearer(who)), 404)
        characters_error(
            await client.delete(f"/v1/chat{path}", headers=x_api_key(who)), 404, "not_found"
        )

    # Every message gone: counters empty, and the characters API no longer lists it.
    for m in (one, three):
        assert (
            await client.delete(
                f"/api/v1/conversations/{conv}/messages/{m['id']}", headers=bearer(creds)
            )
        ).status_code == 204
    got = (await client.get(f"/api/v1/conversations/{conv}", headers=bearer(creds))).json()
    assert (got["message_count"], got["last_message_at"]) == (0, None)
    assert [c["id"] for c in (await chat_list(client, creds))["data"]] == [elsewhere]
    characters_error(
        await client.get(f"/v1/chat/conversations/{conv}", headers=x_api_key(creds)),
        404,
        "not_found",
    )
    assert await agents_messages(client, creds, conv) == []


async def test_deleting_conversations_in_both_dialects(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds, other = await make_account(), await make_account()
    char = await make_character(client, creds, greeting=GREETING, alternate_greetings=ALTERNATES)
    # A real chat turn, so that the conversation has a chat_turns record.
    reply = await client.post(
        f"/v1/chat/{char}/messages",
        json={"message": "Hello", "max_tokens": 4, "temperature": 0},
        headers=x_api_key(creds),
    )
    assert reply.status_code == 200, reply.text
    first = reply.json()["conversation_id"]
    second = (await make_conversation(client, creds, char))["id"]
    image = (
        await client.post(
            "/api/v1/images",
            json={"prompt": "a map", "conversation_id": first},
            headers=bearer(creds),
        )
    ).json()
    me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
    assert me["stats"]["conversations"] == 2
    started = (await client.get(f"/v1/characters/{char}", headers=x_api_key(creds))).json()
    assert started["stats"]["chat_count"] == 2
    turns = await count_rows(app, ChatTurn, ChatTurn.conversation_id == first)
    assert turns == 1

    # another account's, or none: 404
    for cid, who in [(first, other), ("conv_nope", creds)]:
        agents_error(await client.delete(f"/api/v1/conversations/{cid}", headers=bearer(who)), 404)
        characters_error(
            await client.delete(f"/v1/chat/conversations/{cid}", headers=x_api_key(who)),
            404,
            "not_found",
        )

    deleted = await client.delete(f"/v1/chat/conversations/{first}", headers=x_api_key(creds))
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {
        "success": True, "message": "Conversation deleted", "conversation_id": first,
    }  # fmt: skip
    deleted = await client.delete(f"/api/v1/conversations/{second}", headers=bearer(creds))
    assert deleted.status_code == 204
    assert deleted.content == b""

    for cid in (first, second):
        agents_error(await client.get(f"/api/v1/conversations/{cid}", headers=bearer(creds)), 404)
        agents_error(
            await client.get(f"/api/v1/conversations/{cid}/messages", headers=bearer(creds)), 404
        )
        characters_error(
            await client.get(f"/v1/chat/conversations/{cid}", headers=x_api_key(creds)),
            404,
            "not_found",
        )
        agents_error(
            await client.delete(f"/api/v1/conversations/{cid}", headers=bearer(creds)), 404
        )
    assert (await chat_list(client, creds))["data"] == []
    assert (await client.get("/api/v1/conversations", headers=bearer(creds))).json() == []
    me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
    assert me["stats"]["conversations"] == 0
    started = (await client.get(f"/v1/characters/{char}", headers=x_api_key(creds))).json()
    assert started["stats"]["chat_count"] == 2  # conversations started, not kept

    # Messages and their versions went with them; the image and the turn's record stayed.
    assert await count_rows(app, Message, Message.conversation_id.in_([first, second])) == 0
    assert await count_rows(app, MessageAlternative) == 0
    assert await count_rows(app, ChatTurn) == 1
    assert await count_rows(app, ChatTurn, ChatTurn.conversation_id.is_(None)) == 1
    assert await count_rows(app, Image, Image.id == image["id"]) == 1
    kept = (await client.get(f"/api/v1/images/{image['id']}", headers=bearer(creds))).json()
    assert (kept["conversation_id"], kept["message_id"], kept["url"]) == (None, None, image["url"])


async def test_branching_in_both_dialects(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds, other = await make_account(username="ada"), await make_account()
    char = await make_character(client, creds, greeting=GREETING, alternate_greetings=ALTERNATES)
    source = await make_conversation(
        client, creds, char, ("Hi", "Hello", "Where to?", "North"), title="Trip",
        system_prompt="Be brief.",
    )  # fmt: skip
    conv = source["id"]
    original = await agents_messages(client, creds, conv)
    await client.patch(
        f"/api/v1/conversations/{conv}/messages/{original[0]['id']}",
        json={"selected": 2},
        headers=bearer(creds),
    )
    before = (await client.get(f"/v1/characters/{char}", headers=x_api_key(creds))).json()

    # agents: up to and including the third message (the greeting counts)
    branched = await client.post(
        f"/api/v1/conversations/{conv}/branch",
        json={"message_id": original[2]["id"]},
        headers=bearer(creds),
    )
    assert branched.status_code == 201, branched.text
    branch = branched.json()
    assert branch["id"] != conv
    assert (branch["title"], branch["system_prompt"], branch["agent_id"], branch["llm_id"]) == (
        "Trip (branch)", "Be brief.", char, source["llm_id"],
    )  # fmt: skip
    assert branch["message_count"] == 3
    copied = await agents_messages(client, creds, branch["id"])
    # The greeting is not added again: the copy starts with it.
    assert [(m["role"], m["content"]) for m in copied] == [
        ("agent", "Nell nods."), ("user", "Hi"), ("agent", "Hello"),
    ]  # fmt: skip
    assert {m["id"] for m in copied}.isdisjoint(m["id"] for m in original)
    assert [m["created_at"] for m in copied] == [m["created_at"] for m in original[:3]]
    assert copied[0]["selected"] == 2
    assert (
        copied[0]["alternatives"] == (await agents_messages(client, creds, conv))[0]["alternatives"]
    )
    assert branch["last_message_at"] == original[2]["created_at"]
    # the original is untouched
    assert [m["id"] for m in await agents_messages(client, creds, conv)] == [
        m["id"] for m in original
    ]
    # a copy is its own message: editing it leaves the original as it was
    await client.patch(
        f"/api/v1/conversations/{branch['id']}/messages/{copied[0]['id']}",
        json={"selected": 0},
        headers=bearer(creds),
    )
    assert (await agents_messages(client, creds, conv))[0]["content"] == "Nell nods."

    # characters: the summary shape, the branched-at message as the last one
    branched = await client.post(
        f"/v1/chat/conversations/{conv}/branch",
        json={"message_id": original[3]["id"]},
        headers=x_api_key(creds),
    )
    assert branched.status_code == 201, branched.text
    summary = branched.json()
    assert summary["title"] == "Trip (branch)"
    assert summary["character"]["id"] == char
    assert summary["message_count"] == 4
    assert summary["last_message"] == {
        "content": "Where to?", "created_at": original[3]["created_at"], "is_character": False,
    }  # fmt: skip
    # a branch is a conversation started
    after = (await client.get(f"/v1/characters/{char}", headers=x_api_key(creds))).json()
    assert after["stats"]["chat_count"] == before["stats"]["chat_count"] + 2
    listed = await chat_list(client, creds, f"?character_id={char}")
    assert listed["pagination"]["total"] == 3
    # a branch of a branch, and a title at the limit keeps its suffix
    await client.patch(
        f"/api/v1/conversations/{branch['id']}", json={"title": "t" * 200}, headers=bearer(creds)
    )
    again = await client.post(
        f"/api/v1/conversations/{branch['id']}/branch",
        json={"message_id": copied[1]["id"]},
        headers=bearer(creds),
    )
    assert again.status_code == 201, again.text
    assert again.json()["title"] == "t" * 191 + " (branch)"
    assert again.json()["message_count"] == 2

    # bad input: 400; someone else's conversation: 404
    elsewhere = (await make_conversation(client, creds, char))["id"]
    other_message = (await agents_messages(client, creds, elsewhere))[0]["id"]
    for body in ({}, {"message_id": None}, {"message_id": "msg_nope"},
                 {"message_id": other_message}, {"message_id": "x" * 41},
                 {"message_id": original[0]["id"], "title": "x"}):  # fmt: skip
        agents_error(
            await client.post(
                f"/api/v1/conversations/{conv}/branch", json=body, headers=bearer(creds)
            ),
            400,
        )
        characters_error(
            await client.post(
                f"/v1/chat/conversations/{conv}/branch", json=body, headers=x_api_key(creds)
            ),
            400,
            "invalid_request",
        )
    body = {"message_id": original[0]["id"]}
    agents_error(
        await client.post(f"/api/v1/conversations/{conv}/branch", json=body, headers=bearer(other)),
        404,
    )
    characters_error(
        await client.post(
            f"/v1/chat/conversations/{conv}/branch", json=body, headers=x_api_key(other)
        ),
        404,
        "not_found",
    )


async def test_branching_a_conversation_without_a_character(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    conv = (await make_conversation(client, creds, None, ("a", "b")))["id"]
    first = (await agents_messages(client, creds, conv))[0]["id"]
    branched = await client.post(
        f"/api/v1/conversations/{conv}/branch", json={"message_id": first}, headers=bearer(creds)
    )
    assert branched.status_code == 201, branched.text
    assert (branched.json()["agent_id"], branched.json()["message_count"]) == (None, 1)
    assert branched.json()["title"] == "(branch)"  # of an untitled one
    # the characters API does not show conversations without a character
    characters_error(
        await client.post(
            f"/v1/chat/conversations/{conv}/branch",
            json={"message_id": first},
            headers=x_api_key(creds),
        ),
        404,
        "not_found",
    )


async def test_reading_renaming_and_filtering_conversations(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds, other = await make_account(), await make_account()
    nell = await make_character(client, creds)
    bram = await make_character(client, creds, name="Bram")
    with_nell = (await make_conversation(client, creds, nell, ("a",)))["id"]
    with_bram = (await make_conversation(client, creds, bram, ("b", "c")))["id"]
    agentless = (await make_conversation(client, creds, None, ("d",)))["id"]
    empty = (await make_conversation(client, creds, nell, ()))["id"]  # no greeting, no message

    everything = await chat_list(client, creds)
    assert [c["id"] for c in everything["data"]] == [with_bram, with_nell]
    assert everything["pagination"] == {"total": 2, "page": 1, "limit": 20, "pages": 1}
    assert all(c["character"] and c["last_message"] for c in everything["data"])
    only_nell = await chat_list(client, creds, f"?character_id={nell}&limit=5")
    assert [c["id"] for c in only_nell["data"]] == [with_nell]
    assert only_nell["pagination"]["total"] == 1
    assert (await chat_list(client, creds, "?character_id=char_nope"))["data"] == []
    # the agents API still lists them all
    listed = (await client.get("/api/v1/conversations", headers=bearer(creds))).json()
    assert {c["id"] for c in listed} == {with_nell, with_bram, agentless, empty}
    characters_error(
        await client.get(
            f"/v1/chat/conversations?character_id={'x' * 41}", headers=x_api_key(creds)
        ),
        400,
        "invalid_request",
    )

    got = await client.get(f"/v1/chat/conversations/{with_bram}", headers=x_api_key(creds))
    assert got.status_code == 200, got.text
    assert got.json() == everything["data"][0]
    assert got.json()["character"] == {"id": bram, "name": "Bram", "image_url": None}
    assert got.json()["last_message"]["content"] == "c"

    renamed = await client.patch(
        f"/v1/chat/conversations/{with_bram}", json={"title": "  Bram's tale "},
        headers=x_api_key(creds),
    )  # fmt: skip
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["title"] == "Bram's tale"
    assert renamed.json()["last_message"] == got.json()["last_message"]
    assert (await client.get(f"/api/v1/conversations/{with_bram}", headers=bearer(creds))).json()[
        "title"
    ] == "Bram's tale"

    changed = await client.patch(
        f"/api/v1/conversations/{with_nell}",
        json={"title": "Nell", "system_prompt": "Speak softly."},
        headers=bearer(creds),
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["title"], changed.json()["system_prompt"]) == ("Nell", "Speak softly.")
    changed = await client.patch(
        f"/api/v1/conversations/{with_nell}", json={"system_prompt": ""}, headers=bearer(creds)
    )
    assert (changed.json()["title"], changed.json()["system_prompt"]) == ("Nell", "")
    assert changed.json()["message_count"] == 1

    for bad in ({}, {"title": None}, {"system_prompt": None}, {"title": "x" * 201},
                {"system_prompt": "x" * 10_001}, {"llm_id": "model_x"}):  # fmt: skip
        agents_error(
            await client.patch(
                f"/api/v1/conversations/{with_nell}", json=bad, headers=bearer(creds)
            ),
            400,
        )
    for bad in ({}, {"title": None}, {"title": "x" * 201}, {"title": "a", "system_prompt": "b"}):
        characters_error(
            await client.patch(
                f"/v1/chat/conversations/{with_nell}", json=bad, headers=x_api_key(creds)
            ),
            400,
            "invalid_request",
        )

    # 404: someone else's; and in the characters API, one it does not show
    agents_error(
        await client.patch(
            f"/api/v1/conversations/{with_nell}", json={"title": "x"}, headers=bearer(other)
        ),
        404,
    )
    for cid, who in [(with_nell, other), (agentless, creds), (empty, creds), ("conv_no", creds)]:
        characters_error(
            await client.get(f"/v1/chat/conversations/{cid}", headers=x_api_key(who)),
            404,
            "not_found",
        )
        characters_error(
            await client.patch(
                f"/v1/chat/conversations/{cid}", json={"title": "x"}, headers=x_api_key(who)
            ),
            404,
            "not_found",
        )
    assert (await client.get(f"/api/v1/conversations/{agentless}", headers=bearer(creds))).json()[
        "title"
    ] == ""


@pytest.mark.parametrize(
    ("path", "dialect"),
    [
        ("/api/v1/conversations?page=1&sort=newest", "agents"),
        ("/api/v1/models?type=llm&verbose=1", "agents"),
        ("/api/v1/agents?pagesize=5", "agents"),
        ("/api/v1/images?page_size=5&status=done", "agents"),
        ("/v1/chat/conversations?limit=5&sort=newest", "characters"),
        ("/v1/characters?page=1&order=newest", "characters"),
        ("/v1/user/me?x=1", "characters"),
        ("/v1/user/favorites?limit=5&offset=10", "characters"),
        ("/v1/webhooks?expand=deliveries", "characters"),
    ],
)
async def test_unknown_query_parameters_are_refused(
    client: httpx.AsyncClient, make_account: MakeAccount, path: str, dialect: str
) -> None:
    creds = await make_account("premium")
    headers = bearer(creds) | x_api_key(creds)
    unknown = path.rsplit("&", 1)[-1].split("?")[-1].split("=")[0]
    response = await client.get(path, headers=headers)
    if dialect == "agents":
        assert repr(unknown) in agents_error(response, 400)
    else:
        error = characters_error(response, 400, "invalid_request")
        assert error["details"]["unknown"] == [unknown]
    # Without them the same request is fine; without a key it is 401 first.
    known = path.rsplit("&", 1)[0] if "&" in path else path.split("?")[0]
    assert (await client.get(known, headers=headers)).status_code == 200
    assert (await client.get(path)).status_code == 401


async def test_unknown_query_parameters_on_writes_and_paths(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    conv = (await make_conversation(client, creds, None, ("a",)))["id"]
    agents_error(
        await client.post("/api/v1/conversations?dry_run=1", json={}, headers=bearer(creds)), 400
    )
    agents_error(
        await client.delete(f"/api/v1/conversations/{conv}?force=1", headers=bearer(creds)), 400
    )
    error = characters_error(
        await client.get(
            f"/v1/chat/conversations/{conv}/messages?page=1&b=2&a=1", headers=x_api_key(creds)
        ),
        400,
        "invalid_request",
    )
    assert error["details"]["unknown"] == ["a", "b"]
    assert set(error["details"]["allowed"]) == {"page", "limit"}
    assert (
        await client.get(f"/api/v1/conversations/{conv}", headers=bearer(creds))
    ).status_code == 200


async def test_steering_sends_webhook_events(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("premium", username="ada")
    char = await make_character(client, creds, greeting=GREETING, alternate_greetings=ALTERNATES)
    conv = (await make_conversation(client, creds, char))["id"]
    greeting, user_message = (await agents_messages(client, creds, conv))[:2]
    events = ["message.updated", "message.deleted", "conversation.created",
              "conversation.updated", "conversation.deleted"]  # fmt: skip
    with receiver() as hooks:
        hook = await register(client, creds, hooks.base + "/hook", events)
        steps = [
            client.patch(f"/api/v1/conversations/{conv}/messages/{greeting['id']}",
                         json={"selected": 1}, headers=bearer(creds)),
            client.delete(f"/v1/chat/conversations/{conv}/messages/{user_message['id']}",
                          headers=x_api_key(creds)),
            client.post(f"/api/v1/conversations/{conv}/branch",
                        json={"message_id": greeting["id"]}, headers=bearer(creds)),
            client.patch(f"/v1/chat/conversations/{conv}", json={"title": "Renamed"},
                         headers=x_api_key(creds)),
            client.delete(f"/api/v1/conversations/{conv}", headers=bearer(creds)),
        ]  # fmt: skip
        for step in steps:
            assert (await step).status_code in (200, 201, 204)
        # message.updated, message.deleted + conversation.updated, conversation.created,
        # conversation.updated, conversation.deleted
        await hooks.wait_for(6)
        by_type: dict[str, list[dict[str, Any]]] = {}
        for received in hooks.on("/hook"):
            payload = verify(hook["secret"], received)
            by_type.setdefault(payload["type"], []).append(payload["data"])
    assert sorted(by_type) == sorted(events)
    [updated] = by_type["message.updated"]
    assert (updated["id"], updated["content"], updated["selected"]) == (
        greeting["id"], "Nell waves.", 1,
    )  # fmt: skip
    assert len(updated["alternatives"]) == 3
    [deleted] = by_type["message.deleted"]
    assert (deleted["id"], deleted["content"], deleted["conversation_id"]) == (
        user_message["id"], "Hi", conv,
    )  # fmt: skip
    assert deleted["deleted_at"].endswith("Z")
    [created] = by_type["conversation.created"]
    assert created["title"].endswith(" (branch)")
    assert created["message_count"] == 1
    assert created["last_message"]["content"] == "Nell waves."
    counts = sorted(c["message_count"] for c in by_type["conversation.updated"])
    assert counts == [3, 3]  # after the deletion, then the renaming
    assert "Renamed" in [c["title"] for c in by_type["conversation.updated"]]
    [gone] = by_type["conversation.deleted"]
    assert (gone["id"], gone["character_id"], gone["title"]) == (conv, char, "Renamed")
    assert gone["deleted_at"].endswith("Z")


async def test_a_turn_in_a_conversation_deleted_meanwhile_is_released(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    char = await make_character(client, creds)
    conv = (await make_conversation(client, creds, char, ("Hi",)))["id"]
    story = {"message": "Write a very long story about a courier.", "conversation_id": conv,
             "max_tokens": 600, "temperature": 0}  # fmt: skip
    turn = asyncio.create_task(
        client.post(f"/v1/chat/{char}/messages", json=story, headers=x_api_key(creds))
    )
    await wait_for(generating(app, 1))
    deleted = await client.delete(f"/api/v1/conversations/{conv}", headers=bearer(creds))
    assert deleted.status_code == 204
    characters_error(await turn, 404, "not_found")
    # The turn's chat request is given back (by a task of its own, just after the answer).
    for _ in range(500):
        me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
        if me["subscription"]["chat_requests"]["used"] == 0:
            break
        await asyncio.sleep(0.02)
    assert me["subscription"]["chat_requests"]["used"] == 0
    assert await count_rows(app, Message) == 0
    assert await count_rows(app, ChatTurn, ChatTurn.status == "released") == 1
