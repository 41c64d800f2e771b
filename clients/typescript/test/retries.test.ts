/**
 * Retries, timeouts and error paths, with a fetch double (the only tests that use one:
 * a live server cannot be made to answer 429-then-200 or 503 on demand). Also the SSE
 * parser on awkward chunk boundaries and the stream's `error` event.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  APIConnectionError,
  APITimeoutError,
  APIUserAbortError,
  BadRequestError,
  ConflictError,
  InternalServerError,
  NotFoundError,
  parseSSE,
  Personae,
  RateLimitError,
  type ServerSentEvent,
} from "personae";

interface Call {
  method: string;
  url: string;
  headers: Headers;
  body: unknown;
  at: number;
}

type Answer = Response | Error | ((call: Call, signal: AbortSignal | undefined) => Promise<Response> | Response);

/** A fetch that records each call and gives the next answer of `answers`. */
function fakeFetch(answers: Answer[]): { fetch: typeof fetch; calls: Call[] } {
  const calls: Call[] = [];
  const fetchDouble = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const call: Call = {
      method: init?.method ?? "GET",
      url: String(input),
      headers: new Headers(init?.headers),
      body: typeof init?.body === "string" ? JSON.parse(init.body) : init?.body,
      at: performance.now(),
    };
    calls.push(call);
    const answer = answers.shift();
    if (answer === undefined) throw new Error("the fetch double ran out of answers");
    if (answer instanceof Error) throw answer;
    if (typeof answer === "function") return answer(call, init?.signal ?? undefined);
    return answer;
  };
  return { fetch: fetchDouble as typeof fetch, calls };
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

