import type { ResponseMeta, WithMeta } from "../core/meta.js";
import { APIResource, path, type AgentsPageParams, type ArrayPage } from "../core/resource.js";
import type { RequestOptions } from "../core/transport.js";
import type { Conversation, ConversationCreateBody, ConversationUpdateBody } from "../types.js";

/** `conversations.list`: `page` (from 1) and `page_size` (1–100, default 100). */
export type ConversationListParams = AgentsPageParams;

/** Conversations of the agents API (`/api/v1/conversations`). */
export class Conversations extends APIResource {
  /** Lists one's conversations, newest activity first (`GET /api/v1/conversations`). */
  list(params: ConversationListParams = {}, options?: RequestOptions): Promise<ArrayPage<Conversation>> {
    return this._arrayPage<Conversation, ConversationListParams>("/api/v1/conversations", params, 100, options);
  }

  /**
   * Starts a conversation (`POST /api/v1/conversations`): optionally with an `agent_id`
   * (whose greeting opens it), a `title`, a `system_prompt`, an `llm_id` and initial
   * `messages`.
   */
  create(body: ConversationCreateBody = {}, options?: RequestOptions): Promise<WithMeta<Conversation>> {
    return this._request<Conversation>("POST", "/api/v1/conversations", { body, options });
  }

  /** One conversation (`GET /api/v1/conversations/{id}`). */
  get(conversationId: string, options?: RequestOptions): Promise<WithMeta<Conversation>> {
    return this._request<Conversation>("GET", path`/api/v1/conversations/${conversationId}`, { options });
  }

  /** Changes `title` and/or `system_prompt` (`PATCH /api/v1/conversations/{id}`). */
  update(
    conversationId: string,
    body: ConversationUpdateBody,
    options?: RequestOptions,
  ): Promise<WithMeta<Conversation>> {
    return this._request<Conversation>("PATCH", path`/api/v1/conversations/${conversationId}`, { body, options });
  }

  /** Deletes a conversation and its messages (`DELETE …/{id}`, 204): resolves to the meta only. */
  delete(conversationId: string, options?: RequestOptions): Promise<ResponseMeta> {
    return this._empty("DELETE", path`/api/v1/conversations/${conversationId}`, options);
  }

  /**
   * Starts a new conversation from this one's history up to and including `messageId`
   * (`POST /api/v1/conversations/{id}/branch`).
   */
  branch(conversationId: string, messageId: string, options?: RequestOptions): Promise<WithMeta<Conversation>> {
    return this._request<Conversation>("POST", path`/api/v1/conversations/${conversationId}/branch`, {
      body: { message_id: messageId },
      options,
    });
  }
}
