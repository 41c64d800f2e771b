/** The characters API's characters, likes, favorites and user, against the live server. */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { NotFoundError, Page, type Personae } from "personae";
import { characterFields, clientFor, createAccount, newClient, png, unique } from "./live.js";

let apiKey: string;
let client: Personae;

before(async () => {
  apiKey = await createAccount("premium");
  client = clientFor(apiKey);
});

describe("characters", () => {
  test("create (JSON), get, update, delete", async () => {
    const created = await client.characters.create({
      ...characterFields("Nova Chen"),
      tags: ["Sci-Fi", "female", "genius"],
      age: 27,
      appearance_prompt: "short black hair",
    });
    assert.match(created.id, /^char_/);
    assert.equal(created.name, "Nova Chen");
    assert.deepEqual(created.tags, ["sci-fi", "female", "genius"]);
    assert.equal(created.appearance_prompt, "27 years old, short black hair");
    assert.equal(created.response.status, 201);
    assert.ok(created.rateLimit, "rate-limit headers are read");
    assert.equal(created.rateLimit.limit, 750);
    assert.ok(!Object.keys(created).includes("rateLimit"), "the meta is not enumerable");
    assert.ok(!("response" in JSON.parse(JSON.stringify(created))));

    const got = await client.characters.get(created.id);
    assert.equal(got.id, created.id);
    assert.equal(got.response.status, 200);

    const updated = await client.characters.update(created.id, { description: "Predicts the future", age: null });
    assert.equal(updated.description, "Predicts the future");
    assert.equal(updated.appearance_prompt, "short black hair");

    const deleted = await client.characters.delete(created.id);
    assert.equal(deleted.success, true);
    assert.equal(deleted.character_id, created.id);
    await assert.rejects(client.characters.get(created.id), NotFoundError);
  });

  test("create and update with an image (multipart)", async () => {
    const created = await client.characters.create({
      ...characterFields("Pixel"),
      tags: ["avatar", "pixel, art".replace(", ", "-")],
      alternate_greetings: ["Hi, there", "Hello"],
      image: png(16),
    });
    assert.ok(created.image_url, "the avatar has a URL");
    assert.deepEqual(created.tags, ["avatar", "pixel-art"]);
    const avatar = await fetch(created.image_url);
    assert.equal(avatar.status, 200);
    assert.equal(avatar.headers.get("content-type"), "image/png");

    const replaced = await client.characters.update(created.id, {
      name: "Pixel Two",
      image: new Blob([png(24, [10, 200, 10])], { type: "image/png" }),
    });
    assert.equal(replaced.name, "Pixel Two");
    assert.ok(replaced.image_url);
    assert.notEqual(replaced.image_url, created.image_url, "a new image gets a new URL");

    const fromBuffer = await client.characters.update(created.id, { image: png(12).buffer as ArrayBuffer });
    assert.notEqual(fromBuffer.image_url, replaced.image_url);
    await client.characters.delete(created.id);
  });

  test("the catalogue pages: limit 2 over 5 characters, by page and by cursor", async () => {
    const tag = `page-${unique()}`;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await client.characters.create({ ...characterFields(`Paged ${i}`), tags: [tag] })).id);
    }
    const first = await client.characters.list({ tags: [tag], limit: 2, sort: "newest" });
    assert.ok(first instanceof Page);
    assert.equal(first.data.length, 2);
    assert.equal(first.pagination.total, 5);
    assert.equal(first.pagination.pages, 3);
    assert.equal(first.pagination.page, 1);
    assert.ok(first.pagination.next_cursor);
    assert.ok(first.hasNextPage());
    assert.equal(first.rateLimit?.limit, 750);

    const second = await first.getNextPage();
    assert.equal(second.data.length, 2);
    assert.equal(second.pagination.page, null, "read on by cursor");

    const seen: string[] = [];
    for await (const character of first) seen.push(character.id);
    assert.deepEqual(seen, [...ids].reverse(), "every item, in order, no repeats");

    // Tags as a comma-separated string, and page numbers, work the same.
    const byPage = await client.characters.list({ tags: tag, limit: 2, page: 3, sort: "newest" });
    assert.deepEqual(
      byPage.data.map((c) => c.id),
      [ids[0]],
    );
    assert.equal(byPage.hasNextPage(), false);
    await assert.rejects(byPage.getNextPage(), RangeError);

    const pages: number[] = [];
    for await (const page of first.iterPages()) pages.push(page.data.length);
    assert.deepEqual(pages, [2, 2, 1]);
  });

  test("like and unlike", async () => {
    const character = await client.characters.create(characterFields("Likeable"));
    const liked = await client.characters.like(character.id);
    assert.deepEqual({ liked: liked.liked, likes: liked.likes }, { liked: true, likes: 1 });
    const again = await client.characters.like(character.id);
    assert.equal(again.likes, 1, "liking twice counts once");
    const unliked = await client.characters.unlike(character.id);
    assert.deepEqual({ liked: unliked.liked, likes: unliked.likes }, { liked: false, likes: 0 });
    await client.characters.delete(character.id);
  });

  test("a POST with the caller's idempotency key is replayed, not run twice", async () => {
    const key = `create-${unique()}`;
    const body = { ...characterFields("Once"), tags: [`idem-${unique()}`] };
    const first = await client.characters.create(body, { idempotencyKey: key });
    const second = await client.characters.create(body, { idempotencyKey: key });
    assert.equal(second.id, first.id);
    assert.equal(first.response.idempotentReplayed, false);
    assert.equal(second.response.idempotentReplayed, true);
    const listed = await client.characters.list({ tags: body.tags });
    assert.equal(listed.pagination.total, 1);
  });
});

