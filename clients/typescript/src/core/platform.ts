/**
 * The little the SDK needs from its platform beyond `fetch`: WebCrypto (for idempotency
 * keys and webhook signatures) and, where there is one, the process environment.
 *
 * @module
 */

/** WebCrypto: the global one (browsers, Node 19+), else Node 18's `node:crypto`. */
export async function webCrypto(): Promise<Crypto> {
  const global = (globalThis as { crypto?: Crypto }).crypto;
  if (global?.subtle) return global;
  // Node 18 has WebCrypto, but not as a global. The specifier is a variable so that
  // bundlers for browsers (which have the global) leave it alone.
  const specifier = "node:crypto";
  const nodeCrypto = (await import(/* webpackIgnore: true */ /* @vite-ignore */ specifier)) as {
    webcrypto: Crypto;
  };
  return nodeCrypto.webcrypto;
}

/** A random UUID (version 4). */
export async function randomUUID(): Promise<string> {
  return (await webCrypto()).randomUUID();
}

/** An environment variable, where the platform has them (`process.env`), else undefined. */
export function env(name: string): string | undefined {
  const process = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const value = process?.env?.[name];
  return value === undefined || value === "" ? undefined : value;
}
