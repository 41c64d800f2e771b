"""Messages keep their token counts: a history is tokenized once, not on every turn.

Each message stores what it costs in a prompt and for which model; a turn counts only what
is new (its own texts, and any message not counted for its model), and a message whose
text changes is counted again. The counts are the model's own tokenizer's (the embedded
SmolLM2's here), and the turns are real turns through the API.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from conftest import MakeAccount
from helpers import x_api_key
from personae.engines.llm.base import LLMEngine
from personae.models import Message, Model
from personae.state import AppState
from test_conversation_steering import make_character


async def rows(state: AppState, conversation_id: str) -> list[Message]:
    async with state.sessionmaker() as session:
        stmt = select(Message).where(Message.conversation_id == conversation_id)
        return list((await session.scalars(stmt.order_by(Message.seq))).all())


async def engine_of(state: AppState, model_id: str) -> LLMEngine:
    async with state.sessionmaker() as session:
        model = await session.get_one(Model, model_id)
    return await state.llm_engines.get(model)


class CountSpy:
    """Records what the engine is asked to count (the real tokenizer still counts)."""

    def __init__(self, engine: LLMEngine) -> None:
        self.texts: list[str] = []
        self.engine = engine
        self.count = engine.count_tokens

    async def __call__(self, texts: list[str]) -> list[int]:
        self.texts += texts
        return await self.count(texts)

    def __enter__(self) -> CountSpy:
        self.engine.count_tokens = self  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: Any) -> None:
        self.engine.count_tokens = self.count  # type: ignore[method-assign]


async def test_a_history_is_counted_once_and_again_only_when_its_text_changes(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    state: AppState = app.state.personae
    creds = await make_account("premium")
    character = await make_character(client, creds, greeting="Ahoy, {{user}}! I am Nell.")

    async def say(text: str, conversation: str | None = None) -> str:
        body: dict[str, Any] = {"message": text, "max_tokens": 4, "seed": 1}
        if conversation:
            body["conversation_id"] = conversation
        answer = await client.post(
            f"/v1/chat/{character}/messages", json=body, headers=x_api_key(creds)
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["conversation_id"])

    conversation = await say("Hello there, I deliver letters.")
    await say("Where is the harbour master's office?", conversation)
    stored = await rows(state, conversation)
    assert [m.role for m in stored] == ["agent", "user", "agent", "user", "agent"]
    model_id = stored[1].prompt_tokens_model
    assert model_id is not None
    engine = await engine_of(state, model_id)
    # Every message is counted, by the model's tokenizer, for that model.
    truth = await engine.count_tokens([m.content for m in stored])
    assert [m.prompt_tokens for m in stored] == truth
    assert {m.prompt_tokens_model for m in stored} == {model_id}

    # The next turn counts its own texts only, not the history.
    with CountSpy(engine) as spy:
        await say("Thank you kindly.", conversation)
    history = {m.content for m in stored}
    assert spy.texts, "the turn counted nothing at all"
    assert not history & set(spy.texts), spy.texts

    # An edited message is counted again, once, and its new count stored.
    edited = "I deliver parcels, and sometimes letters, to every ship in the port."
    response = await client.patch(
        f"/v1/chat/conversations/{conversation}/messages/{stored[1].id}",
        json={"content": edited},
        headers=x_api_key(creds),
    )
    assert response.status_code == 200, response.text
    [changed] = [m for m in await rows(state, conversation) if m.id == stored[1].id]
    assert (changed.prompt_tokens, changed.prompt_tokens_model) == (None, None)
    with CountSpy(engine) as spy:
        await say("Goodbye.", conversation)
    assert spy.texts.count(edited) == 1
    assert not (history - {stored[1].content}) & set(spy.texts)
    [changed] = [m for m in await rows(state, conversation) if m.id == stored[1].id]
    assert changed.prompt_tokens == (await engine.count_tokens([edited]))[0]
    assert changed.prompt_tokens_model == model_id


async def test_a_branch_keeps_the_counts(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    state: AppState = app.state.personae
    creds = await make_account("premium")
    character = await make_character(client, creds, greeting="Hello, I am Nell.")
    body = {"message": "Which ship sails first?", "max_tokens": 4, "seed": 2}
    answer = await client.post(
        f"/v1/chat/{character}/messages", json=body, headers=x_api_key(creds)
    )
    assert answer.status_code == 200, answer.text
    source = await rows(state, answer.json()["conversation_id"])
    branched = await client.post(
        f"/v1/chat/conversations/{answer.json()['conversation_id']}/branch",
        json={"message_id": source[-1].id},
        headers=x_api_key(creds),
    )
    assert branched.status_code == 201, branched.text
    copies = await rows(state, branched.json()["id"])
    assert [(m.prompt_tokens, m.prompt_tokens_model) for m in copies] == [
        (m.prompt_tokens, m.prompt_tokens_model) for m in source
    ]
    assert all(m.prompt_tokens for m in copies)
