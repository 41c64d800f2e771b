"""The OpenAI-compatible endpoint (`/openai/v1`) with OpenAI's own `openai` package as the
client: sync, async and streamed chats against a live `personae serve`, a turn stored in a
conversation (with its webhooks), LangChain's `ChatOpenAI` once, and the refusals (401,
402, 404, 400, 429) in OpenAI's error shape, which the package turns into its typed
errors. The 402 and the monthly quota need a priced
default model or a plan changed through the service, so they speak to an app in-process
(openai's HTTP library, httpx2, has an ASGI transport)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import httpx2
import openai
import pytest
from fastapi import FastAPI

from conftest import Live, MakeAccount
from helpers import bearer, openai_error
from llm_servers import SCRIPTED_REQUESTS, failing_server
from personae.account.service import AccountService, Credentials
from personae.model.service import ModelService, ModelType
from webhook_receiver import receiver

# Tiny, greedy, seeded answers: the embedded model runs on the CI's CPU cores.
TURN: dict[str, Any] = {"max_tokens": 16, "temperature": 0, "seed": 7}
AGENT = {
    "name": "Captain Brine",
    "description": "an old sea captain",
    "personality_prompt": "Gruff, loves the sea",
    "greeting": "Ahoy, {{user}}! What brings ye aboard?",
}
HELLO = [{"role": "user", "content": "Hello, who are you?"}]


def native(live: Live, key: str) -> httpx.Client:
    return httpx.Client(base_url=live.base, headers={"Authorization": f"Bearer {key}"})


def new_agent(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    created = http.post("/api/v1/agents", json=AGENT | fields)
    assert created.status_code == 201, created.text
    agent: dict[str, Any] = created.json()
    return agent


def sync_client(live: Live, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{live.base}/openai/v1", max_retries=0)


@pytest.fixture(scope="module")
def premium(live: Live) -> Iterator[tuple[str, dict[str, Any]]]:
    """A premium account's key and one of its agents (with a greeting)."""
    key = live.key("premium")
    with native(live, key) as http:
        yield key, new_agent(http)


def test_sync_chat(live: Live, premium: tuple[str, dict[str, Any]]) -> None:
    key, agent = premium
    client = sync_client(live, key)
    raw = client.chat.completions.with_raw_response.create(
        model=agent["id"], messages=HELLO, **TURN
    )
    assert raw.headers["X-RateLimit-Limit"] == "750"
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == agent["id"]
    assert abs(completion.created - time.time()) < 120
    [choice] = completion.choices
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None
    assert 0 < usage.completion_tokens <= TURN["max_tokens"]
    assert usage.prompt_tokens > 20  # the persona and the greeting are in the prompt
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    # The same character by name (one's own), and with the client's own system message.
    by_name = client.chat.completions.create(
        model=f"character:{agent['name'].upper()}",
        messages=[{"role": "system", "content": "Answer briefly."}, *HELLO],
        **TURN,
    )
    assert by_name.model == f"character:{agent['name'].upper()}"
    assert by_name.usage is not None
    assert by_name.usage.prompt_tokens > usage.prompt_tokens

    # The greeting opens a stateless conversation unless the client's opens otherwise;
    # the client's stop sequences end the answer, on top of the house's.
    opened = client.chat.completions.create(
        model=agent["id"],
        messages=[{"role": "assistant", "content": "Hi."}, *HELLO],
        stop=[" ", "\n"],
        **TURN,
    )
    assert opened.usage is not None
    assert opened.usage.prompt_tokens < usage.prompt_tokens  # "Hi." instead of "Ahoy, …"
    content = opened.choices[0].message.content or ""
    assert " " not in content.strip()
    assert opened.choices[0].finish_reason == "stop"

    # Stateless: nothing was stored, but each completion was one chat request.
    with native(live, key) as http:
        assert http.get("/api/v1/conversations").json() == []
        me = http.get("/v1/user/me").json()
    assert me["subscription"]["chat_requests"]["used"] >= 3

    # The models are the account's characters.
    models = client.models.list()
    listed = {m.id: m for m in models.data}
    assert listed[agent["id"]].owned_by == me["username"]
    assert listed[agent["id"]].object == "model"


