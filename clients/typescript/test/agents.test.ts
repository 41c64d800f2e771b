/** The agents API: agents, conversations, messages, completions, models, on the live server. */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { NotFoundError, Page, Stream, type Message, type Personae } from "personae";
import { newClient, SHORT } from "./live.js";

let client: Personae;

before(async () => {
  client = await newClient("premium");
});

describe("agents", () => {
  test("create, get, update, delete; the same character in the characters API", async () => {
    const agent = await client.agents.create({
      name: "Captain Brine",
      personality_prompt: "Gruff but kind",
      description: "A sea captain",
      greeting: "Ahoy, {{user}}!",
      tags: ["pirate"],
    });
    assert.match(agent.id, /^char_/);
    assert.equal(agent.visibility, "private");
    assert.equal(agent.response.status, 201);
    const got = await client.agents.get(agent.id);
    assert.equal(got.personality_prompt, "Gruff but kind");
    const asCharacter = await client.characters.get(agent.id);
    assert.equal(asCharacter.personality, "Gruff but kind");

    const updated = await client.agents.update(agent.id, { visibility: "public", age: 40 });
    assert.equal(updated.visibility, "public");
    assert.equal(updated.age, 40);

    const deleted = await client.agents.delete(agent.id);
    assert.equal(deleted.response.status, 204);
    assert.equal(deleted.rateLimit?.limit, 750);
    await assert.rejects(client.agents.get(agent.id), NotFoundError);
  });

  test("list pages through plain arrays: page_size 2 over 5 agents", async () => {
    const own = await newClient("premium");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await own.agents.create({ name: `Agent ${i}` })).id);
    const first = await own.agents.list({ page_size: 2 });
    assert.ok(first instanceof Page);
    assert.equal(first.data.length, 2);
    assert.deepEqual(first.pagination, { page: 1, page_size: 2 });
    assert.ok(first.hasNextPage());
    const second = await first.getNextPage();
    assert.deepEqual(second.pagination, { page: 2, page_size: 2 });
    const seen: string[] = [];
    for await (const agent of first) seen.push(agent.id);
    assert.deepEqual(seen, [...ids].reverse(), "newest first, every one once");
    const all = await own.agents.list();
    assert.equal(all.data.length, 5);
    assert.equal(all.hasNextPage(), false, "a page that is not full is the last");
  });
});

describe("conversations and messages", () => {
  test("create, get, update, list, branch, delete", async () => {
    const agent = await client.agents.create({ name: "Mira", greeting: "Hello, {{user}}." });
    const conversation = await client.conversations.create({ agent_id: agent.id, title: "First" });
    assert.equal(conversation.agent_id, agent.id);
    assert.equal(conversation.message_count, 1, "the greeting opens it");

    const got = await client.conversations.get(conversation.id);
    assert.equal(got.title, "First");
    const updated = await client.conversations.update(conversation.id, {
      title: "Renamed",
      system_prompt: "Be brief.",
    });
    assert.deepEqual([updated.title, updated.system_prompt], ["Renamed", "Be brief."]);

    const bare = await client.conversations.create();
    const list = await client.conversations.list({ page_size: 1 });
    const ids: string[] = [];
    for await (const c of list) ids.push(c.id);
    assert.ok(ids.includes(conversation.id) && ids.includes(bare.id));

    const [greeting] = (await client.messages.list(conversation.id)).data as [Message];
    const branch = await client.conversations.branch(conversation.id, greeting.id);
    assert.equal(branch.title, "Renamed (branch)");
    assert.equal(branch.message_count, 1);

    const removed = await client.conversations.delete(branch.id);
    assert.equal(removed.response.status, 204);
    await assert.rejects(client.conversations.get(branch.id), NotFoundError);
  });

  test("send (plain and streamed), list (paged), update, regenerate, delete", async () => {
    const conversation = await client.conversations.create({ system_prompt: "You are a helpful assistant." });
    const answer = await client.messages.send(conversation.id, "Say hello.", SHORT);
    assert.equal(answer.role, "agent");
    assert.ok(answer.content.trim());

    const stream = await client.messages.send(conversation.id, "Say goodbye.", { ...SHORT, stream: true });
    assert.ok(stream instanceof Stream);
    const deltas: string[] = [];
    for await (const event of stream) if (event.type === "delta") deltas.push(event.content);
    const streamed = await stream.finalMessage();
    assert.equal(streamed.role, "agent");
    assert.equal(deltas.join("").trim(), streamed.content.trim());

    const page = await client.messages.list(conversation.id, { page_size: 3 });
    assert.equal(page.data.length, 3);
    const messages: Message[] = [];
    for await (const m of page) messages.push(m);
    assert.deepEqual(
      messages.map((m) => m.role),
      ["user", "agent", "user", "agent"],
      "oldest first, across pages",
    );

    const [question] = messages as [Message];
    const edited = await client.messages.update(conversation.id, question.id, { content: "Say hello, please." });
    assert.equal(edited.content, "Say hello, please.");

    const regenerated = await client.messages.regenerate(conversation.id, answer.id, SHORT);
    assert.equal(regenerated.alternatives?.length, 2);
    const again = await client.messages.regenerate(conversation.id, answer.id, { ...SHORT, stream: true });
    assert.equal((await again.finalMessage()).alternatives?.length, 3);

    const deleted = await client.messages.delete(conversation.id, streamed.id);
    assert.equal(deleted.response.status, 204);
    assert.equal((await client.conversations.get(conversation.id)).message_count, 3);
  });
});

describe("completions", () => {
  test("create, with the default model looked up, plain and streamed", async () => {
    const completion = await client.completions.create({
      messages: [{ role: "user", content: "Say yes." }],
      ...SHORT,
    });
    assert.equal(completion.role, "agent");
    assert.ok(completion.content.trim());

    const [model] = await client.models.list({ type: "llm" });
    assert.ok(model);
    const stream = await client.completions.create({
      messages: [
        { role: "system", content: "Answer in one word." },
        { role: "user", content: "Colour of the sky?" },
      ],
      llm_id: model.id,
      stream: true,
      ...SHORT,
    });
    const text = await stream.text();
    assert.equal(text.trim(), (await stream.finalMessage()).content.trim());
  });
});

describe("models", () => {
  test("list llm and sd", async () => {
    const llms = await client.models.list({ type: "llm" });
    assert.ok(Array.isArray(llms));
    assert.equal(llms[0]?.type, "llm");
    assert.equal(llms.rateLimit?.limit, 750);
    assert.equal(llms.response.status, 200);
    const images = await client.models.list({ type: "sd" });
    assert.ok(
      images.some((m) => m.placeholder),
      "the built-in placeholder image model",
    );
  });
});
