/**
 * Streamed generation (`"stream": true`): a Server-Sent Events parser, and {@link Stream},
 * the async iterable of a turn's deltas and its final message.
 *
 * The server sends `event: delta` / `data: {"content": "…"}` for each piece of the answer,
 * then one `event: message` whose data is the stored message exactly as the non-streaming
 * call returns it, or, if the turn fails after the stream started, one `event: error`
 * whose data is the dialect's error body.
 *
 * @module
 */

import { APIConnectionError, APIUserAbortError, makeStatusError, PersonaeError, readErrorBody } from "./errors.js";
import { parseRateLimit, withMeta, type RateLimit, type ResponseInfo, type WithMeta } from "./core/meta.js";
import type { APIStreamResult } from "./core/transport.js";

/** One Server-Sent Event. */
export interface ServerSentEvent {
  /** The `event:` field (`message` when absent). */
  event: string;
  /** The `data:` lines, joined with line feeds. */
  data: string;
  /** The `id:` field, when given. */
  id?: string;
}

/**
 * Parses a `text/event-stream` body per the HTML standard: lines end with CRLF, LF or CR
 * (wherever the chunks are cut, a CRLF split between two included), `data:` lines join
 * with line feeds, comments (`:`) are skipped, and an event is dispatched at a blank line
 * (an event the stream ends inside of is dropped, as the standard says).
 */
export async function* parseSSE(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  let first = true;
  let event = "";
  let data: string[] = [];
  let id: string | undefined;

  function* lines(final: boolean): Generator<string> {
    let start = 0;
    for (let i = 0; i < buffer.length; i++) {
      const char = buffer[i];
      if (char !== "\n" && char !== "\r") continue;
      if (char === "\r" && i + 1 === buffer.length && !final) break; // a LF may follow
      yield buffer.slice(start, i);
      if (char === "\r" && buffer[i + 1] === "\n") i++;
      start = i + 1;
    }
    buffer = buffer.slice(start);
  }

  function field(line: string): ServerSentEvent | undefined {
    if (line === "") {
      const dispatched = data.length
        ? { event: event || "message", data: data.join("\n"), ...(id !== undefined ? { id } : {}) }
        : undefined;
      event = "";
      data = [];
      return dispatched;
    }
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") event = value;
    else if (name === "data") data.push(value);
    else if (name === "id" && !value.includes("\0")) id = value;
    return undefined;
  }

  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      if (first && buffer.length) {
        if (buffer.charCodeAt(0) === 0xfeff) buffer = buffer.slice(1);
        first = false;
      }
      for (const line of lines(done)) {
        const dispatched = field(line);
        if (dispatched) yield dispatched;
      }
      if (done) {
        finished = true;
        return;
      }
    }
  } finally {
    // Left early (the consumer stopped, or an error): the rest of the body is not wanted.
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/** What a {@link Stream} yields: the pieces of the answer, then the stored message. */
export type StreamEvent<M> = { type: "delta"; content: string } | { type: "message"; message: WithMeta<M> };

/**
 * A streamed turn. Iterate it with `for await` to get `{type: "delta", content}` events as
 * the answer is generated, then one `{type: "message", message}` with the stored message;
 * or await {@link Stream.finalMessage} or {@link Stream.text}. An `error` event is thrown
 * from the iteration as the typed error ({@link APIStatusError} and its subclasses).
 *
 * A stream can be read once. Leaving the loop early (`break`, an exception) or calling
 * {@link Stream.abort} closes the connection, which stops the generation on the server
 * (nothing is stored for the turn).
 *
 * `rateLimit` and `response` hold the rate-limit headers and the HTTP details of the
 * response that carries the stream.
 */
export class Stream<M> implements AsyncIterable<StreamEvent<M>> {
  readonly #result: APIStreamResult;
  #started = false;
  #finished = false;
  #text = "";
  #message: WithMeta<M> | undefined;

  /** @internal */
  constructor(result: APIStreamResult) {
    this.#result = result;
  }

  /** The rate-limit headers of the response. */
  get rateLimit(): RateLimit | null {
    return parseRateLimit(this.#result.info.headers);
  }

  /** Status and headers of the response. */
  get response(): ResponseInfo {
    return this.#result.info;
  }

  /** The controller whose `abort()` closes the stream. */
  get controller(): AbortController {
    return this.#result.controller;
  }

  /** Closes the connection: the server stops generating and stores nothing for the turn. */
  abort(): void {
    this.#result.controller.abort();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<StreamEvent<M>> {
    if (this.#started) throw new PersonaeError("This stream is being read or was read already");
    this.#started = true;
    const body = this.#result.response.body;
    if (!body) throw new APIConnectionError("The response has no body to stream");
    try {
      for await (const sse of parseSSE(body)) {
        if (this.#message !== undefined) continue; // nothing follows the message; read to the end
        if (sse.event === "delta") {
          const content = String((parseData(sse) as { content?: unknown }).content ?? "");
          this.#text += content;
          yield { type: "delta", content };
        } else if (sse.event === "message") {
          this.#message = withMeta(parseData(sse) as M & object, this.#result.info) as WithMeta<M>;
          yield { type: "message", message: this.#message };
        } else if (sse.event === "error") {
          const body = parseData(sse);
          const { status } = readErrorBody(0, body);
          throw makeStatusError(status, body, this.#result.info.headers);
        }
      }
      if (this.#message === undefined) {
        throw new APIConnectionError("The stream ended before its final message");
      }
      this.#finished = true;
    } catch (error) {
      if (this.#result.controller.signal.aborted && !(error instanceof PersonaeError)) {
        throw new APIUserAbortError("The stream was aborted", { cause: error });
      }
      if (error instanceof PersonaeError) throw error;
      throw new APIConnectionError(`The stream was cut: ${(error as Error).message ?? error}`, { cause: error });
    } finally {
      if (!this.#finished) this.#result.controller.abort();
    }
  }

  /** The pieces of text as they come (the deltas' content only). */
  async *textStream(): AsyncGenerator<string> {
    for await (const event of this) {
      if (event.type === "delta") yield event.content;
    }
  }

  /**
   * Reads the stream to its end (or what is left of it) and returns the stored message,
   * exactly as the non-streaming call returns it.
   */
  async finalMessage(): Promise<WithMeta<M>> {
    await this.#drain();
    if (this.#message === undefined) throw new PersonaeError("The stream ended without its message");
    return this.#message;
  }

  /** Reads the stream to its end and returns the whole text: the deltas joined. */
  async text(): Promise<string> {
    await this.#drain();
    return this.#text;
  }

  async #drain(): Promise<void> {
    if (this.#started) {
      if (this.#message === undefined && !this.#finished) {
        throw new PersonaeError("This stream is being read elsewhere; read its message there");
      }
      return;
    }
    for await (const event of this) void event;
  }
}

function parseData(event: ServerSentEvent): unknown {
  try {
    return JSON.parse(event.data);
  } catch (error) {
    throw new PersonaeError(`Malformed ${event.event} event: ${event.data.slice(0, 200)}`, { cause: error });
  }
}