async def test_async_chat_and_stream(live: Live, premium: tuple[str, dict[str, Any]]) -> None:
    key, agent = premium
    question = [{"role": "user", "content": "Hello!"}]
    async with openai.AsyncOpenAI(
        api_key=key, base_url=f"{live.base}/openai/v1", max_retries=0
    ) as client:
        answer = await client.chat.completions.create(model=agent["id"], messages=question, **TURN)
        stream = await client.chat.completions.create(
            model=agent["id"],
            messages=question,
            stream=True,
            stream_options={"include_usage": True},
            **TURN,
        )
        chunks = [chunk async for chunk in stream]
        together = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model=agent["id"], messages=[{"role": "user", "content": text}], **TURN
                )
                for text in ("Where is your ship?", "What do you eat?")
            )
        )
    assert all(a.choices[0].message.content for a in together)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == answer.choices[0].message.content  # greedy and seeded
    assert {c.id for c in chunks} == {chunks[0].id}
    [finish] = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish.choices[0].finish_reason == answer.choices[0].finish_reason
    assert chunks[-1].choices == []
    assert chunks[-1].usage == answer.usage


def test_sync_stream_ends_with_done_and_replays(
    live: Live, premium: tuple[str, dict[str, Any]]
) -> None:
    key, agent = premium
    client = sync_client(live, key)
    with client.chat.completions.create(
        model=agent["id"], messages=HELLO, stream=True, **TURN
    ) as stream:
        pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces).strip()

    # On the wire: `data:` lines only, the last one `[DONE]`; with an Idempotency-Key, a
    # retry gets the same stream back without a second generation.
    body = {"model": agent["id"], "messages": HELLO, "stream": True} | TURN
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    with native(live, key) as http:
        first = http.post("/openai/v1/chat/completions", json=body, headers=headers)
        again = http.post("/openai/v1/chat/completions", json=body, headers=headers)
        used = http.get("/v1/user/me").json()["subscription"]["chat_requests"]["used"]
        third = http.post("/openai/v1/chat/completions", json=body)
        assert http.get("/v1/user/me").json()["subscription"]["chat_requests"]["used"] == used + 1
    assert first.headers["content-type"].startswith("text/event-stream")
    events = [e for e in first.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2].removeprefix("data: "))["choices"][0]["finish_reason"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert third.text.endswith("data: [DONE]\n\n")


async def test_a_turn_stored_in_a_conversation(live: Live) -> None:
    key = live.key("premium")
    with native(live, key) as http:
        agent = new_agent(http)
        conversation = http.post("/api/v1/conversations", json={"agent_id": agent["id"]}).json()
    start = conversation["message_count"]
    assert start == 1  # the greeting
    client = sync_client(live, key)
    with receiver() as hooks:
        with native(live, key) as http:
            created = http.post(
                "/v1/webhooks", json={"url": f"{hooks.base}/hook", "events": ["message.created"]}
            )
            assert created.status_code == 201, created.text
        answer = client.chat.completions.create(
            model=agent["id"],
            messages=[
                {"role": "user", "content": "Ignored: the conversation is the history"},
                {"role": "assistant", "content": "Ignored too"},
                {"role": "user", "content": [{"type": "text", "text": "My name is Ada."}]},
            ],
            metadata={"conversation_id": conversation["id"]},
            **TURN,
        )
        # `user` holding a conversation id stores the turn too.
        client.chat.completions.create(
            model=agent["id"],
            messages=[{"role": "user", "content": "What is my name?"}],
            user=conversation["id"],
            **TURN,
        )
        await hooks.wait_for(4)
    with native(live, key) as http:
        stored = http.get(f"/api/v1/conversations/{conversation['id']}").json()
        messages = http.get(f"/api/v1/conversations/{conversation['id']}/messages").json()
    assert stored["message_count"] == start + 4
    assert [(m["role"], m["content"]) for m in messages[1:3]] == [
        ("user", "My name is Ada."),
        ("agent", answer.choices[0].message.content),
    ]
    assert messages[3]["content"] == "What is my name?"
    events = [r.json for r in hooks.on("/hook")]
    assert [e["type"] for e in events] == ["message.created"] * 4

    # A conversation with another character is 400; one of another account's is 404.
    with native(live, key) as http:
        other = new_agent(http)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=other["id"], messages=HELLO, metadata={"conversation_id": conversation["id"]}
        )
    assert refused.value.body["param"] == "conversation_id"  # type: ignore[index]
    stranger = sync_client(live, live.key("premium"))
    with pytest.raises(openai.NotFoundError):
        stranger.chat.completions.create(
            model=agent["id"], messages=HELLO, metadata={"conversation_id": conversation["id"]}
        )


