"""Secrets stay out of URLs, logs, errors and the OpenAPI document: an API key in a query
string is refused in the dialect's shape before it is used or counted, and a real
`personae serve`, asked with keys and webhook secrets in every way a client might (one in
a query string, some failing), writes none of them to its output."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from conftest import MakeAccount
from helpers import agents_error, bearer, characters_error, x_api_key
from live_server import cli, serving


def key_queries(key: str) -> list[str]:
    return [
        f"api_key={key}",
        f"key={key}",
        f"API_KEY={key}",
        f"access_token={key}",
        f"q={key}",  # any value shaped like a key
        f"name=x&tags={key.replace('_', '%5F')}",  # URL-encoded
        "api_key=",  # by its name alone
    ]


async def test_a_key_in_the_query_string_is_refused_in_each_dialect(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    for query in key_queries(creds.plaintext):
        agents = await client.get(f"/api/v1/agents?{query}")
        message = agents_error(agents, 400)
        assert "query string" in message
        assert "Authorization: Bearer KEY" in message
        characters = await client.get(f"/v1/characters?{query}")
        error = characters_error(characters, 400, "invalid_request")
        assert "X-API-Key" in error["message"]
        for response in (agents, characters):
            assert creds.plaintext not in response.text
            assert "x-ratelimit-limit" not in response.headers  # refused before it counted
    # Even alongside a valid header, and on routes outside the dialects.
    both = await client.get(f"/v1/user/me?api_key={creds.plaintext}", headers=x_api_key(creds))
    characters_error(both, 400, "invalid_request")
    characters_error(await client.get(f"/health?key={creds.plaintext}"), 400, "invalid_request")
    # Nothing was counted against the account: a whole minute's allowance is left.
    me = await client.get("/v1/user/me", headers=x_api_key(creds))
    assert me.status_code == 200
    assert int(me.headers["x-ratelimit-remaining"]) == int(me.headers["x-ratelimit-limit"]) - 1


async def test_errors_never_echo_a_key(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    wrong = creds.plaintext[:-1] + ("a" if creds.plaintext[-1] != "a" else "b")
    responses = [
        await client.get("/v1/user/me", headers={"X-API-Key": wrong}),
        await client.get("/api/v1/agents", headers={"Authorization": f"Bearer {wrong}"}),
        # A key pasted into a field: the 400 names the field, not what was in it.
        await client.post(
            "/api/v1/agents", json={"name": creds.plaintext * 5}, headers=bearer(creds)
        ),
        await client.post(
            "/v1/characters", json={"name": "x", creds.plaintext: 1}, headers=x_api_key(creds)
        ),
    ]
    assert [r.status_code for r in responses] == [401, 401, 400, 400]
    for response in responses:
        assert creds.plaintext not in response.text
        assert wrong not in response.text


def exercise(base: str, key: str) -> list[str]:
    """Use the server as clients do, right and wrong; returns the webhook secrets it gave."""
    headers = {"X-API-Key": key}
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/v1/user/me", headers=headers).status_code == 200
        assert http.get("/api/v1/agents", headers={"Authorization": f"Bearer {key}"}).is_success
        for query in key_queries(key):
            assert http.get(f"/api/v1/agents?{query}").status_code == 400
            assert http.get(f"/v1/characters?{query}", headers=headers).status_code == 400
        wrong = key[:-4] + "zzzz"
        assert http.get("/v1/user/me", headers={"X-API-Key": wrong}).status_code == 401
        assert (
            http.get("/v1/user/me", headers={"Authorization": f"Bearer {key}x"}).status_code == 401
        )
        assert (
            http.post("/v1/characters", json={"name": key * 5}, headers=headers).status_code == 400
        )
        hook = http.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "events": ["character.created"]},
            headers=headers,
        )
        assert hook.status_code == 201, hook.text
        rotated = http.post(f"/v1/webhooks/{hook.json()['id']}/rotate-secret", headers=headers)
        assert rotated.status_code == 200, rotated.text
        secrets = [hook.json()["secret"], rotated.json()["secret"]]
        # An event whose deliveries fail (nothing listens there): the failures are logged.
        character = http.post(
            "/v1/characters",
            json={"name": "Vexa", "description": "A courier", "personality": "Calm",
                  "background": "Docks"},
            headers=headers,
        )  # fmt: skip
        assert character.status_code == 201
        test_delivery = http.post(f"/v1/webhooks/{hook.json()['id']}/test", headers=headers)
        assert test_delivery.status_code == 202, test_delivery.text
        deadline = time.monotonic() + 20
        while True:  # the first attempts have failed (and been recorded)
            log = http.get(f"/v1/webhooks/{hook.json()['id']}/deliveries", headers=headers)
            attempts = [d for d in log.json()["data"] if d["last_attempt_at"]]
            if len(attempts) >= 2:
                break
            assert time.monotonic() < deadline, log.text
            time.sleep(0.1)
        document = http.get("/openapi.json").text
        for secret in [key, *secrets]:
            assert secret not in document
    return secrets


def test_a_real_server_writes_no_key_or_webhook_secret_to_its_log(tmp_path: Path) -> None:
    # `trace` is the chattiest level: uvicorn then logs every ASGI scope, query string included.
    with (tmp_path / "server.log").open("w+b") as output:
        with serving(
            tmp_path / "data", output, log_level="trace", llm_preload="false",
            webhook_allow_private="true",
            webhook_retry_schedule="0.2,0.2", webhook_relay_seconds="0.1",
        ) as (base, env, _):  # fmt: skip
            created = cli(env, "accounts", "create", "--username", "leaky", "--plan", "premium")
            key = created["api_key"]
            secrets = exercise(base, key)
        output.seek(0)
        log = output.read().decode(errors="replace")
    # The log was written, with the refused request in it: redacted.
    assert '"GET /api/v1/agents?api_key=[redacted] HTTP/1.1" 400' in log, log[-3000:]
    assert '"GET /api/v1/agents?q=[redacted] HTTP/1.1" 400' in log
    assert "'query_string': b'api_key=[redacted]'" in log  # trace logged the ASGI scope
    for secret in [key, key[12:], *secrets, *(s.removeprefix("whsec_") for s in secrets)]:
        assert secret not in log
    assert key.replace("_", "%5F") not in log
