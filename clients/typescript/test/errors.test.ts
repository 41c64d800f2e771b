/** Typed errors from the live server, in both dialects, and a real 429 with `Retry-After`. */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import {
  APIConnectionError,
  APIStatusError,
  AuthenticationError,
  BadRequestError,
  NotFoundError,
  Personae,
  PersonaeError,
  PermissionDeniedError,
  RateLimitError,
} from "personae";
import { baseURL, clientFor, createAccount, newClient } from "./live.js";

let client: Personae;

before(async () => {
  client = await newClient("premium");
});

describe("errors", () => {
  test("404 is NotFoundError, in both dialects", async () => {
    const characters = await client.characters.get("char_missing").catch((e: unknown) => e);
    assert.ok(characters instanceof NotFoundError);
    assert.ok(characters instanceof APIStatusError && characters instanceof PersonaeError);
    assert.equal(characters.status, 404);
    assert.equal(characters.code, "not_found");
    assert.deepEqual(characters.body, {
      error: { code: "not_found", message: characters.message, status: 404, details: characters.details },
    });
    assert.equal(characters.rateLimit?.limit, 750);
    assert.ok(characters.requestId);

    const agents = await client.agents.get("char_missing").catch((e: unknown) => e);
    assert.ok(agents instanceof NotFoundError);
    assert.equal(agents.code, "not_found", "derived from the status in the agents API");
    assert.equal(typeof (agents.body as { error: unknown }).error, "string");
    assert.deepEqual(agents.details, {});
  });

  test("401 is AuthenticationError, in both dialects", async () => {
    const wrong = clientFor("not-a-real-key", { maxRetries: 0 });
    const characters = await wrong.user.me().catch((e: unknown) => e);
    assert.ok(characters instanceof AuthenticationError);
    assert.equal(characters.code, "unauthorized");
    const agents = await wrong.agents.list().catch((e: unknown) => e);
    assert.ok(agents instanceof AuthenticationError);
    assert.equal(agents.status, 401);
  });

  test("403 is PermissionDeniedError: webhooks need Premium, the characters API a paid plan", async () => {
    const standard = await newClient("standard");
    const premiumOnly = await standard.webhooks.list().catch((e: unknown) => e);
    assert.ok(premiumOnly instanceof PermissionDeniedError, String(premiumOnly));
    assert.equal(premiumOnly.code, "premium_required");
    assert.equal(premiumOnly.details["plan"], "standard");

    const free = await newClient("free", { maxRetries: 0 });
    const noSubscription = await free.user.me().catch((e: unknown) => e);
    assert.ok(noSubscription instanceof PermissionDeniedError, String(noSubscription));
    assert.equal(noSubscription.code, "subscription_required");
  });

  test("400 is BadRequestError, in both dialects", async () => {
    const outOfRange = await client.characters.list({ limit: 1000 }).catch((e: unknown) => e);
    assert.ok(outOfRange instanceof BadRequestError);
    assert.equal(outOfRange.code, "invalid_request");
    assert.match(outOfRange.message, /limit/);

    const agents = await client.agents.create({ name: "   " }).catch((e: unknown) => e);
    assert.ok(agents instanceof BadRequestError);
    assert.equal(agents.code, "invalid_request");
  });

  test("429 from the free plan's 5 requests a minute: RateLimitError with retryAfter, thrown with maxRetries 0", async () => {
    const free = clientFor(await createAccount("free"), { maxRetries: 0 });
    let error: unknown;
    const started = Date.now();
    for (let i = 0; i < 10 && error === undefined; i++) {
      error = await free.models.list({ type: "llm" }).then(
        () => undefined,
        (e: unknown) => e,
      );
    }
    assert.ok(error instanceof RateLimitError, `expected RateLimitError, got ${String(error)}`);
    assert.equal(error.status, 429);
    assert.equal(error.code, "rate_limited");
    assert.ok(
      error.retryAfter !== null && error.retryAfter > 0 && error.retryAfter <= 60,
      `Retry-After ${error.retryAfter}`,
    );
    assert.equal(error.rateLimit?.limit, 5);
    assert.equal(error.rateLimit?.remaining, 0);
    assert.ok(Date.now() - started < 5_000, "with maxRetries 0 it throws at once, without waiting");
  });

  test("no server is APIConnectionError; no key is an error at construction", async () => {
    const nowhere = new Personae({ apiKey: "k", baseURL: "http://127.0.0.1:9", maxRetries: 0 });
    await assert.rejects(nowhere.user.me(), APIConnectionError);

    const saved = process.env["PERSONAE_API_KEY"];
    delete process.env["PERSONAE_API_KEY"];
    try {
      assert.throws(() => new Personae({ baseURL }), /No API key/);
      process.env["PERSONAE_API_KEY"] = "from-env";
      assert.doesNotThrow(() => new Personae({ baseURL }));
    } finally {
      if (saved === undefined) delete process.env["PERSONAE_API_KEY"];
      else process.env["PERSONAE_API_KEY"] = saved;
    }
  });
});
