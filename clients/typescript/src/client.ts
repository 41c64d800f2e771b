/**
 * The client: its settings, and one property per resource.
 *
 * @module
 */

import { env } from "./core/platform.js";
import { Transport } from "./core/transport.js";
import { PersonaeError } from "./errors.js";
import { Agents } from "./resources/agents.js";
import { Characters } from "./resources/characters.js";
import { Chat } from "./resources/chat.js";
import { Completions } from "./resources/completions.js";
import { Conversations } from "./resources/conversations.js";
import { Favorites } from "./resources/favorites.js";
import { Images } from "./resources/images.js";
import { Messages } from "./resources/messages.js";
import { Models } from "./resources/models.js";
import { User } from "./resources/user.js";
import { Webhooks } from "./resources/webhooks.js";

/** The settings of a {@link Personae} client. */
export interface ClientOptions {
  /** The API key. Default: `PERSONAE_API_KEY` from the environment, where there is one. */
  apiKey?: string;
  /** The server's base URL. Default: `PERSONAE_BASE_URL`, else `http://127.0.0.1:8000`. */
  baseURL?: string;
  /** Milliseconds before one attempt of a request is given up. Default 600 000 (10 minutes). */
  timeout?: number;
  /** Retries of a failed request (429, 5xx, connection errors). Default 2. */
  maxRetries?: number;
  /** The `fetch` to use. Default: the platform's global `fetch`. */
  fetch?: typeof fetch;
  /** Headers sent with every request. */
  defaultHeaders?: Record<string, string>;
}

/** The default base URL: a server started with `personae serve` on this machine. */
export const DEFAULT_BASE_URL = "http://127.0.0.1:8000";
/** The default timeout of one attempt, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 600_000;
/** The default number of retries. */
export const DEFAULT_MAX_RETRIES = 2;

/**
 * A client of a Personae server, for both of its dialects: the characters API (`/v1`:
 * {@link Personae.characters}, {@link Personae.chat}, {@link Personae.favorites},
 * {@link Personae.user}, {@link Personae.webhooks}) and the agents API (`/api/v1`:
 * {@link Personae.agents}, {@link Personae.conversations}, {@link Personae.messages},
 * {@link Personae.completions}, {@link Personae.images}, {@link Personae.models}).
 *
 * @example
 * ```ts
 * import { Personae } from "personae";
 * const client = new Personae({ apiKey: process.env.PERSONAE_API_KEY });
 * const me = await client.user.me();
 * ```
 */
export class Personae {
  /** The public catalogue, and one's own characters (`/v1/characters`). */
  readonly characters: Characters;
  /** Chat with characters, its conversations and messages (`/v1/chat`). */
  readonly chat: Chat;
  /** One's favorite characters (`/v1/user/favorites`). */
  readonly favorites: Favorites;
  /** The authenticated account (`/v1/user/me`). */
  readonly user: User;
  /** Webhooks (`/v1/webhooks`), and verifying their deliveries. */
  readonly webhooks: Webhooks;
  /** One's agents (`/api/v1/agents`). */
  readonly agents: Agents;
  /** Conversations of the agents API (`/api/v1/conversations`). */
  readonly conversations: Conversations;
  /** Messages of the agents API (`/api/v1/conversations/{id}/messages`). */
  readonly messages: Messages;
  /** Stateless completions (`/api/v1/completions`). */
  readonly completions: Completions;
  /** Image generation (`/api/v1/images`). */
  readonly images: Images;
  /** The enabled models (`/api/v1/models`). */
  readonly models: Models;

  /** The base URL requests go to (without a trailing slash). */
  readonly baseURL: string;
  /** Milliseconds before one attempt is given up. */
  readonly timeout: number;
  /** Retries of a failed request. */
  readonly maxRetries: number;

  /**
   * @throws {@link PersonaeError} when there is no API key (neither `apiKey` nor
   * `PERSONAE_API_KEY`), or no `fetch` on this platform.
   */
  constructor(options: ClientOptions = {}) {
    const apiKey = options.apiKey ?? env("PERSONAE_API_KEY");
    if (!apiKey) {
      throw new PersonaeError(
        "No API key: pass `new Personae({ apiKey })` or set the PERSONAE_API_KEY environment variable " +
          "(`personae accounts create --username NAME` prints one)",
      );
    }
    const fetchImpl = options.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (typeof fetchImpl !== "function") {
      throw new PersonaeError(
        "No fetch on this platform (Node 18+ and browsers have one): pass `fetch` in the options",
      );
    }
    this.baseURL = (options.baseURL ?? env("PERSONAE_BASE_URL") ?? DEFAULT_BASE_URL).replace(/\/+$/, "");
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
    this.maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
    if (!(this.timeout > 0)) throw new RangeError("timeout must be a positive number of milliseconds");
    if (!Number.isInteger(this.maxRetries) || this.maxRetries < 0) {
      throw new RangeError("maxRetries must be a whole number, 0 or more");
    }

    const transport = new Transport({
      apiKey,
      baseURL: this.baseURL,
      timeout: this.timeout,
      maxRetries: this.maxRetries,
      // The global fetch must be called unbound from its owner (browsers throw otherwise).
      fetch: options.fetch ?? ((input, init) => fetchImpl(input, init)),
      defaultHeaders: { ...options.defaultHeaders },
    });
    this.characters = new Characters(transport);
    this.chat = new Chat(transport);
    this.favorites = new Favorites(transport);
    this.user = new User(transport);
    this.webhooks = new Webhooks(transport);
    this.agents = new Agents(transport);
    this.conversations = new Conversations(transport);
    this.messages = new Messages(transport);
    this.models = new Models(transport);
    this.completions = new Completions(transport, this.models);
    this.images = new Images(transport);
  }
}
