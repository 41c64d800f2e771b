/**
 * Personae's TypeScript SDK: `new Personae({ apiKey })`, one property per resource of
 * both dialects, typed from the server's OpenAPI document.
 *
 * @packageDocumentation
 */

export { Personae, DEFAULT_BASE_URL, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_MS, type ClientOptions } from "./client.js";
export {
  PersonaeError,
  APIConnectionError,
  APITimeoutError,
  APIUserAbortError,
  APIStatusError,
  BadRequestError,
  AuthenticationError,
  PaymentRequiredError,
  PermissionDeniedError,
  NotFoundError,
  ConflictError,
  RateLimitError,
  InternalServerError,
  WebhookVerificationError,
  ImageFailedError,
} from "./errors.js";
export type { RateLimit, ResponseInfo, ResponseMeta, WithMeta } from "./core/meta.js";
export type { RequestOptions } from "./core/transport.js";
export { Page, type ArrayPagination, type CharactersPagination, type ImagesPagination } from "./pagination.js";
export type {
  ArrayPage,
  CharactersAPIPage,
  ImagesAPIPage,
  AgentsPageParams,
  CharactersPageParams,
} from "./core/resource.js";
export { Stream, parseSSE, type ServerSentEvent, type StreamEvent } from "./streaming.js";
export { verifyWebhook, type VerifyOptions, type WebhookEvent, type WebhookHeaders } from "./webhook-verify.js";

export {
  Characters,
  type CardExportParams,
  type CardFile,
  type CardImportOptions,
  type CardInput,
  type CharacterCard,
  type CharacterCardData,
  type CharacterCreateParams,
  type CharacterListParams,
  type CharacterUpdateParams,
  type ImageInput,
  type JsonCardFile,
  type LorebookState,
} from "./resources/characters.js";
export {
  Chat,
  ChatConversations,
  ChatMessages,
  type ChatConversationListParams,
  type ChatMessageListParams,
  type ChatSendParams,
} from "./resources/chat.js";
export { Favorites, type FavoriteListParams } from "./resources/favorites.js";
export { User } from "./resources/user.js";
export { Webhooks, type WebhookListParams } from "./resources/webhooks.js";
export { Agents, type AgentListParams } from "./resources/agents.js";
export { Conversations, type ConversationListParams } from "./resources/conversations.js";
export { Messages, type MessageListParams, type MessageSendParams } from "./resources/messages.js";
export { Completions, type CompletionCreateParams } from "./resources/completions.js";
export { Images, type ImageGenerateParams, type ImageListParams, type ImageWaitParams } from "./resources/images.js";
export { Models } from "./resources/models.js";

export type * from "./types.js";

import { Personae } from "./client.js";
export default Personae;
