"""`/health`, `/openapi.json` and `/docs` need no key and describe both dialects."""

from __future__ import annotations

import httpx


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "ok"
    assert "X-RateLimit-Limit" not in response.headers


async def test_openapi_describes_both_dialects(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/models" in spec["paths"]
    assert "/v1/user/me" in spec["paths"]
    schemes = spec["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"apiKey", "http"}
    me = spec["paths"]["/v1/user/me"]["get"]["responses"]
    assert me["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/UserMe")
    assert me["403"]["content"]["application/json"]["schema"]["$ref"].endswith("/CharactersError")
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
