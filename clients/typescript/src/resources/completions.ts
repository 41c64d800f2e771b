import type { WithMeta } from "../core/meta.js";
import { APIResource } from "../core/resource.js";
import type { RequestOptions, Transport } from "../core/transport.js";
import { PersonaeError } from "../errors.js";
import type { Stream } from "../streaming.js";
import type { CompletionCreateBody, Message } from "../types.js";
import type { Models } from "./models.js";

/** `completions.create`: `messages`, and optionally `llm_id` (default: the default model),
 * `agent_id` (whose persona becomes the system message), `stream` and the turn options. */
export type CompletionCreateParams = Omit<CompletionCreateBody, "llm_id"> & { llm_id?: string };

/** Stateless completions (`POST /api/v1/completions`): nothing is stored but usage. */
export class Completions extends APIResource {
  readonly #models: Models;

  /** @internal */
  constructor(transport: Transport, models: Models) {
    super(transport);
    this.#models = models;
  }

  /**
   * Generates an answer to `messages` (roles `user`, `agent`/`assistant`, `system`). The
   * server needs an `llm_id`: without one, the default model (the first that
   * `models.list({type: "llm"})` lists) is looked up first. With `stream: true`, returns a
   * {@link Stream}.
   */
  create(params: CompletionCreateParams & { stream: true }, options?: RequestOptions): Promise<Stream<Message>>;
  create(params: CompletionCreateParams & { stream?: false }, options?: RequestOptions): Promise<WithMeta<Message>>;
  create(params: CompletionCreateParams, options?: RequestOptions): Promise<WithMeta<Message> | Stream<Message>>;
  async create(params: CompletionCreateParams, options?: RequestOptions): Promise<WithMeta<Message> | Stream<Message>> {
    const llmId = params.llm_id ?? (await this.#defaultLlm(options));
    return this._generate<Message>("/api/v1/completions", { ...params, llm_id: llmId }, options);
  }

  async #defaultLlm(options: RequestOptions | undefined): Promise<string> {
    const models = await this.#models.list({ type: "llm" }, options);
    const first = models[0];
    if (!first) throw new PersonaeError("No language model is enabled on this server: pass llm_id");
    return first.id;
  }
}
