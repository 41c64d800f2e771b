/**
 * Webhooks (`/v1/webhooks`) on the live server, and `webhooks.verify` on real deliveries
 * received by a small node:http server of the test's own.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { after, before, describe, test } from "node:test";
import { NotFoundError, verifyWebhook, WebhookVerificationError, type Personae, type WebhookEvent } from "personae";
import { characterFields, newClient } from "./live.js";

interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
}

let client: Personae;
let receiver: Server;
let hookURL: string;
const received: Delivery[] = [];

before(async () => {
  client = await newClient("premium");
  receiver = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString("utf8") });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const address = receiver.address();
  assert.ok(address && typeof address === "object");
  hookURL = `http://127.0.0.1:${address.port}/hook`;
});

after(async () => {
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
});

/** The delivery whose `webhook-id` is `eventId` (or the first that `match` accepts), once it arrives. */
async function delivery(match: (d: Delivery) => boolean, timeoutMs = 30_000): Promise<Delivery> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = received.find(match);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no matching delivery within ${timeoutMs} ms (got ${received.length})`);
}

describe("webhooks", () => {
  test("create, list, get, update, test, rotateSecret, deliveries, delete; verify real deliveries", async () => {
    const webhook = await client.webhooks.create({
      url: hookURL,
      events: ["character.created"],
      description: "SDK test",
    });
    assert.match(webhook.id, /.+/);
    assert.match(webhook.secret, /^whsec_/);
    assert.equal(webhook.response.status, 201);

    const listed = await client.webhooks.list({ limit: 10 });
    assert.ok(listed.data.some((w) => w.id === webhook.id));
    assert.equal(listed.pagination.total, 1);
    const got = await client.webhooks.get(webhook.id);
    assert.equal(got.url, hookURL);
    assert.equal(got.status, "active");
    assert.ok(!("secret" in got), "the secret is shown only on create and rotate");

    const updated = await client.webhooks.update(webhook.id, {
      events: ["character.created", "message.created"],
      description: "SDK test, updated",
    });
    assert.deepEqual(updated.events, ["character.created", "message.created"]);

    // A ping, delivered for real and verified.
    const ping = await client.webhooks.test(webhook.id);
    assert.equal(ping.event, "ping");
    assert.equal(ping.response.status, 202);
    const pinged = await delivery((d) => d.headers["webhook-id"] === ping.event_id);
    const event = await client.webhooks.verify<WebhookEvent>(pinged.body, pinged.headers, webhook.secret);
    assert.equal(event.type, "ping");
    assert.equal(event.id, ping.event_id);

    // An event caused by a request: a character created.
    const character = await client.characters.create(characterFields("Hooked"));
    const created = await delivery((d) => d.body.includes(character.id));
    const payload = await verifyWebhook<WebhookEvent<{ id: string; name: string }>>(
      created.body,
      new Headers(created.headers as Record<string, string>),
      webhook.secret,
    );
    assert.equal(payload.type, "character.created");
    assert.equal(payload.data.id, character.id);
    assert.equal(payload.data.name, "Hooked");

    // What does not verify is refused.
    await assert.rejects(
      client.webhooks.verify(created.body.replace("Hooked", "Hacked"), created.headers, webhook.secret),
      WebhookVerificationError,
    );
    const otherSecret = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
    await assert.rejects(client.webhooks.verify(created.body, created.headers, otherSecret), WebhookVerificationError);
    const sentAt = Number(created.headers["webhook-timestamp"]);
    await assert.rejects(
      client.webhooks.verify(created.body, created.headers, webhook.secret, { now: sentAt + 301 }),
      /too old/,
    );
    await assert.doesNotReject(
      client.webhooks.verify(created.body, created.headers, webhook.secret, { now: sentAt + 299 }),
    );
    const { ["webhook-signature"]: _dropped, ...unsigned } = created.headers;
    await assert.rejects(client.webhooks.verify(created.body, unsigned, webhook.secret), WebhookVerificationError);

    // A rotated secret: both sign while they overlap, either verifies.
    const rotated = await client.webhooks.rotateSecret(webhook.id);
    assert.match(rotated.secret, /^whsec_/);
    assert.notEqual(rotated.secret, webhook.secret);
    const second = await client.webhooks.test(webhook.id);
    const both = await delivery((d) => d.headers["webhook-id"] === second.event_id);
    assert.equal(String(both.headers["webhook-signature"]).split(" ").length, 2);
    assert.equal((await client.webhooks.verify<WebhookEvent>(both.body, both.headers, rotated.secret)).type, "ping");
    assert.equal((await client.webhooks.verify<WebhookEvent>(both.body, both.headers, webhook.secret)).type, "ping");

    // The delivery log, paged.
    let log = await client.webhooks.deliveries(webhook.id, { limit: 1 });
    for (let i = 0; i < 50 && log.data.some((d) => d.status !== "succeeded"); i++) {
      await new Promise((r) => setTimeout(r, 100));
      log = await client.webhooks.deliveries(webhook.id, { limit: 1 });
    }
    assert.equal(log.pagination.total, 3);
    const entries = [];
    for await (const entry of log) entries.push(entry);
    assert.equal(entries.length, 3);
    assert.deepEqual(new Set(entries.map((d) => d.event)), new Set(["ping", "character.created"]));
    assert.ok(entries.every((d) => d.status === "succeeded" && d.last_response_code === 204));

    const deleted = await client.webhooks.delete(webhook.id);
    assert.equal(deleted.webhook_id, webhook.id);
    await assert.rejects(client.webhooks.get(webhook.id), NotFoundError);
  });
});