const RATE = { "x-ratelimit-limit": "150", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1795430400" };
const CHARACTER = { id: "char_1", name: "Nova" };
const tooMany = (retryAfter: string): Response =>
  json(
    429,
    { error: { code: "rate_limited", message: "Too many requests", status: 429, details: {} } },
    {
      ...RATE,
      "retry-after": retryAfter,
    },
  );

function client(fetchDouble: typeof fetch, options: { maxRetries?: number; timeout?: number } = {}): Personae {
  return new Personae({ apiKey: "test-key", baseURL: "http://personae.test/", fetch: fetchDouble, ...options });
}

describe("retries", () => {
  test("429 with Retry-After: 1, then 200: waits at least 1 s and resends the same Idempotency-Key", async () => {
    const { fetch, calls } = fakeFetch([tooMany("1"), json(201, CHARACTER, RATE)]);
    const created = await client(fetch).characters.create({
      name: "Nova",
      description: "d",
      personality: "p",
      background: "b",
    });
    assert.equal(created.id, "char_1");
    assert.equal(calls.length, 2);
    const [first, second] = calls as [Call, Call];
    assert.ok(second.at - first.at >= 1000, `waited ${second.at - first.at} ms`);
    // (Without Retry-After the first retry would come after 0.5 s at most: see below.)
    const key = first.headers.get("idempotency-key");
    assert.match(key ?? "", /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(second.headers.get("idempotency-key"), key, "the same key on the retry");
    assert.equal(first.headers.get("authorization"), "Bearer test-key");
    assert.equal(first.url, "http://personae.test/v1/characters");
    assert.deepEqual(first.body, second.body);
  });

  test("each logical call gets its own key; a caller's key is sent as given; GET has none", async () => {
    const { fetch, calls } = fakeFetch([
      json(200, { liked: true }),
      json(200, { liked: true }),
      json(200, { liked: true }),
      json(200, CHARACTER),
    ]);
    const personae = client(fetch);
    await personae.characters.like("char_1");
    await personae.characters.like("char_1");
    await personae.characters.like("char_1", { idempotencyKey: "my-key-1" });
    await personae.characters.get("char_1");
    const keys = calls.map((c) => c.headers.get("idempotency-key"));
    assert.ok(keys[0] && keys[1] && keys[0] !== keys[1]);
    assert.equal(keys[2], "my-key-1");
    assert.equal(keys[3], null);

    const headers = fakeFetch([json(200, CHARACTER)]);
    await new Personae({
      apiKey: "k",
      baseURL: "http://personae.test",
      fetch: headers.fetch,
      defaultHeaders: { "X-App": "a" },
    }).characters.get("char 1/x", { headers: { "X-Trace": "t" } });
    const [sent] = headers.calls as [Call];
    assert.equal(sent.url, "http://personae.test/v1/characters/char%201%2Fx", "ids are URL-encoded");
    assert.equal(sent.headers.get("x-app"), "a");
    assert.equal(sent.headers.get("x-trace"), "t");
    assert.equal(sent.headers.get("accept"), "application/json");
  });

  test("Retry-After as an HTTP date is honoured", async () => {
    const inOneSecond = new Date(Math.ceil(Date.now() / 1000) * 1000 + 1000).toUTCString();
    const { fetch, calls } = fakeFetch([tooMany(inOneSecond), json(200, [])]);
    await client(fetch).agents.list();
    assert.equal(calls.length, 2);
    // The date is a whole second at least 1 s ahead: the wait is (nearly all of) that.
    assert.ok((calls[1] as Call).at - (calls[0] as Call).at >= 900);
  });

  test("Retry-After above 60 s (a spent monthly quota) is thrown at once", async () => {
    const { fetch, calls } = fakeFetch([tooMany("3600")]);
    const error = await client(fetch)
      .user.me()
      .catch((e: unknown) => e);
    assert.ok(error instanceof RateLimitError);
    assert.equal(error.retryAfter, 3600);
    assert.deepEqual(error.rateLimit, { limit: 150, remaining: 0, reset: 1795430400 });
    assert.equal(calls.length, 1);
  });

  test("maxRetries 0 throws the 429 at once", async () => {
    const { fetch, calls } = fakeFetch([tooMany("1")]);
    await assert.rejects(client(fetch, { maxRetries: 0 }).user.me(), RateLimitError);
    assert.equal(calls.length, 1);
  });

  test("5xx without Retry-After backs off exponentially, maxRetries times, then throws", async () => {
    const unavailable = (): Response => json(503, { error: "The model engine is at capacity; try again shortly" });
    const { fetch, calls } = fakeFetch([unavailable(), unavailable(), unavailable()]);
    const error = await client(fetch)
      .agents.list()
      .catch((e: unknown) => e);
    assert.ok(error instanceof InternalServerError);
    assert.equal(error.code, "engine_busy", "derived from the agents API's message");
    assert.equal(calls.length, 3, "the first attempt and 2 retries");
    const [a, b, c] = calls.map((call) => call.at) as [number, number, number];
    // 0.5 s then 1 s, less up to 25% at random (the upper bounds leave room for a busy machine).
    assert.ok(b - a >= 375 && b - a <= 1500, `first backoff ${b - a} ms`);
    assert.ok(c - b >= 750 && c - b <= 2000, `second backoff ${c - b} ms`);
  });

  test("per-request maxRetries overrides the client's", async () => {
    const { fetch, calls } = fakeFetch([json(502, { error: "The model engine failed" }), json(200, [])]);
    await assert.rejects(client(fetch).agents.list({}, { maxRetries: 0 }), InternalServerError);
    assert.equal(calls.length, 1);
  });

  test("409 idempotency_key_in_use is retried with the same key; 409 idempotency_key_reused is not", async () => {
    const inUse = json(
      409,
      { error: { code: "idempotency_key_in_use", message: "still running", status: 409, details: {} } },
      { "retry-after": "0" },
    );
    const agentsInUse = json(
      409,
      { error: "A request with this Idempotency-Key is still being processed" },
      { "retry-after": "0" },
    );
    const { fetch, calls } = fakeFetch([inUse, agentsInUse, json(201, CHARACTER)]);
    await client(fetch).agents.create({ name: "Nova" });
    assert.equal(calls.length, 3);
    assert.equal(new Set(calls.map((c) => c.headers.get("idempotency-key"))).size, 1);

    const reused = fakeFetch([
      json(409, { error: "This Idempotency-Key was already used with another body; send a new key for a new request" }),
    ]);
    const error = await client(reused.fetch)
      .agents.create({ name: "Nova" })
      .catch((e: unknown) => e);
    assert.ok(error instanceof ConflictError);
    assert.equal(error.code, "idempotency_key_reused");
    assert.equal(reused.calls.length, 1);
  });

  test("4xx other than those is not retried", async () => {
    const { fetch, calls } = fakeFetch([
      json(400, {
        error: { code: "invalid_request", message: "limit: too big", status: 400, details: { field: "limit" } },
      }),
    ]);
    const error = await client(fetch)
      .characters.list({ limit: 1000 })
      .catch((e: unknown) => e);
    assert.ok(error instanceof BadRequestError);
    assert.deepEqual(error.details, { field: "limit" });
    assert.equal(calls.length, 1);
  });

  test("connection errors are retried with the same key, then thrown as APIConnectionError", async () => {
    const refused = (): Error => new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED") });
    const { fetch, calls } = fakeFetch([refused(), refused(), json(201, CHARACTER)]);
    const created = await client(fetch).agents.create({ name: "Nova" });
    assert.equal(created.id, "char_1");
    assert.equal(new Set(calls.map((c) => c.headers.get("idempotency-key"))).size, 1);

    const failing = fakeFetch([refused(), refused()]);
    const error = await client(failing.fetch, { maxRetries: 1 })
      .user.me()
      .catch((e: unknown) => e);
    assert.ok(error instanceof APIConnectionError);
    assert.match(error.message, /ECONNREFUSED/);
    assert.equal(failing.calls.length, 2);
  });

  test("a timeout is APITimeoutError (retried like a connection error)", async () => {
    const hang = (_call: Call, signal: AbortSignal | undefined): Promise<Response> =>
      new Promise((_, reject) =>
        signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))),
      );
    const { fetch, calls } = fakeFetch([hang, hang]);
    const error = await client(fetch, { timeout: 50, maxRetries: 1 })
      .user.me()
      .catch((e: unknown) => e);
    assert.ok(error instanceof APITimeoutError);
    assert.ok(error instanceof APIConnectionError);
    assert.equal(calls.length, 2);
  });

  test("the caller's signal aborts without a retry", async () => {
    const hang = (_call: Call, signal: AbortSignal | undefined): Promise<Response> =>
      new Promise((_, reject) =>
        signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))),
      );
    const { fetch, calls } = fakeFetch([hang]);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 20);
    await assert.rejects(client(fetch).user.me({ signal: controller.signal }), APIUserAbortError);
    assert.equal(calls.length, 1);
  });
});