describe("idempotency over a lost answer", () => {
  test("a POST retried after its answer was lost runs once: the same key, the first answer replayed", async () => {
    // The live server does the work, then the connection "drops" before the answer
    // arrives: the SDK retries with the same Idempotency-Key and gets the first answer.
    const keys: (string | null)[] = [];
    const losingFetch: typeof fetch = async (input, init) => {
      keys.push(new Headers(init?.headers).get("idempotency-key"));
      const response = await fetch(input, init);
      if (keys.length === 1) {
        await response.arrayBuffer();
        throw new TypeError("fetch failed", { cause: new Error("read ECONNRESET") });
      }
      return response;
    };
    const tag = `lost-${unique()}`;
    const created = await clientFor(apiKey, { fetch: losingFetch }).characters.create({
      ...characterFields("Lost Answer"),
      tags: [tag],
    });
    assert.equal(keys.length, 2);
    assert.ok(keys[0]);
    assert.equal(keys[1], keys[0]);
    assert.equal(created.response.idempotentReplayed, true);
    assert.equal((await client.characters.list({ tags: [tag] })).pagination.total, 1, "created once");
  });
});

describe("favorites", () => {
  test("add, list (paged), remove", async () => {
    const fresh = await newClient("premium");
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await client.characters.create(characterFields(`Fav ${i}`))).id);
    for (const id of ids) {
      const added = await fresh.favorites.add(id);
      assert.equal(added.character_id, id);
      assert.ok(added.favorited_at);
    }
    const page = await fresh.favorites.list({ limit: 2 });
    assert.equal(page.pagination.total, 3);
    assert.equal(page.data.length, 2);
    const all: string[] = [];
    for await (const favorite of page) all.push(favorite.id);
    assert.deepEqual(new Set(all), new Set(ids));
    assert.equal(all.length, 3);

    const removed = await fresh.favorites.remove(ids[0] as string);
    assert.equal(removed.success, true);
    assert.equal((await fresh.favorites.list()).pagination.total, 2);
    const followed = await client.characters.get(ids[1] as string);
    assert.equal(followed.stats.followers, 1);
  });
});

describe("user", () => {
  test("me", async () => {
    const me = await client.user.me();
    assert.equal(me.subscription.plan, "premium");
    assert.match(me.id, /.+/);
    assert.ok(me.stats.characters_created >= 1);
    assert.equal(me.rateLimit?.limit, 750);
    assert.ok((me.rateLimit?.remaining ?? 0) < 750);
    assert.ok((me.rateLimit?.reset ?? 0) > Date.now() / 1000 - 60);
  });
});
