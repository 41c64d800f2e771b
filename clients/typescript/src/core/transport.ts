/**
 * The HTTP layer: builds requests (auth, query, JSON or multipart bodies, an
 * `Idempotency-Key` on every POST), sends them with a timeout, retries what may be
 * retried (honouring `Retry-After`), and turns error answers into typed errors.
 *
 * @module
 */

import {
  APIConnectionError,
  APITimeoutError,
  APIUserAbortError,
  makeStatusError,
  parseRetryAfter,
  PersonaeError,
  type APIStatusError,
} from "../errors.js";
import { responseInfo, type ResponseInfo } from "./meta.js";
import { randomUUID } from "./platform.js";

/** Options every method takes as its last argument. */
export interface RequestOptions {
  /** Milliseconds before one attempt is given up ({@link APITimeoutError}). For a stream,
   * the time until its response starts. Default: the client's `timeout`. */
  timeout?: number;
  /** Retries after the first attempt. Default: the client's `maxRetries`. */
  maxRetries?: number;
  /** Aborts the request (and a stream being read): {@link APIUserAbortError}. */
  signal?: AbortSignal;
  /** The `Idempotency-Key` of a POST. By default each call makes a new one (a UUID) and
   * sends it on every retry of that call, so a retried POST never runs twice. */
  idempotencyKey?: string;
  /** Extra headers for this request. */
  headers?: Record<string, string>;
}

/** The settings of a {@link Transport}, resolved by the client. */
export interface TransportSettings {
  apiKey: string;
  baseURL: string;
  timeout: number;
  maxRetries: number;
  fetch: typeof fetch;
  defaultHeaders: Record<string, string>;
}

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** Query values: arrays are sent comma-separated; `undefined` and `null` are left out. */
export type Query = Record<string, string | number | boolean | readonly string[] | null | undefined>;

/**
 * A request body sent exactly as given, with its own `Content-Type` (for instance a JSON
 * document that must reach the server byte for byte, not re-serialized).
 */
export class RawBody {
  constructor(
    readonly data: string | Blob,
    readonly contentType: string,
  ) {}
}

/** One logical call (which may be sent more than once). */
export interface APIRequest {
  method: HttpMethod;
  path: string;
  query?: Query | undefined;
  /** A JSON value, a `FormData` sent as multipart/form-data, or a {@link RawBody}. */
  body?: unknown;
  /** The `Accept` header, when not the default (`application/json`, or for a stream
   * `text/event-stream`). */
  accept?: string | undefined;
  /** Ask for `text/event-stream` and hand back the response unread. */
  stream?: boolean;
  options?: RequestOptions | undefined;
}

/** A successful answer whose body was read (parsed JSON, or null for no content). */
export interface APIResult<T> {
  data: T;
  info: ResponseInfo;
}

/** A successful answer whose body is still to be read (a stream). */
export interface APIStreamResult {
  response: Response;
  info: ResponseInfo;
  /** Aborts the body being read. */
  controller: AbortController;
}

/** A successful answer whose body was read as bytes (a file). */
export interface APIBytesResult {
  data: Uint8Array<ArrayBuffer>;
  info: ResponseInfo;
}

/** How an attempt reads a successful answer: as text (JSON), as bytes, or not (a stream). */
type ReadMode = "text" | "bytes" | "stream";

/** What one attempt got: the response and, unless it is a stream, its whole body (as
 * `bytes` when a successful answer was asked for as bytes, else as `text`). */
interface Attempt {
  response: Response;
  controller: AbortController;
  text: string | undefined;
  bytes?: Uint8Array<ArrayBuffer> | undefined;
}

/** `Retry-After` above this many seconds is not waited for: the error is thrown. */
export const MAX_RETRY_AFTER_SECONDS = 60;
const INITIAL_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 8_000;
const RETRYABLE_STATUSES = new Set([429, 500, 502, 503, 504]);

/** Sends requests; one per client. */
export class Transport {
  constructor(private readonly settings: TransportSettings) {}

  /** Sends `request` and parses its JSON answer. */
  async json<T>(request: APIRequest): Promise<APIResult<T>> {
    const { info, text } = await this.send(request, "text");
    return { data: parseJson(text ?? "", info.headers) as T, info };
  }

  /** Sends `request` and returns its answer's body as bytes (an error answer is read as
   * usual, into the typed error). */
  async bytes(request: APIRequest): Promise<APIBytesResult> {
    const { info, bytes } = await this.send(request, "bytes");
    return { data: bytes ?? new Uint8Array(0), info };
  }

  /** Sends `request` and returns the response as it starts (for Server-Sent Events). */
  async stream(request: APIRequest): Promise<APIStreamResult> {
    const { response, info, controller } = await this.send(request, "stream");
    return { response, info, controller };
  }

  /** The retry loop around {@link Transport.attempt}: a successful answer, or the error. */
  private async send(request: APIRequest, mode: ReadMode): Promise<Attempt & { info: ResponseInfo }> {
    const options = request.options ?? {};
    const maxRetries = options.maxRetries ?? this.settings.maxRetries;
    // One key per logical call, sent again on each retry: the server then answers a retry
    // of a POST that did run with the first answer, instead of running it twice.
    const idempotencyKey = request.method === "POST" ? (options.idempotencyKey ?? (await randomUUID())) : undefined;
    const url = this.url(request.path, request.query);

    for (let attempt = 0; ; attempt++) {
      const init = this.init(request, mode === "stream", idempotencyKey);
      let outcome: Attempt;
      try {
        outcome = await this.attempt(url, init, options, mode);
      } catch (error) {
        if (error instanceof APIUserAbortError || attempt >= maxRetries) throw error;
        await sleep(backoff(attempt), options.signal);
        continue;
      }
      const { response, text } = outcome;
      if (response.ok) return { ...outcome, info: responseInfo(response) };

      const body = parseErrorBody(text ?? "", response.headers);
      const error = makeStatusError(response.status, body, response.headers);
      const delay = retryDelay(error, attempt, maxRetries);
      if (delay === null) throw error;
      await sleep(delay, options.signal);
    }
  }

