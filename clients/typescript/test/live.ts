/**
 * What the test files share: where the live server is (set by test/harness.ts), accounts
 * made through the server's CLI, clients for them, and a tiny PNG.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { deflateSync } from "node:zlib";
import { Personae, type ClientOptions } from "personae";

function required(name: string): string {
  const value = process.env[name];
  if (!value)
    throw new Error(`${name} is not set: run the tests with \`npm test\` (test/harness.ts starts the server)`);
  return value;
}

/** The live server's base URL. */
export const baseURL = required("PERSONAE_TEST_BASE_URL");

export type Plan = "free" | "standard" | "premium";

/**
 * A new account on the live server, made with `personae accounts create`; its API key.
 * Asynchronous on purpose: a synchronous child process blocked the event loop for seconds,
 * so the HTTP pool's idle timer could not close a keep-alive connection in time and the
 * next request went out on one the server had just closed (a connection error).
 */
export async function createAccount(plan: Plan, prefix: string = plan): Promise<string> {
  const username = `${prefix}_${randomBytes(4).toString("hex")}`.slice(0, 32);
  const args = ["-m", "personae", "accounts", "create", "--username", username, "--plan", plan, "--json"];
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)(required("PERSONAE_TEST_PYTHON"), args, { env: process.env }));
  } catch (error) {
    const failed = error as { stderr?: string };
    throw new Error(`accounts create failed: ${failed.stderr || error}`);
  }
  const created = JSON.parse(stdout) as { api_key: string };
  return created.api_key;
}

/** A client of the live server. */
export function clientFor(apiKey: string, options: ClientOptions = {}): Personae {
  return new Personae({ apiKey, baseURL, ...options });
}

/** A client for a new account of `plan`. */
export async function newClient(plan: Plan = "premium", options: ClientOptions = {}): Promise<Personae> {
  return clientFor(await createAccount(plan), options);
}

/** A unique suffix, for names and tags that must not meet another test's. */
export function unique(): string {
  return randomBytes(4).toString("hex");
}

/** The fields a character needs. */
export function characterFields(name: string): {
  name: string;
  description: string;
  personality: string;
  background: string;
} {
  return {
    name,
    description: `${name}, a courier of the neon city`,
    personality: "Defiant, quick-witted and independent",
    background: "Raised in the megacity slums",
  };
}

/** Keeps chat turns short on the small embedded model. */
export const SHORT = { max_tokens: 8 } as const;

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) c = (CRC_TABLE[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A valid `size`×`size` RGB PNG of one colour. */
export function png(size = 8, rgb: [number, number, number] = [200, 40, 120]): Uint8Array<ArrayBuffer> {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: size }, () => rgb).flat())]);
  const pixels = Buffer.concat(Array.from({ length: size }, () => row));
  return Uint8Array.from(
    Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk("IHDR", header),
      chunk("IDAT", deflateSync(pixels)),
      chunk("IEND", Buffer.alloc(0)),
    ]),
  );
}