def test_refusals_in_openai_shape(live: Live, premium: tuple[str, dict[str, Any]]) -> None:
    key, agent = premium
    client = sync_client(live, key)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert missing.value.body == {
        "message": missing.value.body["message"],  # type: ignore[index]
        "type": "not_found_error",
        "param": "model",
        "code": "model_not_found",
    }
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="character:Nobody at all", messages=HELLO)

    with pytest.raises(openai.AuthenticationError) as unknown:
        sync_client(live, "prs_" + "A" * 40).models.list()
    assert unknown.value.body["type"] == "authentication_error"  # type: ignore[index]

    refusals: list[tuple[dict[str, Any], str]] = [
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"logprobs": True}, "logprobs"),
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "t"}]}, "messages[0]"),
    ]
    for extra, param in refusals:
        arguments = {"model": agent["id"], "messages": HELLO} | extra
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(**arguments)
        error = bad.value.body
        assert error["type"] == "invalid_request_error", error  # type: ignore[index]
        assert error["param"].startswith(param), error  # type: ignore[index]


def test_per_minute_limit_is_a_rate_limit_error(
    live: Live, premium: tuple[str, dict[str, Any]]
) -> None:
    _, agent = premium
    client = sync_client(live, live.key("free"))
    for _ in range(5):
        client.models.list()
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model=agent["id"], messages=HELLO, **TURN)
    response = limited.value.response
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert limited.value.body["type"] == "rate_limit_error"  # type: ignore[index]
    assert limited.value.body["code"] == "rate_limited"  # type: ignore[index]


def test_langchain_chat_openai(live: Live, premium: tuple[str, dict[str, Any]]) -> None:
    """LangChain's OpenAI chat class, as a LangChain program would use it: invoked, and
    streamed."""
    from langchain_openai import ChatOpenAI

    key, agent = premium
    chat = ChatOpenAI(
        model=agent["id"],
        api_key=key,  # type: ignore[arg-type]  # a str is what it takes at run time
        base_url=f"{live.base}/openai/v1",
        max_retries=0,
        **TURN,
    )
    reply = chat.invoke([("system", "Answer briefly."), ("human", "Hello, who are you?")])
    assert isinstance(reply.content, str)
    assert reply.content
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] <= TURN["max_tokens"]
    pieces = [chunk.content for chunk in chat.stream("Where is your ship?")]
    assert "".join(str(p) for p in pieces).strip()


# In-process: a priced default model, and a plan's quota changed through the service.
@pytest.fixture
async def in_process(app: FastAPI) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport) as http:
        yield http


def async_client(http: httpx2.AsyncClient, creds: Credentials) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=creds.plaintext,
        base_url="http://testserver/openai/v1",
        http_client=http,
        max_retries=0,
    )


async def own_agent(http: httpx2.AsyncClient, creds: Credentials) -> str:
    created = await http.post("http://testserver/api/v1/agents", json=AGENT, headers=bearer(creds))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def test_402_when_the_balance_cannot_pay(
    app: FastAPI, in_process: httpx2.AsyncClient, make_account: MakeAccount
) -> None:
    async with app.state.personae.sessionmaker.begin() as session:
        service = ModelService(session)
        [embedded] = await service.list_enabled(ModelType.LLM)
        await service.register(
            ModelType.LLM, "Priced", embedded.engine, dict(embedded.settings), cost="2.5"
        )
        await service.set_enabled(embedded.id, False)  # the priced model is the default
    creds = await make_account("standard", balance="0")
    client = async_client(in_process, creds)
    agent = await own_agent(in_process, creds)
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(model=agent, messages=HELLO, **TURN)
    assert refused.value.status_code == 402
    assert refused.value.body == {
        "message": "Insufficient account balance",
        "type": "insufficient_quota",
        "param": None,
        "code": "payment_required",
    }
    with pytest.raises(openai.APIStatusError) as streamed:  # refused before the stream
        await client.chat.completions.create(model=agent, messages=HELLO, stream=True, **TURN)
    assert streamed.value.status_code == 402
    me = await in_process.get("http://testserver/v1/user/me", headers=bearer(creds))
    assert me.json()["subscription"]["chat_requests"]["used"] == 0


