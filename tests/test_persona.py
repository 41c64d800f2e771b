"""Characters that stay in character, in both dialects: the Character Card fields, the
greeting that opens a conversation, the prompt the model gets, sampling settings (model
defaults, per-request overrides, bounds), cleaned answers, and regenerated answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from conftest import MakeAccount
from helpers import agents_error, bearer, characters_error, x_api_key
from images import png
from llm_servers import SCRIPTED_REQUESTS, failing_server
from personae.account.service import Credentials
from personae.conversation.prompt import PromptTemplate
from personae.db.migrate import upgrade_sync
from personae.errors import InvalidRequest
from personae.model.service import EMBEDDED_SAMPLING, ModelService, ModelType

CARD = {
    "name": "Captain Brine",
    "description": "a grumpy pirate captain",
    "personality": "gruff",
    "background": "sailed forty years",
    "scenario": "{{user}} climbs aboard the Salt Widow.",
    "greeting": "Arr, {{user}}. I'm {{char}}.",
    "alternate_greetings": ["{{char}} squints at you.", "Off my deck!"],
    "example_dialogue": "<START>\n{{user}}: Hello\n{{char}}: Arr.",
}
QUICK = {"max_tokens": 8, "temperature": 0}
EMBEDDED_SAMPLING_0008 = {"temperature": 0.7, "top_p": 0.9, "min_p": 0.05}


@pytest.fixture(scope="module")
def remote() -> Iterator[str]:
    with failing_server() as base:
        yield base


async def scripted_model(app: FastAPI, base: str, sampling: dict[str, Any]) -> str:
    """A model behind the scripted server (SCRIPT), made the only enabled LLM."""
    async with app.state.personae.sessionmaker.begin() as session:
        service = ModelService(session)
        for model in await service.list_enabled(ModelType.LLM):
            await service.set_enabled(model.id, False)
        settings = {"base_url": f"{base}/scripted/v1", "model": "m", "sampling": sampling}
        return (await service.register(ModelType.LLM, "scripted", "openai", settings)).id


async def card(client: httpx.AsyncClient, creds: Credentials, **kw: Any) -> dict[str, Any]:
    response = await client.post("/v1/characters", json=CARD | kw, headers=x_api_key(creds))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_card_fields_in_both_dialects(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    made = await card(client, creds)
    for field in ("scenario", "greeting", "alternate_greetings", "example_dialogue"):
        assert made[field] == CARD[field]  # stored as written: names are filled per chat
    agent = (await client.get(f"/api/v1/agents/{made['id']}", headers=bearer(creds))).json()
    assert agent["greeting"] == CARD["greeting"]
    assert agent["scenario"] == CARD["scenario"]

    changed = await client.patch(
        f"/api/v1/agents/{made['id']}",
        json={"greeting": "Ahoy.", "alternate_greetings": []},
        headers=bearer(creds),
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["greeting"], changed.json()["alternate_greetings"]) == ("Ahoy.", [])
    created = await client.post(
        "/api/v1/agents",
        json={"name": "Wren", "scenario": "A forest.", "example_dialogue": "{{char}}: Hush."},
        headers=bearer(creds),
    )
    assert created.status_code == 201
    assert created.json()["scenario"] == "A forest."

    form = {k: v for k, v in CARD.items() if k != "alternate_greetings"}
    multipart = await client.post(
        "/v1/characters",
        data=form | {"alternate_greetings": json.dumps(["One, two", "Three"])},
        files={"image": ("a.png", png(), "image/png")},
        headers=x_api_key(creds),
    )
    assert multipart.status_code == 201, multipart.text
    assert multipart.json()["alternate_greetings"] == ["One, two", "Three"]


async def test_card_field_limits(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    creds = await make_account()
    key = x_api_key(creds)
    for bad in (
        {"greeting": "x" * 4001},
        {"scenario": "x" * 2001},
        {"example_dialogue": "x" * 8001},
        {"alternate_greetings": ["hi"] * 11},
        {"alternate_greetings": [""]},
        {"alternate_greetings": "hi"},
    ):
        response = await client.post("/v1/characters", json=CARD | bad, headers=key)
        field = next(iter(bad))
        assert field in characters_error(response, 400, "invalid_request")["message"]
        agents = await client.post(
            "/api/v1/agents", json={"name": "A"} | bad, headers=bearer(creds)
        )
        assert field in agents_error(agents, 400)
    made = await card(client, creds)
    response = await client.patch(
        f"/v1/characters/{made['id']}", json={"greeting": None}, headers=key
    )
    characters_error(response, 400, "invalid_request")
    form = await client.post(
        "/v1/characters",
        files={"image": ("a.png", png(), "image/png")},
        data={k: v for k, v in CARD.items() if isinstance(v, str)}
        | {"alternate_greetings": "a, b"},
        headers=key,
    )
    assert "alternate_greetings" in characters_error(form, 400, "invalid_request")["message"]


async def test_a_new_conversation_opens_with_the_greeting_and_the_prompt_follows_the_card(
    client: httpx.AsyncClient, make_account: MakeAccount, app: FastAPI, remote: str
) -> None:
    await scripted_model(app, remote, {})
    creds = await make_account()
    made = await card(client, creds)
    SCRIPTED_REQUESTS.clear()
    first = await client.post(
        f"/v1/chat/{made['id']}/messages",
        json={"message": "Who are you?"},
        headers=x_api_key(creds),
    )
    assert first.status_code == 200, first.text
    sent = SCRIPTED_REQUESTS[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "assistant", "user"]
    assert sent[0]["content"].startswith("Your name is Captain Brine.")
    assert "Scenario: User climbs aboard the Salt Widow." in sent[0]["content"]
    assert "User: Hello\nCaptain Brine: Arr." in sent[0]["content"]
    assert sent[1]["content"] == "Arr, User. I'm Captain Brine."

    conversation = first.json()["conversation_id"]
    listed = await client.get(
        f"/v1/chat/conversations/{conversation}/messages", headers=x_api_key(creds)
    )
    oldest = listed.json()["data"][-1]
    assert oldest["is_character"]
    assert oldest["content"] == "Arr, User. I'm Captain Brine."
    assert [a["content"] for a in oldest["alternatives"]] == [
        "Arr, User. I'm Captain Brine.",
        "Captain Brine squints at you.",
        "Off my deck!",
    ]
    assert oldest["selected"] == 0

    agents = await client.post(
        "/api/v1/conversations", json={"agent_id": made["id"]}, headers=bearer(creds)
    )
    assert agents.json()["message_count"] == 1
    messages = await client.get(
        f"/api/v1/conversations/{agents.json()['id']}/messages", headers=bearer(creds)
    )
    assert messages.json()[0]["role"] == "agent"
    assert messages.json()[0]["content"] == "Arr, User. I'm Captain Brine."
    plain = await card(client, creds, greeting="", alternate_greetings=[])
    none = await client.post(
        "/api/v1/conversations", json={"agent_id": plain["id"]}, headers=bearer(creds)
    )
    assert none.json()["message_count"] == 0


async def test_an_operator_template_places_its_instruction_after_the_users_message(
    client: httpx.AsyncClient, make_account: MakeAccount, app: FastAPI, remote: str, tmp_path: Path
) -> None:
    path = tmp_path / "prompt.j2"
    path.write_text(
        "{% block system %}You are {{ char }}.{% endblock %}"
        "{% block post_history %}[Stay {{ char }}; {{ user }} is listening.]{% endblock %}"
    )
    app.state.personae.prompt_template = PromptTemplate.from_file(path)
    await scripted_model(app, remote, {})
    creds = await make_account()
    made = await card(client, creds)
    SCRIPTED_REQUESTS.clear()
    first = await client.post(
        f"/v1/chat/{made['id']}/messages", json={"message": "Hi"}, headers=x_api_key(creds)
    )
    assert first.status_code == 200, first.text
    assert SCRIPTED_REQUESTS[-1]["messages"] == [
        {"role": "system", "content": "You are Captain Brine."},
        {"role": "assistant", "content": "Arr, User. I'm Captain Brine."},
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "[Stay Captain Brine; User is listening.]"},
    ]


async def test_sampling_defaults_and_overrides_reach_the_engine_and_answers_are_cleaned(
    client: httpx.AsyncClient, make_account: MakeAccount, app: FastAPI, remote: str
) -> None:
    llm = await scripted_model(
        app, remote, {"temperature": 0.2, "top_k": 20, "repeat_penalty": 1.1}
    )
    creds = await make_account()
    models = (await client.get("/api/v1/models?type=llm", headers=bearer(creds))).json()
    assert models[0]["sampling"] == {"temperature": 0.2, "top_k": 20, "repeat_penalty": 1.1}
    made = await card(client, creds, name="Vexa Stride")
    SCRIPTED_REQUESTS.clear()
    answer = await client.post(
        f"/v1/chat/{made['id']}/messages",
        json={"message": "Hi", "top_p": 0.5, "temperature": 0.9, "seed": 7, "dry_base": 2},
        headers=x_api_key(creds),
    )
    assert answer.status_code == 200, answer.text
    # The script labels itself, leaks <|im_end|> and goes on as the user: none of it shows.
    assert answer.json()["content"] == "Hi there."
    body = SCRIPTED_REQUESTS[-1]
    assert (body["temperature"], body["top_p"], body["top_k"], body["seed"]) == (0.9, 0.5, 20, 7)
    assert body["repeat_penalty"] == body["repetition_penalty"] == 1.1
    assert body["dry_base"] == 2
    assert "min_p" not in body
    assert "presence_penalty" not in body
    assert "dry_multiplier" not in body
    assert "<|im_end|>" in body["stop"]
    assert "\nUser:" in body["stop"]

    streamed = await client.post(
        "/api/v1/completions",
        json={
            "messages": [{"role": "user", "content": "Hi"}],
            "llm_id": llm,
            "agent_id": made["id"],
            "stream": True,
            "min_p": 0.1,
        },
        headers=bearer(creds),
    )
    deltas = [
        json.loads(line.removeprefix("data: "))
        for line in streamed.text.splitlines()
        if line.startswith("data: ")
    ]
    assert "".join(d.get("content", "") for d in deltas[:-1] if "id" not in d) == "Hi there."
    assert deltas[-1]["content"] == "Hi there."
    assert SCRIPTED_REQUESTS[-1]["min_p"] == 0.1
    assert SCRIPTED_REQUESTS[-1]["temperature"] == 0.2


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": 2.5},
        {"top_p": 0},
        {"top_p": 1.5},
        {"min_p": -0.1},
        {"top_k": -1},
        {"top_k": 1001},
        {"repeat_penalty": 2.5},
        {"frequency_penalty": 3},
        {"presence_penalty": -3},
        {"dry_multiplier": 5.5},
        {"dry_base": 0.5},
        {"dry_allowed_length": 0},
        {"dry_penalty_last_n": -2},
        {"seed": -1},
        {"top_k": 1.5},
        {"temperature": "hot"},
        {"typical_p": 0.5},
    ],
)
async def test_sampling_bounds_in_both_dialects(
    client: httpx.AsyncClient, make_account: MakeAccount, bad: dict[str, Any]
) -> None:
    creds = await make_account()
    made = await card(client, creds)
    field = next(iter(bad))
    chat = await client.post(
        f"/v1/chat/{made['id']}/messages", json={"message": "Hi"} | bad, headers=x_api_key(creds)
    )
    assert field in characters_error(chat, 400, "invalid_request")["message"]
    completion = await client.post(
        "/api/v1/completions",
        json={"messages": [{"role": "user", "content": "Hi"}], "llm_id": "x"} | bad,
        headers=bearer(creds),
    )
    assert field in agents_error(completion, 400)
    conversation = (
        await client.post("/api/v1/conversations", json={}, headers=bearer(creds))
    ).json()
    turn = await client.post(
        f"/api/v1/conversations/{conversation['id']}/messages",
        json={"content": "Hi"} | bad,
        headers=bearer(creds),
    )
    assert field in agents_error(turn, 400)
    chats = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
    assert chats["subscription"]["chat_requests"]["used"] == 0  # refused before any count


async def test_model_sampling_defaults_are_checked_on_registration(app: FastAPI) -> None:
    async with app.state.personae.sessionmaker.begin() as session:
        service = ModelService(session)
        with pytest.raises(InvalidRequest, match="top_p"):
            await service.register(
                ModelType.LLM,
                "bad",
                "openai",
                {"base_url": "http://x/v1", "model": "m", "sampling": {"top_p": 2}},
            )
        with pytest.raises(InvalidRequest, match="typical"):
            await service.register(
                ModelType.LLM,
                "bad",
                "llama_cpp",
                {"path": "builtin:smollm2", "sampling": {"typical": 1}},
            )
        embedded = (await service.list_enabled(ModelType.LLM))[0]
        assert embedded.settings["sampling"] == EMBEDDED_SAMPLING


def test_upgrading_gives_the_bundled_model_dry_unless_the_operator_chose(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'personae.db'}"
    upgrade_sync(url, "0009")
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    rows = {
        "bundled": {"path": "builtin:smollm2", "sampling": dict(EMBEDDED_SAMPLING_0008)},
        "tuned": {"path": "builtin:smollm2", "sampling": {"temperature": 0.3}},
    }
    with engine.begin() as conn:
        for name, settings in rows.items():
            conn.execute(
                sa.text(
                    "INSERT INTO models (id, type, name, engine, settings, enabled, "
                    "cost_micros, created_at) VALUES (:id, 'llm', :id, 'llama_cpp', :s, 1, 0, "
                    "CURRENT_TIMESTAMP)"
                ),
                {"id": name, "s": json.dumps(settings)},
            )
    upgrade_sync(url)
    with engine.begin() as conn:
        got = dict(conn.execute(sa.text("SELECT id, settings FROM models")).all())
    engine.dispose()
    assert json.loads(got["bundled"])["sampling"] == EMBEDDED_SAMPLING
    assert json.loads(got["tuned"])["sampling"] == {"temperature": 0.3}


async def test_the_same_seed_gives_the_same_answer(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    made = await card(client, creds)
    answers = set()
    for _ in range(2):
        response = await client.post(
            f"/v1/chat/{made['id']}/messages",
            json={"message": "Tell me about your ship.", "max_tokens": 16, "seed": 42},
            headers=x_api_key(creds),
        )
        assert response.status_code == 200, response.text
        answers.add(response.json()["content"])
    assert len(answers) == 1


async def test_regenerating_in_both_dialects(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds, other = await make_account(), await make_account()
    made = await card(client, creds)
    key = x_api_key(creds)
    first = await client.post(
        f"/v1/chat/{made['id']}/messages", json={"message": "Hi", "max_tokens": 8, "seed": 1},
        headers=key,
    )  # fmt: skip
    assert first.status_code == 200, first.text
    conv, answer = first.json()["conversation_id"], first.json()
    path = f"/v1/chat/conversations/{conv}/messages/{answer['id']}/regenerate"

    again = await client.post(path, json={"max_tokens": 8, "seed": 2, "verbose": True}, headers=key)
    assert again.status_code == 200, again.text
    regenerated = again.json()
    assert regenerated["id"] == answer["id"]
    assert regenerated["is_character"]
    assert [a["index"] for a in regenerated["alternatives"]] == [0, 1]
    assert regenerated["alternatives"][0]["content"] == answer["content"]
    assert regenerated["selected"] == 1
    assert regenerated["content"] == regenerated["alternatives"][1]["content"]
    assert regenerated["thought_process"]["history"]["kept"] == 2  # greeting and "Hi"

    # Agents dialect, streamed: the final event is the message with its three versions.
    streamed = await client.post(
        f"/api/v1/conversations/{conv}/messages/{answer['id']}/regenerate",
        json={"max_tokens": 8, "seed": 3, "stream": True},
        headers=bearer(creds),
    )
    assert streamed.status_code == 200, streamed.text
    final = [line for line in streamed.text.splitlines() if line.startswith("data: ")][-1]
    message = json.loads(final.removeprefix("data: "))
    assert message["role"] == "agent"
    assert message["selected"] == 2
    assert len(message["alternatives"]) == 3

    # Only the selected version is in later prompts, and the listing shows it.
    listed = await client.get(f"/api/v1/conversations/{conv}/messages", headers=bearer(creds))
    assert listed.json()[-1]["content"] == message["content"]
    chosen = await client.patch(
        f"/api/v1/conversations/{conv}/messages/{answer['id']}", json={"selected": 0},
        headers=bearer(creds),
    )  # fmt: skip
    assert chosen.json()["content"] == answer["content"]

    used = (await client.get("/v1/user/me", headers=key)).json()["subscription"]["chat_requests"]
    assert used["used"] == 3  # each regeneration is a chat request

    # What cannot be regenerated.
    messages = (
        await client.get(f"/api/v1/conversations/{conv}/messages", headers=bearer(creds))
    ).json()
    greeting, user = messages[0]["id"], messages[1]["id"]
    base = f"/v1/chat/conversations/{conv}/messages"
    assert (
        "greeting"
        in characters_error(
            await client.post(f"{base}/{greeting}/regenerate", json={}, headers=key),
            400,
            "invalid_request",
        )["message"]
    )
    characters_error(
        await client.post(f"{base}/{user}/regenerate", json={}, headers=key), 400, "invalid_request"
    )
    characters_error(
        await client.post(f"{base}/msg_nope/regenerate", json={}, headers=key), 404, "not_found"
    )
    characters_error(
        await client.post(f"{base}/{answer['id']}/regenerate", json={"top_p": 2}, headers=key),
        400,
        "invalid_request",
    )
    # Another account's conversation looks like none at all, in both dialects.
    characters_error(
        await client.post(f"{base}/{answer['id']}/regenerate", json={}, headers=x_api_key(other)),
        404,
        "not_found",
    )
    agents_error(
        await client.post(
            f"/api/v1/conversations/{conv}/messages/{answer['id']}/regenerate",
            json={},
            headers=bearer(other),
        ),
        404,
    )
    after = (await client.get("/v1/user/me", headers=key)).json()["subscription"]["chat_requests"]
    assert after["used"] == 3  # refusals count nothing
