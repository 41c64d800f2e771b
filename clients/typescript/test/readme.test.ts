/**
 * The README's two samples from the seed API document, rewritten with the SDK, run as
 * written (CommonJS, `require('personae')`) against the live server: only the key, the
 * base URL and the example ids are replaced by real ones.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { before, describe, test } from "node:test";
import { baseURL, characterFields, clientFor, createAccount } from "./live.js";

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const readme = readFileSync(resolve(packageRoot, "README.md"), "utf8");

/** The code block after `<!-- seed-sample: NAME -->`. */
function sample(name: string): string {
  const match = new RegExp(`<!-- seed-sample: ${name} -->\\s*\`\`\`js\\n([\\s\\S]*?)\`\`\``).exec(readme);
  assert.ok(match?.[1], `README has no seed sample ${name}`);
  return match[1];
}

/** Runs a sample with the replacements, from the package root (so `require('personae')` resolves). */
function run(code: string, replacements: Record<string, string>): { stdout: string; stderr: string } {
  let program = code;
  for (const [from, to] of Object.entries(replacements)) {
    assert.ok(program.includes(from), `the sample uses ${from}`);
    program = program.split(from).join(to);
  }
  const done = spawnSync(process.execPath, ["--input-type=commonjs", "-e", program], {
    cwd: packageRoot,
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.equal(done.status, 0, done.stderr);
  return { stdout: done.stdout, stderr: done.stderr };
}

let apiKey: string;

before(async () => {
  apiKey = await createAccount("premium", "readme");
});

describe("the README's seed samples", () => {
  test("list characters (page, limit, tags, sort)", async () => {
    const client = clientFor(apiKey);
    await client.characters.create({ ...characterFields("Vexa Stride"), tags: ["cyberpunk", "female"] });
    const { stdout, stderr } = run(sample("list-characters"), {
      "'your_api_key_here'": JSON.stringify(apiKey),
      "'https://api.durenai.com'": JSON.stringify(baseURL),
    });
    assert.equal(stderr, "");
    assert.match(stdout, /^Vexa Stride: Vexa Stride, a courier of the neon city$/m);
  });

  test("send a message in a conversation", async () => {
    const client = clientFor(apiKey);
    const character = await client.characters.create(characterFields("Courier"));
    const first = await client.chat.send(character.id, "Hello", { max_tokens: 8 });
    const code = sample("send-message");
    const { stdout, stderr } = run(code, {
      "'your_api_key_here'": JSON.stringify(apiKey),
      "'https://api.durenai.com'": JSON.stringify(baseURL),
      "'char_123456'": JSON.stringify(character.id),
      "'conv_789012'": JSON.stringify(first.conversation_id),
    });
    assert.equal(stderr, "");
    assert.match(stdout, /^Character response: \S/m);
    const conversation = await client.chat.conversations.get(first.conversation_id);
    assert.equal(conversation.message_count, 4, "the sample continued the conversation");
  });
});