async def test_monthly_quota_is_429_insufficient_quota(
    app: FastAPI, in_process: httpx2.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("free")  # every plan may chat through this endpoint
    async with app.state.personae.sessionmaker.begin() as session:
        service = AccountService(session)
        await service.set_plan(
            await service.get(creds.account.id), "free", chat_requests_per_month=1
        )
    client = async_client(in_process, creds)
    agent = await own_agent(in_process, creds)
    await client.chat.completions.create(model=agent, messages=HELLO, **TURN)
    with pytest.raises(openai.RateLimitError) as spent:
        await client.chat.completions.create(model=agent, messages=HELLO, **TURN)
    assert spent.value.body["type"] == "insufficient_quota"  # type: ignore[index]
    assert int(spent.value.response.headers["Retry-After"]) > 0


async def test_errors_outside_routes_are_in_openai_shape(
    in_process: httpx2.AsyncClient, make_account: MakeAccount
) -> None:
    """A path no route takes, a body that is not JSON, and a missing key: the shape is the
    dialect's wherever the answer comes from."""
    creds = await make_account()
    base = "http://testserver/openai/v1"
    for response, status, kind in (
        (await in_process.get(f"{base}/nothing", headers=bearer(creds)), 404, "not_found_error"),
        (
            await in_process.post(
                f"{base}/chat/completions",
                content=b"{not json",
                headers=bearer(creds) | {"Content-Type": "application/json"},
            ),
            400,
            "invalid_request_error",
        ),
        (await in_process.get(f"{base}/models"), 401, "authentication_error"),
        (await in_process.get(f"{base}/models?page=2", headers=bearer(creds)), 400,
         "invalid_request_error"),
    ):  # fmt: skip
        openai_error(httpx.Response(status, content=response.content), status, kind)


@pytest.fixture(scope="module")
def remote() -> Iterator[str]:
    with failing_server() as base:
        yield base


async def only_remote_model(app: FastAPI, url: str) -> None:
    """A model behind `url` (an OpenAI-compatible server), made the only enabled LLM."""
    async with app.state.personae.sessionmaker.begin() as session:
        service = ModelService(session)
        for model in await service.list_enabled(ModelType.LLM):
            await service.set_enabled(model.id, False)
        settings = {"base_url": url, "model": "m", "timeout_seconds": 1}
        await service.register(ModelType.LLM, "remote", "openai", settings)


async def test_parameters_reach_the_engine(
    app: FastAPI, in_process: httpx2.AsyncClient, make_account: MakeAccount, remote: str
) -> None:
    """What the engine is asked, from OpenAI's fields; and `stop` holds even against a
    server that ignores it (the scripted one streams "Vexa Stride: Hi there." whatever
    it is asked)."""
    await only_remote_model(app, f"{remote}/scripted/v1")
    creds = await make_account()
    client = async_client(in_process, creds)
    agent = await own_agent(in_process, creds)
    SCRIPTED_REQUESTS.clear()
    answer = await client.chat.completions.create(
        model=agent,
        messages=[{"role": "developer", "content": "Be brief."}, *HELLO],
        max_completion_tokens=12,
        max_tokens=99,
        temperature=0.3,
        top_p=0.8,
        frequency_penalty=0.5,
        presence_penalty=-0.5,
        seed=11,
        stop="there",
        n=1,
        user="end-user-42",  # a label, not a conversation: stateless
        metadata={"origin": "test"},
        extra_body={"top_k": 20},
    )
    assert answer.choices[0].message.content == "Vexa Stride: Hi"
    sent = SCRIPTED_REQUESTS[-1]
    assert sent["max_tokens"] == 12
    assert (sent["temperature"], sent["top_p"], sent["top_k"], sent["seed"]) == (0.3, 0.8, 20, 11)
    assert (sent["frequency_penalty"], sent["presence_penalty"]) == (0.5, -0.5)
    assert "there" in sent["stop"]
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["system", "system", "assistant", "user"]  # persona, developer, greeting
    assert sent["messages"][2]["content"] == "Ahoy, User! What brings ye aboard?"
    conversations = await in_process.get(
        "http://testserver/api/v1/conversations", headers=bearer(creds)
    )
    assert conversations.json() == []


async def test_a_failure_mid_stream_is_an_error_chunk(
    app: FastAPI, in_process: httpx2.AsyncClient, make_account: MakeAccount, remote: str
) -> None:
    """The engine fails once the stream has started: one `data:` chunk holding the error,
    no `[DONE]`, and the SDK raises it; unstreamed, the same failure is a 502."""
    await only_remote_model(app, f"{remote}/fail/v1")
    creds = await make_account()
    client = async_client(in_process, creds)
    agent = await own_agent(in_process, creds)
    stream = await client.chat.completions.create(model=agent, messages=HELLO, stream=True)
    with pytest.raises(openai.APIError) as failed:
        [chunk async for chunk in stream]
    assert failed.value.body["type"] == "server_error"  # type: ignore[index]
    assert failed.value.body["code"] == "engine_error"  # type: ignore[index]
    with pytest.raises(openai.InternalServerError) as unstreamed:
        await client.chat.completions.create(model=agent, messages=HELLO)
    assert unstreamed.value.status_code == 502
    raw = await in_process.post(
        "http://testserver/openai/v1/chat/completions",
        json={"model": agent, "messages": HELLO, "stream": True},
        headers=bearer(creds),
    )
    events = [e for e in raw.text.split("\n\n") if e]
    assert json.loads(events[0].removeprefix("data: "))["choices"][0]["delta"]["role"]
    assert json.loads(events[-1].removeprefix("data: "))["error"]["type"] == "server_error"
    assert "[DONE]" not in raw.text
