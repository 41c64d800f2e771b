/** Image generation (`/api/v1/images`) with the built-in placeholder model, on the live server. */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { NotFoundError, type Personae } from "personae";
import { clientFor, createAccount, newClient } from "./live.js";

let apiKey: string;
let client: Personae;

before(async () => {
  apiKey = await createAccount("premium");
  client = clientFor(apiKey);
});

describe("images", () => {
  test("generate waits for the finished image", async () => {
    const image = await client.images.generate({ prompt: "a lighthouse at dusk", width: 64, height: 64, seed: 7 });
    assert.equal(image.status, "completed");
    assert.ok(image.url);
    assert.equal(image.seed, 7);
    assert.equal(image.response.status, 201);
    const file = await fetch(image.url);
    assert.equal(file.status, 200);
    assert.match(file.headers.get("content-type") ?? "", /^image\//);
  });

  test("generate with wait: false answers pending, and images.wait finishes it", async () => {
    const pending = await client.images.generate({ prompt: "a red fox", width: 64, height: 64, wait: false });
    assert.equal(pending.response.status, 202);
    assert.ok(["pending", "running", "completed"].includes(pending.status));
    if (pending.status !== "completed") assert.equal(pending.url, null);
    const done = await client.images.wait(pending.id, { timeout: 60_000, pollInterval: 100 });
    assert.equal(done.status, "completed");
    assert.ok(done.url);
    const got = await client.images.get(pending.id);
    assert.equal(got.id, pending.id);
    assert.equal(got.status, "completed");
  });

  test("generate polls when the server answers 202 (its own wait ran out)", async () => {
    // The server answers 202 when its wait (PERSONAE_IMAGE_WAIT_SECONDS, 60 s) runs out,
    // which the fast placeholder model never lets happen. This fetch passes everything to
    // the live server over real HTTP, but sends the POST as `"async": true`, so the real
    // server answers a real 202 with a pending job, exactly as after a wait that ran out.
    const calls: string[] = [];
    const asyncFetch: typeof fetch = async (input, init) => {
      const request = new Request(input, init);
      calls.push(`${request.method} ${new URL(request.url).pathname}`);
      if (request.method === "POST") {
        const body = { ...(await request.json()), async: true };
        return fetch(request.url, { method: "POST", headers: request.headers, body: JSON.stringify(body) });
      }
      return fetch(request);
    };
    const polling = clientFor(apiKey, { fetch: asyncFetch });
    const image = await polling.images.generate({ prompt: "a slow sunrise" });
    assert.equal(image.status, "completed");
    assert.ok(image.url);
    assert.equal(calls[0], "POST /api/v1/images");
    assert.ok(calls.slice(1).every((call) => call === `GET /api/v1/images/${image.id}`));
    assert.ok(calls.length >= 2, "it polled");
  });

  test("an image posted in a conversation", async () => {
    const conversation = await client.conversations.create({ title: "Gallery" });
    const image = await client.images.generate({ prompt: "a tiny robot", conversation_id: conversation.id });
    assert.ok(image.message_id);
    const messages = await client.messages.list(conversation.id);
    assert.equal(messages.data.at(-1)?.id, image.message_id);
    assert.ok(messages.data.at(-1)?.image_url);
  });

  test("list pages: page_size 2 over the account's images", async () => {
    const own = await newClient("premium");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await own.images.generate({ prompt: `image ${i}`, wait: false })).id);
    for (const id of ids) await own.images.wait(id, { pollInterval: 100 });
    const first = await own.images.list({ page_size: 2 });
    assert.deepEqual(
      { ...first.pagination },
      { total_items: 5, current_page: 1, page_size: 2, total_pages: 3, next_page: 2, prev_page: null },
    );
    const seen: string[] = [];
    for await (const image of first) seen.push(image.id);
    assert.deepEqual(new Set(seen), new Set(ids));
    assert.equal(seen.length, 5);
    const last = await (await first.getNextPage()).getNextPage();
    assert.equal(last.pagination.next_page, null);
    assert.equal(last.hasNextPage(), false);
  });

  test("get of an unknown image is NotFoundError", async () => {
    await assert.rejects(client.images.get("img_doesnotexist"), NotFoundError);
  });
});
