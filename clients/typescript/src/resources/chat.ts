import type { WithMeta } from "../core/meta.js";
import { APIResource, path, type CharactersAPIPage, type CharactersPageParams } from "../core/resource.js";
import type { RequestOptions, Transport } from "../core/transport.js";
import type { Stream } from "../streaming.js";
import type {
  ChatConversationsQuery,
  ChatMessage,
  ChatMessageCreateBody,
  ConversationDeleted,
  ConversationSummary,
  MessageDeleted,
  MessageEdit,
  RegenerateOptions,
} from "../types.js";

/** `chat.send`'s options: `conversation_id` (omit to start a conversation), `stream`,
 * `max_tokens`, `verbose`, `seed` and the sampling settings. */
export type ChatSendParams = Omit<ChatMessageCreateBody, "message">;

/** `chat.conversations.list`: `character_id`, `page`, `limit` (1–50). */
export type ChatConversationListParams = ChatConversationsQuery;

/** `chat.messages.list`: `page`, `limit` (1–100). */
export type ChatMessageListParams = CharactersPageParams;

/**
 * Chat with characters (the characters API, `/v1/chat`): sending messages, and the
 * conversations and messages that come of it.
 */
export class Chat extends APIResource {
  /** The caller's conversations with characters. */
  readonly conversations: ChatConversations;
  /** The messages of a conversation. */
  readonly messages: ChatMessages;

  /** @internal */
  constructor(transport: Transport) {
    super(transport);
    this.conversations = new ChatConversations(transport);
    this.messages = new ChatMessages(transport);
  }

  /**
   * Sends a message to a character and returns its answer
   * (`POST /v1/chat/{character_id}/messages`). Without `conversation_id` a conversation
   * starts (the answer's `conversation_id` names it). With `stream: true`, returns a
   * {@link Stream} of the answer's deltas and then the stored message.
   *
   * @example
   * ```ts
   * const reply = await client.chat.send(characterId, "Hello!", { max_tokens: 64 });
   * const stream = await client.chat.send(characterId, "And then?", {
   *   conversation_id: reply.conversation_id, stream: true,
   * });
   * for await (const event of stream) if (event.type === "delta") process.stdout.write(event.content);
   * ```
   */
  send(
    characterId: string,
    message: string,
    params: ChatSendParams & { stream: true },
    options?: RequestOptions,
  ): Promise<Stream<ChatMessage>>;
  send(
    characterId: string,
    message: string,
    params?: ChatSendParams & { stream?: false },
    options?: RequestOptions,
  ): Promise<WithMeta<ChatMessage>>;
  send(
    characterId: string,
    message: string,
    params?: ChatSendParams,
    options?: RequestOptions,
  ): Promise<WithMeta<ChatMessage> | Stream<ChatMessage>>;
  send(
    characterId: string,
    message: string,
    params: ChatSendParams = {},
    options?: RequestOptions,
  ): Promise<WithMeta<ChatMessage> | Stream<ChatMessage>> {
    return this._generate<ChatMessage>(path`/v1/chat/${characterId}/messages`, { ...params, message }, options);
  }
}

/** The caller's conversations with characters (`/v1/chat/conversations`). */
export class ChatConversations extends APIResource {
  /**
   * Lists conversations with a character and at least one message, newest activity
   * first (`GET /v1/chat/conversations`); `character_id` keeps one character's.
   */
  list(
    params: ChatConversationListParams = {},
    options?: RequestOptions,
  ): Promise<CharactersAPIPage<ConversationSummary>> {
    return this._charactersPage<ConversationSummary, ChatConversationListParams>(
      "/v1/chat/conversations",
      params,
      options,
    );
  }

  /** One conversation, as the list shows it (`GET /v1/chat/conversations/{id}`). */
  get(conversationId: string, options?: RequestOptions): Promise<WithMeta<ConversationSummary>> {
    return this._request<ConversationSummary>("GET", path`/v1/chat/conversations/${conversationId}`, { options });
  }

