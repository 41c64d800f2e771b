"""`client.agents`: one's own characters as the agents API shows them (`/api/v1/agents`)."""

from __future__ import annotations

from typing_extensions import Unpack

from personae.client._base import Call, clean, deleted, model, unparsed
from personae.client.pagination import AsyncPage, Shape, SyncPage
from personae.client.resources._base import AsyncResource, SyncResource
from personae.client.types import Agent, AgentFields, Deleted

AGENTS = "/api/v1/agents"


def _list(page: int | None, page_size: int) -> Call[object]:
    return Call("GET", AGENTS, unparsed, params=clean({"page": page, "page_size": page_size}))


def _create(name: str, idempotency_key: str | None, fields: AgentFields) -> Call[Agent]:
    body = {"name": name, **fields}
    return Call("POST", AGENTS, model(Agent), json=body, idempotency_key=idempotency_key)


class Agents(SyncResource):
    def list(self, *, page: int | None = None, page_size: int = 100) -> SyncPage[Agent]:
        """One's own agents; iterate the page for all of them."""
        return self._client._page(_list(page, page_size), Agent, Shape.ARRAY)

    def create(
        self, *, name: str, idempotency_key: str | None = None, **fields: Unpack[AgentFields]
    ) -> Agent:
        """Creates an agent (private unless `visibility="public"`). With `sd_model_id`,
        its avatar is generated from `appearance_prompt` (`avatar_url`)."""
        return self._client._request(_create(name, idempotency_key, fields))

    def get(self, agent_id: str) -> Agent:
        """One agent: one's own, or a public one where the plan allows."""
        return self._client._request(Call("GET", f"{AGENTS}/{agent_id}", model(Agent)))

    def update(self, agent_id: str, **fields: Unpack[AgentFields]) -> Agent:
        """Changes the given fields of one's own agent (`age=None` clears the age)."""
        call = Call("PATCH", f"{AGENTS}/{agent_id}", model(Agent), json=dict(fields))
        return self._client._request(call)

    def delete(self, agent_id: str) -> Deleted:
        """Deletes one's own agent."""
        return self._client._request(Call("DELETE", f"{AGENTS}/{agent_id}", deleted(agent_id)))


class AsyncAgents(AsyncResource):
    async def list(self, *, page: int | None = None, page_size: int = 100) -> AsyncPage[Agent]:
        """One's own agents; `async for` over the page for all of them."""
        return await self._client._page(_list(page, page_size), Agent, Shape.ARRAY)

    async def create(
        self, *, name: str, idempotency_key: str | None = None, **fields: Unpack[AgentFields]
    ) -> Agent:
        """Creates an agent (private unless `visibility="public"`)."""
        return await self._client._request(_create(name, idempotency_key, fields))

    async def get(self, agent_id: str) -> Agent:
        """One agent."""
        return await self._client._request(Call("GET", f"{AGENTS}/{agent_id}", model(Agent)))

    async def update(self, agent_id: str, **fields: Unpack[AgentFields]) -> Agent:
        """Changes the given fields of one's own agent."""
        call = Call("PATCH", f"{AGENTS}/{agent_id}", model(Agent), json=dict(fields))
        return await self._client._request(call)

    async def delete(self, agent_id: str) -> Deleted:
        """Deletes one's own agent."""
        call = Call("DELETE", f"{AGENTS}/{agent_id}", deleted(agent_id))
        return await self._client._request(call)
