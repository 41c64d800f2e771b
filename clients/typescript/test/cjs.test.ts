/**
 * The CommonJS build: `require("personae")` (the `require` condition of the exports map,
 * dist/cjs) works against the live server, and exports what the ESM build exports.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, test } from "node:test";
import * as esm from "personae";
import { baseURL, createAccount } from "./live.js";

const require = createRequire(import.meta.url);

describe("CommonJS", () => {
  test("require('personae') resolves to dist/cjs and exports the same names", () => {
    const resolved = require.resolve("personae");
    assert.match(resolved, /dist[/\\]cjs[/\\]index\.js$/);
    const cjs = require("personae") as typeof esm;
    assert.deepEqual(Object.keys(cjs).sort(), Object.keys(esm).sort());
    assert.equal(typeof cjs.Personae, "function");
    assert.notEqual(cjs.Personae, esm.Personae, "a separate build, not the ESM module");
  });

  test("a client from the CommonJS build talks to the live server", async () => {
    const { Personae, NotFoundError, Stream } = require("personae") as typeof esm;
    const client = new Personae({ apiKey: await createAccount("premium", "cjs"), baseURL });
    const me = await client.user.me();
    assert.equal(me.subscription.plan, "premium");
    assert.equal(me.rateLimit?.limit, 750);
    await assert.rejects(client.agents.get("char_missing"), NotFoundError);

    const character = await client.characters.create({
      name: "Required",
      description: "d",
      personality: "p",
      background: "b",
    });
    const stream = await client.chat.send(character.id, "Hi", { stream: true, max_tokens: 8 });
    assert.ok(stream instanceof Stream);
    assert.equal((await stream.finalMessage()).is_character, true);
  });
});
