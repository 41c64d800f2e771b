/**
 * The SDK's errors. Everything it throws on purpose is a {@link PersonaeError}:
 *
 * - {@link APIConnectionError} (and {@link APITimeoutError}): no HTTP answer came back;
 * - {@link APIStatusError} and its subclasses by status: the server answered an error, in
 *   either dialect's shape (`{"error": "message"}` or `{"error": {code, message, status, details}}`);
 * - {@link WebhookVerificationError}: a webhook delivery failed verification;
 * - {@link ImageFailedError}: an image job ended without an image.
 *
 * @module
 */

import { parseRateLimit, type RateLimit } from "./core/meta.js";

/** The base class of every error the SDK throws on purpose. */
export class PersonaeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** No HTTP answer came back: the connection failed, was reset, or the request was cut. */
export class APIConnectionError extends PersonaeError {
  constructor(message = "Connection error", options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The request took longer than its `timeout`. */
export class APITimeoutError extends APIConnectionError {
  constructor(message = "Request timed out", options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The caller aborted the request through its `signal`. Never retried. */
export class APIUserAbortError extends PersonaeError {
  constructor(message = "Request was aborted", options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** An error body of either dialect, as received. */
export type ErrorBody =
  | { error: string }
  | { error: { code: string; message: string; status: number; details?: Record<string, unknown> } }
  | unknown;

/**
 * The server answered with an error status. Subclasses name the common statuses; `code`
 * is the characters API's error code (`not_found`, `premium_required`, …), or for the
 * agents API (whose errors carry only a message) the code that status has there.
 */
export class APIStatusError extends PersonaeError {
  /** The HTTP status (for an `error` event of a stream, the status it reports). */
  readonly status: number;
  /** The error code: the characters API's own, or derived from the status and message. */
  readonly code: string;
  /** The characters API's `details` (which field, which limit); `{}` in the agents API. */
  readonly details: Record<string, unknown>;
  /** The response headers (empty for an error that arrived inside a stream). */
  readonly headers: Headers;
  /** The parsed error body as received, or its text when it was not JSON. */
  readonly body: unknown;
  /** `X-RateLimit-*` of the response, when it carried them. */
  readonly rateLimit: RateLimit | null;
  /** The `X-Request-Id` of the response, for support and logs. */
  readonly requestId: string | null;

  constructor(status: number, body: unknown, headers: Headers, message?: string) {
    const parsed = readErrorBody(status, body);
    super(message ?? parsed.message);
    this.status = status;
    this.code = parsed.code;
    this.details = parsed.details;
    this.headers = headers;
    this.body = body;
    this.rateLimit = parseRateLimit(headers);
    this.requestId = headers.get("x-request-id");
  }
}

/** 400: the request was refused as invalid (`invalid_request`). */
export class BadRequestError extends APIStatusError {}
/** 401: no key, or an unknown one (`unauthorized`). */
export class AuthenticationError extends APIStatusError {}
/** 402: the account's balance cannot pay for it (`payment_required`). */
export class PaymentRequiredError extends APIStatusError {}
/** 403: not allowed (`forbidden`), or not in the plan (`subscription_required`, `premium_required`). */
export class PermissionDeniedError extends APIStatusError {}
/** 404: no such resource, or not one the caller may see (`not_found`). */
export class NotFoundError extends APIStatusError {}
/** 409: a conflict (`model_unavailable`, `idempotency_key_reused`, `idempotency_key_in_use`). */
export class ConflictError extends APIStatusError {}

/** 429: over the per-minute limit, a monthly quota, or a per-account cap (`rate_limited`). */
export class RateLimitError extends APIStatusError {
  /** Seconds to wait, from `Retry-After` (null without the header). */
  readonly retryAfter: number | null;

  constructor(status: number, body: unknown, headers: Headers, message?: string) {
    super(status, body, headers, message);
    this.retryAfter = parseRetryAfter(headers);
  }
}

/** 5xx: the server or one of its engines failed. */
export class InternalServerError extends APIStatusError {}

/** A webhook delivery did not verify: a header missing, a bad signature, a stale timestamp. */
export class WebhookVerificationError extends PersonaeError {}

/** An image job ended `failed` (or its file is gone, `deleted`) while it was waited for. */
export class ImageFailedError extends PersonaeError {
  /** The image as last read, with its `status` and `error`. */
  readonly image: unknown;

  constructor(message: string, image: unknown) {
    super(message);
    this.image = image;
  }
}

/** The error class for a status, and the typed error for a response. */
export function makeStatusError(status: number, body: unknown, headers: Headers, message?: string): APIStatusError {
  const Class = classFor(status);
  return new Class(status, body, headers, message);
}

function classFor(status: number): typeof APIStatusError {
  switch (status) {
    case 400:
      return BadRequestError;
    case 401:
      return AuthenticationError;
    case 402:
      return PaymentRequiredError;
    case 403:
      return PermissionDeniedError;
    case 404:
      return NotFoundError;
    case 409:
      return ConflictError;
    case 429:
      return RateLimitError;
    default:
      return status >= 500 ? InternalServerError : APIStatusError;
  }
}

/** The code each status has in the characters API, for errors of the agents API. */
const CODES: Record<number, string> = {
  400: "invalid_request",
  401: "unauthorized",
  402: "payment_required",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  409: "conflict",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "rate_limited",
  431: "request_header_fields_too_large",
  500: "server_error",
  502: "engine_error",
  503: "service_unavailable",
  504: "engine_timeout",
};

/**
 * The agents API's messages that name a more precise code than their status (the server's
 * default messages for them). Also how a stream's `error` event of the agents API, which
 * carries no status, is given one.
 */
const AGENTS_MESSAGES: ReadonlyArray<[RegExp, number, string]> = [
  [/Idempotency-Key is still being processed/i, 409, "idempotency_key_in_use"],
  [/Idempotency-Key was already used/i, 409, "idempotency_key_reused"],
  [/no longer offered/i, 409, "model_unavailable"],
  [/requires a Premium/i, 403, "premium_required"],
  [/requires a Standard/i, 403, "subscription_required"],
  [/Insufficient account balance/i, 402, "payment_required"],
  [/model engine is at capacity/i, 503, "engine_busy"],
  [/model engine is unavailable/i, 503, "engine_unavailable"],
  [/model engine timed out/i, 504, "engine_timeout"],
  [/model engine failed/i, 502, "engine_error"],
  [/^No (conversation|character|message|image|webhook|model) |doesn't exist/i, 404, "not_found"],
];

interface ParsedError {
  message: string;
  code: string;
  status: number;
  details: Record<string, unknown>;
}

/**
 * Reads an error body of either dialect. `status` is the HTTP status, or 0 when it is not
 * known (an `error` event of an agents API stream), in which case it is derived.
 */
export function readErrorBody(status: number, body: unknown): ParsedError {
  const error = isRecord(body) ? body["error"] : undefined;
  if (isRecord(error)) {
    // The characters API: {"error": {"code", "message", "status", "details"}}.
    const own = typeof error["status"] === "number" ? error["status"] : status;
    return {
      message: typeof error["message"] === "string" ? error["message"] : `HTTP ${own}`,
      code: typeof error["code"] === "string" ? error["code"] : (CODES[own] ?? "error"),
      status: own || 500,
      details: isRecord(error["details"]) ? error["details"] : {},
    };
  }
  const message =
    typeof error === "string"
      ? error
      : typeof body === "string" && body.trim()
        ? body.trim().slice(0, 500)
        : `HTTP ${status}`;
  const known = AGENTS_MESSAGES.find(
    ([pattern, knownStatus]) => pattern.test(message) && (status === 0 || status === knownStatus),
  );
  const derived = status || known?.[1] || 500;
  return { message, code: known?.[2] ?? CODES[derived] ?? "error", status: derived, details: {} };
}

/**
 * `Retry-After` in seconds: a number of seconds, or an HTTP date (then the seconds until
 * it, at least 0). Null without the header or when it cannot be read.
 */
export function parseRetryAfter(headers: Headers): number | null {
  const value = headers.get("retry-after");
  if (value === null || value.trim() === "") return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  if (Number.isNaN(date)) return null;
  return Math.max(0, (date - Date.now()) / 1000);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
