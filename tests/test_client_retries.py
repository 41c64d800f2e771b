"""The client's retries and error paths. Retries need answers a healthy server does not
give on demand (a 503, a dropped connection): those tests put a transport double under
the client (`httpx.MockTransport`); the 429 of a spent per-minute limit is the live
server's own."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable

import httpx
import pytest

from conftest import Live
from personae.client import (
    APIConnectionError,
    APIStatusError,
    AsyncPersonae,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PaymentRequiredError,
    Personae,
    RateLimitError,
)
from personae.client.types import ChatMessage

Handler = Callable[[httpx.Request], httpx.Response]
USER = {
    "id": "user_1", "username": "u", "email": None, "created_at": "2026-01-01T00:00:00.000Z",
    "balance": 0, "stats": {"characters_created": 0, "conversations": 0, "favorites": 0},
    "subscription": {"plan": "pro", "status": "active",
                     "chat_requests": {"used": 0, "limit": 1, "reset_date": "2026-02-01T00:00:00.000Z"}},
}  # fmt: skip
CHARACTER = {
    "id": "char_1", "name": "N", "description": "", "personality": "", "background": "",
    "scenario": "", "greeting": "", "alternate_greetings": [], "example_dialogue": "",
    "tags": [], "image_url": None, "created_at": "2026-01-01T00:00:00.000Z",
    "updated_at": "2026-01-01T00:00:00.000Z", "visibility": "public", "age": None,
    "appearance_prompt": "", "creator": {"id": "user_1", "username": "u"},
    "stats": {"likes": 0, "chat_count": 0, "followers": 0},
}  # fmt: skip


def scripted(*answers: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A transport handler giving `answers` in order, and the requests it saw."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[len(seen) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle, seen


def client_over(handler: Handler, **options: float) -> Personae:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return Personae(api_key="k", base_url="http://personae.test", http_client=http, **options)  # type: ignore[arg-type]  # max_retries is an int


def test_a_429_is_retried_after_its_retry_after_with_the_same_idempotency_key() -> None:
    handler, seen = scripted(
        httpx.Response(429, headers={"Retry-After": "1"}, json={"error": "Too many requests"}),
        httpx.Response(201, json=CHARACTER),
    )
    client = client_over(handler)
    started = time.monotonic()
    made = client.characters.create(name="N")
    waited = time.monotonic() - started
    assert made.id == "char_1"
    assert len(seen) == 2
    assert waited >= 1.0  # what Retry-After said, not the 0.5 s backoff
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(keys) == 1  # one logical POST, one key, however many tries
    handler2, seen2 = scripted(
        httpx.Response(201, json=CHARACTER), httpx.Response(201, json=CHARACTER)
    )
    other = client_over(handler2)
    other.characters.create(name="A")
    other.characters.create(name="B")
    assert seen2[0].headers["Idempotency-Key"] != seen2[1].headers["Idempotency-Key"]


def test_retry_after_as_an_http_date_is_honoured() -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    handler, seen = scripted(
        httpx.Response(503, headers={"Retry-After": when}, json={"error": {"code": "engine_busy", "message": "busy", "status": 503, "details": {}}}),
        httpx.Response(200, json=USER),
    )  # fmt: skip
    started = time.monotonic()
    assert client_over(handler).user.me().username == "u"
    assert time.monotonic() - started >= 1.0
    assert len(seen) == 2


def test_a_retry_after_beyond_the_wait_limit_is_raised_not_waited() -> None:
    handler, seen = scripted(
        httpx.Response(429, headers={"Retry-After": "86400"}, json={"error": {"code": "rate_limited", "message": "Monthly quota spent", "status": 429, "details": {"limit": "monthly_chat_requests"}}}),
    )  # fmt: skip
    with pytest.raises(RateLimitError) as spent:
        client_over(handler).user.me()
    assert spent.value.retry_after == 86400
    assert len(seen) == 1
    assert spent.value.details["limit"] == "monthly_chat_requests"


def test_connection_errors_and_5xx_back_off_then_give_up() -> None:
    handler, seen = scripted(
        httpx.ConnectError("refused"),
        httpx.Response(502, json={"error": "Image engine failed"}),
        httpx.Response(500, json={"error": "Internal server error"}),
    )
    with pytest.raises(InternalServerError) as failed:
        client_over(handler, max_retries=2).user.me()
    assert failed.value.status_code == 500
    assert len(seen) == 3
    handler, seen = scripted(httpx.ConnectError("refused"))
    with pytest.raises(APIConnectionError):
        client_over(handler, max_retries=0).user.me()
    assert len(seen) == 1


def test_a_key_still_in_use_is_retried_and_other_conflicts_are_not() -> None:
    in_use = {"error": {"code": "idempotency_key_in_use", "message": "running", "status": 409, "details": {}}}  # fmt: skip
    handler, seen = scripted(
        httpx.Response(409, headers={"Retry-After": "0"}, json=in_use),
        httpx.Response(201, json=CHARACTER),
    )
    assert client_over(handler).characters.create(name="N", idempotency_key="mine").id == "char_1"
    assert [r.headers["Idempotency-Key"] for r in seen] == ["mine", "mine"]
    handler, seen = scripted(httpx.Response(409, json={"error": "This Idempotency-Key was already used with another body"}))  # fmt: skip
    with pytest.raises(ConflictError):
        client_over(handler).characters.create(name="N")
    assert len(seen) == 1


def test_errors_read_from_either_dialect_and_any_body() -> None:
    handler, _ = scripted(
        httpx.Response(402, json={"error": "Insufficient account balance"}),
        httpx.Response(404, json={"error": {"code": "not_found", "message": "No character", "status": 404, "details": {}}}),
        httpx.Response(418, text="<html>teapot</html>"),
    )  # fmt: skip
    client = client_over(handler, max_retries=0)
    with pytest.raises(PaymentRequiredError) as poor:
        client.user.me()
    assert (poor.value.code, poor.value.message) == (
        "payment_required",
        "Insufficient account balance",
    )
    with pytest.raises(NotFoundError) as missing:
        client.user.me()
    assert missing.value.message == "No character"
    with pytest.raises(APIStatusError) as odd:
        client.user.me()
    assert odd.value.status_code == 418
    assert odd.value.body == "<html>teapot</html>"


def test_an_error_event_mid_stream_is_raised_as_its_typed_error() -> None:
    body = (
        'event: delta\ndata: {"content":"Hel"}\n\n'
        'event: error\ndata: {"error":{"code":"engine_unavailable","message":"The engine stopped","status":503,"details":{}}}\n\n'
    )  # fmt: skip
    handler, _ = scripted(
        httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    )
    stream = client_over(handler).chat.send("char_1", "hi", stream=True)
    with pytest.raises(InternalServerError) as failed:
        list(stream)
    assert failed.value.status_code == 503
    assert failed.value.code == "engine_unavailable"
    assert stream.text == "Hel"
    assert stream.message is None


def test_a_stream_cut_before_its_message_is_a_connection_error() -> None:
    body = 'event: delta\r\ndata: {"content":"Hel"}\r\n\r\n'
    handler, _ = scripted(
        httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    )
    with pytest.raises(APIConnectionError):
        list(client_over(handler).chat.send("char_1", "hi", stream=True))


async def test_the_async_client_waits_for_retry_after_too() -> None:
    message = {"id": "msg_1", "conversation_id": "conv_1", "character_id": "char_1",
               "content": "Hi", "created_at": "2026-01-01T00:00:00.000Z", "is_character": True}  # fmt: skip
    handler, seen = scripted(
        httpx.Response(503, headers={"Retry-After": "1"}, json={"error": {"code": "engine_busy", "message": "busy", "status": 503, "details": {}}}),
        httpx.Response(200, json=message),
    )  # fmt: skip
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with AsyncPersonae(
        api_key="k", base_url="http://personae.test", http_client=http
    ) as client:
        started = time.monotonic()
        answer = await client.chat.send("char_1", "hi")
        assert isinstance(answer, ChatMessage)
        assert time.monotonic() - started >= 1.0
    assert seen[0].headers["Idempotency-Key"] == seen[1].headers["Idempotency-Key"]
    assert json.loads(seen[1].content) == {"message": "hi"}


def test_the_live_per_minute_limit_is_a_rate_limit_error_with_retry_after(live: Live) -> None:
    client = Personae(api_key=live.key("free"), base_url=live.base, max_retry_wait=0)
    for _ in range(5):  # the free plan's 5 requests a minute
        client.models.list(type="llm")
    with pytest.raises(RateLimitError) as limited:
        client.models.list(type="llm")
    error = limited.value
    assert error.status_code == 429
    assert error.retry_after is not None
    assert (
        0 < error.retry_after <= 60
    )  # waiting that long would succeed: not here (max_retry_wait=0)
    assert error.rate_limit.limit == 5
    assert error.rate_limit.remaining == 0
