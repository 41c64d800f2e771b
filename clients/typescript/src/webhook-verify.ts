/**
 * Verifying a webhook delivery, per the Standard Webhooks spec, with WebCrypto only.
 *
 * @module
 */

import { WebhookVerificationError } from "./errors.js";
import { webCrypto } from "./core/platform.js";

/** The headers of a delivery: a fetch `Headers`, or a plain object (Node's `req.headers`). */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

/** Options of {@link verifyWebhook}. */
export interface VerifyOptions {
  /** How far `webhook-timestamp` may be from now, in seconds. Default 300 (5 minutes). */
  toleranceSeconds?: number;
  /** The current time in epoch seconds (for tests). Default: the clock. */
  now?: number;
}

/** An event as Personae sends it. */
export interface WebhookEvent<D = Record<string, unknown>> {
  /** The event id, also the `webhook-id` header: deduplicate on it. */
  id: string;
  /** `message.created`, `character.updated`, … or `ping` for a test delivery. */
  type: string;
  created_at: string;
  /** The resource as the characters API renders it. */
  data: D;
}

const SECRET_PREFIX = "whsec_";
const DEFAULT_TOLERANCE_SECONDS = 5 * 60;
const encoder = new TextEncoder();

/**
 * Verifies a webhook delivery and returns its parsed JSON payload.
 *
 * Checks that `webhook-id`, `webhook-timestamp` and `webhook-signature` are present, that
 * the timestamp is within 5 minutes of now, and that one of the signature's
 * space-separated `v1,<base64>` entries is the HMAC-SHA256 of
 * `"{webhook-id}.{webhook-timestamp}.{payload}"` under the secret (the base64 after
 * `whsec_`; during a rotation the header holds both secrets' signatures), compared in
 * constant time.
 *
 * @param payload - The raw request body, exactly as received (not re-serialised JSON).
 * @param headers - The request's headers.
 * @param secret - The webhook's secret, `whsec_…`.
 * @throws {@link WebhookVerificationError} when anything does not match.
 */
export async function verifyWebhook<T = WebhookEvent>(
  payload: string | Uint8Array,
  headers: WebhookHeaders,
  secret: string,
  options: VerifyOptions = {},
): Promise<T> {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError("Missing webhook-id, webhook-timestamp or webhook-signature header");
  }

  const sent = Number(timestamp);
  if (!/^\d+$/.test(timestamp) || !Number.isSafeInteger(sent)) {
    throw new WebhookVerificationError("Invalid webhook-timestamp header");
  }
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  if (sent < now - tolerance) throw new WebhookVerificationError("Message timestamp too old");
  if (sent > now + tolerance) throw new WebhookVerificationError("Message timestamp too new");

  const body = typeof payload === "string" ? payload : new TextDecoder().decode(payload);
  const crypto = await webCrypto();
  const key = await crypto.subtle.importKey("raw", secretBytes(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const expected = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(`${id}.${timestamp}.${body}`)));

  let matched = false;
  for (const entry of signatures.split(" ")) {
    const comma = entry.indexOf(",");
    if (comma === -1 || entry.slice(0, comma) !== "v1") continue;
    const given = decodeBase64(entry.slice(comma + 1));
    // Every entry is compared, in constant time: no early exit says which one matched.
    if (given !== null && constantTimeEqual(given, expected)) matched = true;
  }
  if (!matched) throw new WebhookVerificationError("No matching signature found");

  try {
    return JSON.parse(body) as T;
  } catch (error) {
    throw new WebhookVerificationError("The payload is not JSON", { cause: error });
  }
}

/** The key bytes of a `whsec_` secret (a bare base64 secret is accepted too). */
function secretBytes(secret: string): Uint8Array<ArrayBuffer> {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  const bytes = decodeBase64(encoded);
  if (bytes === null || bytes.length === 0) {
    throw new WebhookVerificationError("The secret is not a whsec_ base64 secret");
  }
  return bytes;
}

/** Compares two byte arrays in time that depends on their length only. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= (a[i] as number) ^ (b[i] as number);
  return difference === 0;
}

function decodeBase64(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) return null;
  try {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  } catch {
    return null;
  }
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value.join(" ") : value;
}
