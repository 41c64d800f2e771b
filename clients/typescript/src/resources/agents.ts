import type { ResponseMeta, WithMeta } from "../core/meta.js";
import { APIResource, path, type AgentsPageParams, type ArrayPage } from "../core/resource.js";
import type { RequestOptions } from "../core/transport.js";
import type { Agent, AgentCreateBody, AgentUpdateBody } from "../types.js";

/** `agents.list`: `page` (from 1) and `page_size` (1–100, default 100). */
export type AgentListParams = AgentsPageParams;

/**
 * The caller's agents (the agents API, `/api/v1/agents`). An agent is a character: the
 * same row and id as in the characters API, `private` unless made `public`.
 */
export class Agents extends APIResource {
  /** Lists one's own agents, newest first (`GET /api/v1/agents`). */
  list(params: AgentListParams = {}, options?: RequestOptions): Promise<ArrayPage<Agent>> {
    return this._arrayPage<Agent, AgentListParams>("/api/v1/agents", params, 100, options);
  }

  /**
   * Creates an agent (`POST /api/v1/agents`). With `sd_model_id`, its avatar is generated
   * from the appearance prompt and waited for (`avatar_url`).
   */
  create(body: AgentCreateBody, options?: RequestOptions): Promise<WithMeta<Agent>> {
    return this._request<Agent>("POST", "/api/v1/agents", { body, options });
  }

  /** One agent (`GET /api/v1/agents/{id}`): one's own, or a public one. */
  get(agentId: string, options?: RequestOptions): Promise<WithMeta<Agent>> {
    return this._request<Agent>("GET", path`/api/v1/agents/${agentId}`, { options });
  }

  /** Changes one's own agent (`PATCH /api/v1/agents/{id}`); `age`/`sd_model_id: null` clear. */
  update(agentId: string, body: AgentUpdateBody, options?: RequestOptions): Promise<WithMeta<Agent>> {
    return this._request<Agent>("PATCH", path`/api/v1/agents/${agentId}`, { body, options });
  }

  /** Deletes one's own agent (`DELETE /api/v1/agents/{id}`, 204): resolves to the meta only. */
  delete(agentId: string, options?: RequestOptions): Promise<ResponseMeta> {
    return this._empty("DELETE", path`/api/v1/agents/${agentId}`, options);
  }
}
