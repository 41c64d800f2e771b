"""The OpenAPI document says what the server does: every reference resolves, errors are
400 in the dialect's shape (never FastAPI's 422), bounds are the enforced constants, and a
405 names every method of its path in `Allow`."""

from __future__ import annotations

from typing import Any

import httpx

from conftest import MakeAccount
from helpers import bearer
from personae.character.fields import MAX_NAME, MAX_TAG, MAX_TAGS
from personae.conversation.fields import MAX_ANSWER_TOKENS
from personae.idempotency.service import KEY_MAX_LENGTH

METHODS = ("get", "post", "put", "patch", "delete")


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


async def test_every_reference_resolves_and_no_422_is_documented(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    for ref in refs(document):
        resolve(document, ref)  # a KeyError names the dangling one
    assert "$defs" not in str(document)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            if path.startswith(("/api/v1/", "/v1/")):
                error = "AgentsError" if path.startswith("/api/v1/") else "CharactersError"
                schema = responses["400"]["content"]["application/json"]["schema"]
                assert schema == {"$ref": f"#/components/schemas/{error}"}, (method, path)
    files = document["paths"]["/files/{key}"]["get"]["responses"]["404"]
    assert files["content"]["application/json"]["schema"]["$ref"].endswith("/CharactersError")


async def test_bounds_are_the_enforced_ones(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    tags = schemas["AgentCreate"]["properties"]["tags"]
    assert tags["maxItems"] == MAX_TAGS
    assert tags["items"]["maxLength"] == MAX_TAG
    assert schemas["AgentCreate"]["properties"]["name"]["maxLength"] == MAX_NAME
    tokens = schemas["MessageCreate"]["properties"]["max_tokens"]["anyOf"][0]
    assert tokens["maximum"] == MAX_ANSWER_TOKENS
    # A PATCH field that refuses null is not documented as nullable, nor null by default.
    visibility = schemas["AgentUpdate"]["properties"]["visibility"]
    assert "anyOf" not in visibility
    assert "default" not in visibility
    # The characters API's bodies are inline (JSON and multipart), with nothing left to
    # resolve: the enum is there.
    body = document["paths"]["/v1/characters"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["properties"]["visibility"]["enum"] == [
        "public",
        "private",
    ]
    assert body["multipart/form-data"]["encoding"]["tags"] == {"contentType": "application/json"}
    # Every POST documents the Idempotency-Key that the middleware reads.
    posts = [ops["post"] for ops in document["paths"].values() if "post" in ops]
    assert len(posts) > 10
    for operation in posts:
        [key] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
        assert (key["in"], key["schema"]["maxLength"]) == ("header", KEY_MAX_LENGTH)


async def test_a_tag_longer_than_documented_is_refused(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    too_long = {"name": "A", "tags": ["x" * (MAX_TAG + 1)]}
    assert (
        await client.post("/api/v1/agents", json=too_long, headers=bearer(creds))
    ).status_code == 400
    fits = {"name": "A", "tags": ["İ" * MAX_TAG]}  # "İ".lower() is two characters
    assert (
        await client.post("/api/v1/agents", json=fits, headers=bearer(creds))
    ).status_code == 201


async def test_405_allows_every_method_of_the_path(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("premium")
    document = (await client.get("/openapi.json")).json()
    for path, operations in document["paths"].items():
        documented = {m.upper() for m in operations if m in METHODS}
        unused = next(m for m in ("PUT", "OPTIONS") if m.lower() not in operations)
        url = path.replace("{key}", "avatars/x.png")
        url = "/".join("x" if part.startswith("{") else part for part in url.split("/"))
        response = await client.request(unused, url, headers=bearer(creds))
        assert response.status_code == 405, (unused, path, response.text)
        allowed = {m.strip() for m in response.headers["Allow"].split(",")}
        assert allowed - {"HEAD"} == documented, (path, response.headers["Allow"])
    webhook = await client.options("/v1/webhooks/x", headers=bearer(creds))
    assert webhook.headers["Allow"] == "GET, PATCH, DELETE"
