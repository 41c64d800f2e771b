/**
 * Names for the request and response types of the server's OpenAPI document. Everything
 * here is derived from `src/generated/openapi.ts`, which the build generates from the
 * server's own code (`npm run generate`): a field the server adds, renames or constrains
 * shows here at the next build, and a mismatch with the hand-written layer fails it.
 *
 * @module
 */

import type { components, paths } from "./generated/openapi.js";

export type { components, paths, operations } from "./generated/openapi.js";

type Schemas = components["schemas"];

/** The JSON request body of an operation. */
export type JsonBody<Path extends keyof paths, Method extends keyof paths[Path]> = paths[Path][Method] extends {
  requestBody?: { content: { "application/json": infer Body } };
}
  ? Body
  : never;

/** The query parameters of an operation. */
export type QueryOf<Path extends keyof paths, Method extends keyof paths[Path]> = paths[Path][Method] extends {
  parameters: { query?: infer Q };
}
  ? NonNullable<Q>
  : never;

// The characters API (/v1)

/** A character as `GET /v1/characters/{id}` shows it (also what create and update answer). */
export type Character = Schemas["CharacterDetail"];
/** A character in the catalogue (`GET /v1/characters`). */
export type CharacterSummary = Schemas["CharacterSummary"];
/** The JSON body of `POST /v1/characters`. */
export type CharacterCreateBody = JsonBody<"/v1/characters", "post">;
/** The JSON body of `PATCH /v1/characters/{id}`. */
export type CharacterUpdateBody = JsonBody<"/v1/characters/{character_id}", "patch">;
/** The catalogue's query: `page`, `limit`, `tags`, `sort`, `cursor`. */
export type CatalogueQuery = QueryOf<"/v1/characters", "get">;
/** `popular`, `trending` or `newest`. */
export type CatalogueSort = Schemas["CatalogueSort"];
/** The answer of like and unlike. */
export type LikeState = Schemas["LikeState"];
/** The answer of the characters API's deletes of a character and of a favorite. */
export type Done = Schemas["Done"];
/** `public` or `private`. */
export type Visibility = Schemas["Visibility"];

/** The answer of `GET`/`PUT /v1/characters/{id}/lorebook`, as the server describes it
 * (`lorebook` a plain object or null; the resource types it as {@link Lorebook}). */
export type LorebookOut = Schemas["LorebookOut"];
/** A lorebook (a Character Card's `character_book`): the body of
 * `PUT /v1/characters/{id}/lorebook`. Unknown fields are allowed and kept. */
export type Lorebook = JsonBody<"/v1/characters/{character_id}/lorebook", "put">;
/** One entry of a {@link Lorebook}: `keys` and `content`, and the optional fields. */
export type LorebookEntry = Lorebook["entries"][number];
/** The query of `GET /v1/characters/{id}/card`: `format` (`png`, `json`, `charx`) and `spec` (`v2`, `v3`). */
export type CardExportQuery = QueryOf<"/v1/characters/{character_id}/card", "get">;

/** A chat message of the characters API (`is_character` tells who spoke). */
export type ChatMessage = Schemas["ChatMessageOut"];
/** The body of `POST /v1/chat/{character_id}/messages`. */
export type ChatMessageCreateBody = Schemas["ChatMessageCreate"];
/** A conversation as the characters API lists it: with its character and last message. */
export type ConversationSummary = Schemas["ConversationSummary"];
/** The query of `GET /v1/chat/conversations`. */
export type ChatConversationsQuery = QueryOf<"/v1/chat/conversations", "get">;
/** The answer of `DELETE /v1/chat/conversations/{id}`. */
export type ConversationDeleted = Schemas["ConversationDeleted"];
/** The answer of `DELETE /v1/chat/conversations/{id}/messages/{message_id}`. */
export type MessageDeleted = Schemas["MessageDeleted"];
/** The body of a message edit (either dialect): exactly one of `content` or `selected`. */
export type MessageEdit = Schemas["MessageEdit"];
/** The options of a regeneration (either dialect): `stream`, `max_tokens`, sampling, `llm_id`, … */
export type RegenerateOptions = Schemas["RegenerateOptions"];
/** One version of a message with several (`alternatives`). */
export type MessageVersion = Schemas["MessageVersion"];

/** A favorite (`GET /v1/user/favorites`). */
export type FavoriteItem = Schemas["FavoriteItem"];
/** The answer of `POST /v1/user/favorites/{character_id}`. */
export type FavoriteAdded = Schemas["FavoriteAdded"];
/** The authenticated account (`GET /v1/user/me`). */
export type UserMe = Schemas["UserMe"];

/** A webhook (without its secret). */
export type Webhook = Schemas["WebhookOut"];
/** A webhook as created or rotated: the only answers that show its `secret`. */
export type WebhookWithSecret = Schemas["WebhookWithSecret"];
/** The body of `POST /v1/webhooks`. */
export type WebhookCreateBody = Schemas["WebhookCreate"];
/** The body of `PATCH /v1/webhooks/{id}`. */
export type WebhookUpdateBody = Schemas["WebhookUpdate"];
/** The answer of `DELETE /v1/webhooks/{id}`. */
export type WebhookDeleted = Schemas["WebhookDeleted"];
/** One delivery of the delivery log. */
export type WebhookDelivery = Schemas["DeliveryOut"];

// The agents API (/api/v1)

/** An agent (the agents API's view of a character). */
export type Agent = Schemas["AgentOut"];
/** The body of `POST /api/v1/agents`. */
export type AgentCreateBody = Schemas["AgentCreate"];
/** The body of `PATCH /api/v1/agents/{id}`. */
export type AgentUpdateBody = Schemas["AgentUpdate"];
/** A conversation of the agents API. */
export type Conversation = Schemas["ConversationOut"];
/** The body of `POST /api/v1/conversations`. */
export type ConversationCreateBody = Schemas["ConversationCreate"];
/** The body of `PATCH /api/v1/conversations/{id}`: `title` and/or `system_prompt`. */
export type ConversationUpdateBody = Schemas["ConversationUpdate"];
/** A message of the agents API (`role` tells who spoke). */
export type Message = Schemas["MessageOut"];
/** The body of `POST /api/v1/conversations/{id}/messages`. */
export type MessageCreateBody = Schemas["MessageCreate"];
/** The body of `POST /api/v1/completions`. */
export type CompletionCreateBody = Schemas["CompletionRequest"];
/** One message of a completion's input. */
export type InputMessage = Schemas["InputMessage"];
/** An image job and, once completed, its `url`. */
export type Image = Schemas["ImageOut"];
/** The body of `POST /api/v1/images` (`async` is set by the SDK from `wait`). */
export type ImageCreateBody = Schemas["ImageCreate"];
/** A model (`llm` or `sd`). */
export type Model = Schemas["ModelOut"];
/** `llm` or `sd`. */
export type ModelType = Schemas["ModelType"];

/** An error body of the agents API. */
export type AgentsErrorBody = Schemas["AgentsError"];
/** An error body of the characters API. */
export type CharactersErrorBody = Schemas["CharactersError"];
