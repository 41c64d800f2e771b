import type { ResponseMeta, WithMeta } from "../core/meta.js";
import { APIResource, path, type AgentsPageParams, type ArrayPage } from "../core/resource.js";
import type { RequestOptions } from "../core/transport.js";
import type { Stream } from "../streaming.js";
import type { Message, MessageCreateBody, MessageEdit, RegenerateOptions } from "../types.js";

/** `messages.list`: `page` (from 1) and `page_size` (1–1000, default 100). */
export type MessageListParams = AgentsPageParams;

/** `messages.send`'s options: `stream`, `llm_id`, `max_tokens`, `verbose`, `seed`, sampling. */
export type MessageSendParams = Omit<MessageCreateBody, "content">;

/** Messages of the agents API (`/api/v1/conversations/{id}/messages`). */
export class Messages extends APIResource {
  /** Lists a conversation's messages, oldest first (`GET …/messages`). */
  list(conversationId: string, params: MessageListParams = {}, options?: RequestOptions): Promise<ArrayPage<Message>> {
    return this._arrayPage<Message, MessageListParams>(
      path`/api/v1/conversations/${conversationId}/messages`,
      params,
      100,
      options,
    );
  }

  /**
   * Sends a message and returns the agent's answer (`POST …/messages`); with
   * `stream: true`, a {@link Stream} of its deltas and then the stored message.
   */
  send(
    conversationId: string,
    content: string,
    params: MessageSendParams & { stream: true },
    options?: RequestOptions,
  ): Promise<Stream<Message>>;
  send(
    conversationId: string,
    content: string,
    params?: MessageSendParams & { stream?: false },
    options?: RequestOptions,
  ): Promise<WithMeta<Message>>;
  send(
    conversationId: string,
    content: string,
    params?: MessageSendParams,
    options?: RequestOptions,
  ): Promise<WithMeta<Message> | Stream<Message>>;
  send(
    conversationId: string,
    content: string,
    params: MessageSendParams = {},
    options?: RequestOptions,
  ): Promise<WithMeta<Message> | Stream<Message>> {
    return this._generate<Message>(
      path`/api/v1/conversations/${conversationId}/messages`,
      { ...params, content },
      options,
    );
  }

  /** Edits a message (`{content}`) or chooses one of its versions (`{selected}`) (`PATCH`). */
  update(
    conversationId: string,
    messageId: string,
    body: MessageEdit,
    options?: RequestOptions,
  ): Promise<WithMeta<Message>> {
    return this._request<Message>("PATCH", path`/api/v1/conversations/${conversationId}/messages/${messageId}`, {
      body,
      options,
    });
  }

  /** Deletes a message (`DELETE`, 204): resolves to the meta only. */
  delete(conversationId: string, messageId: string, options?: RequestOptions): Promise<ResponseMeta> {
    return this._empty("DELETE", path`/api/v1/conversations/${conversationId}/messages/${messageId}`, options);
  }

  /**
   * Answers the user's message before this agent message again (`POST …/regenerate`): a
   * new, selected version; the earlier ones stay in `alternatives`. With `stream: true`,
   * a {@link Stream}.
   */
  regenerate(
    conversationId: string,
    messageId: string,
    params: RegenerateOptions & { stream: true },
    options?: RequestOptions,
  ): Promise<Stream<Message>>;
  regenerate(
    conversationId: string,
    messageId: string,
    params?: RegenerateOptions & { stream?: false },
    options?: RequestOptions,
  ): Promise<WithMeta<Message>>;
  regenerate(
    conversationId: string,
    messageId: string,
    params?: RegenerateOptions,
    options?: RequestOptions,
  ): Promise<WithMeta<Message> | Stream<Message>>;
  regenerate(
    conversationId: string,
    messageId: string,
    params: RegenerateOptions = {},
    options?: RequestOptions,
  ): Promise<WithMeta<Message> | Stream<Message>> {
    return this._generate<Message>(
      path`/api/v1/conversations/${conversationId}/messages/${messageId}/regenerate`,
      params,
      options,
    );
  }
}
