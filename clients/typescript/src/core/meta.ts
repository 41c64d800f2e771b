/**
 * What a response says beside its body: the rate-limit headers and the HTTP details.
 * Every object, array, page and stream the SDK returns carries them as two
 * non-enumerable, read-only properties, `rateLimit` and `response` (so they stay out of
 * `JSON.stringify`, spreads and `Object.keys`, and the body reads exactly as sent).
 *
 * @module
 */

/** `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` of a response. */
export interface RateLimit {
  /** Requests allowed per minute by the account's plan. */
  limit: number;
  /** Requests left in the current window. */
  remaining: number;
  /** When the window resets, in epoch seconds. */
  reset: number;
}

/** The HTTP side of a response. */
export interface ResponseInfo {
  /** The HTTP status (200, 201, 202, 204). */
  status: number;
  /** All response headers. */
  headers: Headers;
  /** The URL that answered. */
  url: string;
  /** `X-Request-Id`, the id the server logs the request under. */
  requestId: string | null;
  /** True when the server replayed a stored answer for a reused `Idempotency-Key`. */
  idempotentReplayed: boolean;
}

/** The two properties every returned value carries (non-enumerable). */
export interface ResponseMeta {
  /** The rate-limit headers of the response; null when it had none. */
  readonly rateLimit: RateLimit | null;
  /** Status and headers of the response. */
  readonly response: ResponseInfo;
}

/** A value as the SDK returns it: the body, plus {@link ResponseMeta}. */
export type WithMeta<T> = T & ResponseMeta;

/** Reads `X-RateLimit-*`; null unless all three are there and numeric. */
export function parseRateLimit(headers: Headers): RateLimit | null {
  const limit = Number(headers.get("x-ratelimit-limit") ?? NaN);
  const remaining = Number(headers.get("x-ratelimit-remaining") ?? NaN);
  const reset = Number(headers.get("x-ratelimit-reset") ?? NaN);
  if (![limit, remaining, reset].every(Number.isFinite)) return null;
  return { limit, remaining, reset };
}

/** The {@link ResponseInfo} of a fetch `Response`. */
export function responseInfo(response: Response): ResponseInfo {
  return {
    status: response.status,
    headers: response.headers,
    url: response.url,
    requestId: response.headers.get("x-request-id"),
    idempotentReplayed: response.headers.get("idempotent-replayed") === "true",
  };
}

/**
 * Attaches `rateLimit` and `response` to `value` as non-enumerable, read-only properties
 * and returns it typed as {@link WithMeta}.
 */
export function withMeta<T extends object>(value: T, info: ResponseInfo): WithMeta<T> {
  Object.defineProperties(value, {
    rateLimit: { value: parseRateLimit(info.headers), enumerable: false, configurable: true },
    response: { value: info, enumerable: false, configurable: true },
  });
  return value as WithMeta<T>;
}