describe("streams: error paths", () => {
  function sse(...events: string[]): Response {
    return new Response(events.join(""), { status: 200, headers: { "content-type": "text/event-stream" } });
  }

  test("an error event is thrown from the iteration as the typed error (characters API)", async () => {
    const body = {
      error: { code: "engine_unavailable", message: "The model engine is unavailable", status: 503, details: {} },
    };
    const { fetch } = fakeFetch([
      sse('event: delta\ndata: {"content":"Hel"}\n\n', `event: error\ndata: ${JSON.stringify(body)}\n\n`),
    ]);
    const stream = await client(fetch).chat.send("char_1", "Hi", { stream: true });
    const seen: string[] = [];
    const error = await (async () => {
      for await (const event of stream) if (event.type === "delta") seen.push(event.content);
    })().catch((e: unknown) => e);
    assert.deepEqual(seen, ["Hel"]);
    assert.ok(error instanceof InternalServerError);
    assert.equal(error.status, 503);
    assert.equal(error.code, "engine_unavailable");
  });

  test("an error event of the agents API gets its status from its message", async () => {
    const { fetch } = fakeFetch([
      sse('event: error\ndata: {"error":"No conversation \'conv_1\'"}\n\n'),
      sse('event: error\ndata: {"error":"Internal error"}\n\n'),
    ]);
    const gone = await client(fetch).messages.send("conv_1", "Hi", { stream: true });
    await assert.rejects(gone.finalMessage(), NotFoundError);
    const unknown = await client(fetch).messages.send("conv_1", "Hi", { stream: true });
    await assert.rejects(unknown.finalMessage(), InternalServerError, "any other message is a 500");
    const timedOut = fakeFetch([sse('event: error\ndata: {"error":"The model engine timed out"}\n\n')]);
    const other = await client(timedOut.fetch).messages.send("conv_1", "Hi", { stream: true });
    const error = await other.text().catch((e: unknown) => e);
    assert.ok(error instanceof InternalServerError);
    assert.equal(error.status, 504);
    assert.equal(error.code, "engine_timeout");
  });

  test("a stream that ends before its message is APIConnectionError", async () => {
    const { fetch } = fakeFetch([sse('event: delta\ndata: {"content":"Hel"}\n\nevent: message\ndata: {"id":')]);
    const stream = await client(fetch).chat.send("char_1", "Hi", { stream: true });
    await assert.rejects(stream.finalMessage(), APIConnectionError);
  });

  test("an error status before the stream starts is thrown by the call itself", async () => {
    const { fetch } = fakeFetch([json(404, { error: { code: "not_found", message: "no", status: 404, details: {} } })]);
    await assert.rejects(client(fetch).chat.send("char_x", "Hi", { stream: true }), NotFoundError);
  });
});

describe("parseSSE", () => {
  async function parse(chunks: string[]): Promise<ServerSentEvent[]> {
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
        controller.close();
      },
    });
    const events: ServerSentEvent[] = [];
    for await (const event of parseSSE(body)) events.push(event);
    return events;
  }

  const text =
    'event: delta\r\ndata: {"content":"a"}\r\n\r\n: a comment\n\nevent: message\ndata: {"id":1,\ndata: "x":"é"}\r\rdata:plain\n\n';
  const expected = [
    { event: "delta", data: '{"content":"a"}' },
    { event: "message", data: '{"id":1,\n"x":"é"}' },
    { event: "message", data: "plain" },
  ];

  test("CRLF, CR and LF line ends, comments, multi-line data", async () => {
    assert.deepEqual(await parse([text]), expected);
  });

  test("the same split at every byte: chunk boundaries do not matter", async () => {
    const bytes = new TextEncoder().encode(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const decoder = new TextDecoder();
      // Cut the bytes (not the characters): a multi-byte "é" and a CRLF get split too.
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(bytes.slice(0, cut));
          controller.enqueue(bytes.slice(cut));
          controller.close();
        },
      });
      const events: ServerSentEvent[] = [];
      for await (const event of parseSSE(body)) events.push(event);
      assert.deepEqual(events, expected, `cut at ${cut} (${JSON.stringify(decoder.decode(bytes.slice(0, cut)))})`);
    }
  });

  test("one byte at a time, and an event the stream ends inside of is dropped", async () => {
    const chars = [..."\ufeffdata: one\n\ndata: cut"];
    assert.deepEqual(await parse(chars), [{ event: "message", data: "one" }]);
  });
});