  /** Renames a conversation (`PATCH /v1/chat/conversations/{id}`). */
  update(
    conversationId: string,
    body: { title: string },
    options?: RequestOptions,
  ): Promise<WithMeta<ConversationSummary>> {
    return this._request<ConversationSummary>("PATCH", path`/v1/chat/conversations/${conversationId}`, {
      body,
      options,
    });
  }

  /** Deletes a conversation and its messages (`DELETE /v1/chat/conversations/{id}`). */
  delete(conversationId: string, options?: RequestOptions): Promise<WithMeta<ConversationDeleted>> {
    return this._request<ConversationDeleted>("DELETE", path`/v1/chat/conversations/${conversationId}`, { options });
  }

  /**
   * Starts a new conversation from this one's history up to and including `messageId`
   * (`POST /v1/chat/conversations/{id}/branch`).
   */
  branch(conversationId: string, messageId: string, options?: RequestOptions): Promise<WithMeta<ConversationSummary>> {
    return this._request<ConversationSummary>("POST", path`/v1/chat/conversations/${conversationId}/branch`, {
      body: { message_id: messageId },
      options,
    });
  }
}

/** The messages of a conversation (`/v1/chat/conversations/{id}/messages`). */
export class ChatMessages extends APIResource {
  /** Lists a conversation's messages, newest first (`GET …/messages`). */
  list(
    conversationId: string,
    params: ChatMessageListParams = {},
    options?: RequestOptions,
  ): Promise<CharactersAPIPage<ChatMessage>> {
    return this._charactersPage<ChatMessage, ChatMessageListParams>(
      path`/v1/chat/conversations/${conversationId}/messages`,
      params,
      options,
    );
  }

  /**
   * Edits a message (`{content}`) or chooses which of its versions it shows (`{selected}`,
   * an index of its `alternatives`) (`PATCH …/messages/{message_id}`).
   */
  update(
    conversationId: string,
    messageId: string,
    body: MessageEdit,
    options?: RequestOptions,
  ): Promise<WithMeta<ChatMessage>> {
    return this._request<ChatMessage>("PATCH", path`/v1/chat/conversations/${conversationId}/messages/${messageId}`, {
      body,
      options,
    });
  }

  /** Deletes a message (`DELETE …/messages/{message_id}`). */
  delete(conversationId: string, messageId: string, options?: RequestOptions): Promise<WithMeta<MessageDeleted>> {
    return this._request<MessageDeleted>(
      "DELETE",
      path`/v1/chat/conversations/${conversationId}/messages/${messageId}`,
      { options },
    );
  }

  /**
   * Answers the user's message before this character message again
   * (`POST …/messages/{message_id}/regenerate`): the answer becomes a new, selected
   * version, the earlier ones stay in `alternatives`. Takes the options of any turn;
   * with `stream: true`, returns a {@link Stream}.
   */
  regenerate(
    conversationId: string,
    messageId: string,
    params: RegenerateOptions & { stream: true },
    options?: RequestOptions,
  ): Promise<Stream<ChatMessage>>;
  regenerate(
    conversationId: string,
    messageId: string,
    params?: RegenerateOptions & { stream?: false },
    options?: RequestOptions,
  ): Promise<WithMeta<ChatMessage>>;
  regenerate(
    conversationId: string,
    messageId: string,
    params?: RegenerateOptions,
    options?: RequestOptions,
  ): Promise<WithMeta<ChatMessage> | Stream<ChatMessage>>;
  regenerate(
    conversationId: string,
    messageId: string,
    params: RegenerateOptions = {},
    options?: RequestOptions,
  ): Promise<WithMeta<ChatMessage> | Stream<ChatMessage>> {
    return this._generate<ChatMessage>(
      path`/v1/chat/conversations/${conversationId}/messages/${messageId}/regenerate`,
      params,
      options,
    );
  }
}