  /** One attempt: fetch with the timeout, and (unless streaming) the whole body read. */
  private async attempt(url: string, init: RequestInit, options: RequestOptions, mode: ReadMode): Promise<Attempt> {
    const controller = new AbortController();
    const timeoutMs = options.timeout ?? this.settings.timeout;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const userSignal = options.signal;
    const onUserAbort = (): void => controller.abort();
    if (userSignal?.aborted) controller.abort();
    userSignal?.addEventListener("abort", onUserAbort, { once: true });
    let streaming = false;
    try {
      const response = await this.settings.fetch(url, { ...init, signal: controller.signal });
      // A stream is read later (and may be long): the timeout covers its start only, the
      // caller's signal stays linked to it. An error answer is read here like any other.
      if (mode === "stream" && response.ok) {
        streaming = true;
        return { response, controller, text: undefined };
      }
      if (mode === "bytes" && response.ok) {
        return { response, controller, text: undefined, bytes: new Uint8Array(await response.arrayBuffer()) };
      }
      return { response, controller, text: await response.text() };
    } catch (error) {
      if (userSignal?.aborted) throw new APIUserAbortError(undefined, { cause: error });
      if (timedOut) throw new APITimeoutError(`Request timed out after ${timeoutMs} ms`, { cause: error });
      if (error instanceof PersonaeError) throw error;
      throw new APIConnectionError(`Connection error: ${describe(error)}`, { cause: error });
    } finally {
      clearTimeout(timer);
      if (!streaming) userSignal?.removeEventListener("abort", onUserAbort);
    }
  }

  private init(request: APIRequest, stream: boolean, idempotencyKey: string | undefined): RequestInit {
    const headers: Record<string, string> = {
      Accept: request.accept ?? (stream ? "text/event-stream" : "application/json"),
      ...this.settings.defaultHeaders,
      Authorization: `Bearer ${this.settings.apiKey}`,
    };
    if (idempotencyKey !== undefined) headers["Idempotency-Key"] = idempotencyKey;
    let body: BodyInit | undefined;
    if (request.body instanceof FormData) {
      body = request.body; // fetch sets multipart/form-data with its boundary
    } else if (request.body instanceof RawBody) {
      headers["Content-Type"] = request.body.contentType;
      body = request.body.data;
    } else if (request.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(request.body);
    }
    Object.assign(headers, request.options?.headers);
    return body === undefined ? { method: request.method, headers } : { method: request.method, headers, body };
  }

  private url(path: string, query: Query | undefined): string {
    const url = this.settings.baseURL + path;
    if (!query) return url;
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value === undefined || value === null) continue;
      params.set(name, Array.isArray(value) ? value.join(",") : String(value));
    }
    const search = params.toString();
    return search ? `${url}?${search}` : url;
  }
}

/**
 * Milliseconds to wait before retrying after `error`, or null not to retry: only 429,
 * 500/502/503/504 and 409 `idempotency_key_in_use` are retried, `maxRetries` times at
 * most. `Retry-After` is honoured exactly; above {@link MAX_RETRY_AFTER_SECONDS} (a spent
 * monthly quota, a per-account cap) the error is thrown at once.
 */
export function retryDelay(error: APIStatusError, attempt: number, maxRetries: number): number | null {
  if (attempt >= maxRetries) return null;
  const retryable =
    RETRYABLE_STATUSES.has(error.status) || (error.status === 409 && error.code === "idempotency_key_in_use");
  if (!retryable) return null;
  const retryAfter = parseRetryAfter(error.headers);
  if (retryAfter !== null) return retryAfter > MAX_RETRY_AFTER_SECONDS ? null : retryAfter * 1000;
  return backoff(attempt);
}

/** Exponential backoff: 0.5 s × 2^attempt, at most 8 s, less up to a quarter at random. */
export function backoff(attempt: number): number {
  const base = Math.min(INITIAL_BACKOFF_MS * 2 ** attempt, MAX_BACKOFF_MS);
  return base * (1 - Math.random() * 0.25);
}

/**
 * Waits `ms` milliseconds, never less (a timer that fires early is set again for the rest),
 * or rejects with {@link APIUserAbortError} when `signal` aborts.
 */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  const deadline = performance.now() + ms;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new APIUserAbortError());
    let timer: ReturnType<typeof setTimeout>;
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new APIUserAbortError());
    };
    const wake = (): void => {
      const left = deadline - performance.now();
      if (left > 0) {
        timer = setTimeout(wake, Math.ceil(left));
        return;
      }
      signal?.removeEventListener("abort", onAbort);
      resolve();
    };
    timer = setTimeout(wake, Math.ceil(ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function parseJson(text: string, headers: Headers): unknown {
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch (error) {
    const type = headers.get("content-type") ?? "none";
    throw new PersonaeError(`Expected JSON from the server (Content-Type: ${type}), got: ${text.slice(0, 200)}`, {
      cause: error,
    });
  }
}

function parseErrorBody(text: string, headers: Headers): unknown {
  if ((headers.get("content-type") ?? "").includes("json")) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}
