/** Chat of the characters API (`/v1/chat`), streamed and not, against the live server. */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { NotFoundError, Stream, type ChatMessage, type Personae } from "personae";
import { characterFields, newClient, SHORT } from "./live.js";

let client: Personae;
let characterId: string;

before(async () => {
  client = await newClient("premium");
  characterId = (await client.characters.create(characterFields("Vexa Stride"))).id;
});

describe("chat", () => {
  test("send starts a conversation, and continues it", async () => {
    const reply = await client.chat.send(characterId, "Tell me about your adventures as a courier.", SHORT);
    assert.match(reply.id, /^msg_/);
    assert.equal(reply.is_character, true);
    assert.equal(reply.character_id, characterId);
    assert.ok(reply.content.trim(), "the character answered");
    assert.equal(reply.rateLimit?.limit, 750);

    const next = await client.chat.send(characterId, "And then?", {
      ...SHORT,
      conversation_id: reply.conversation_id,
      verbose: true,
    });
    assert.equal(next.conversation_id, reply.conversation_id);
    assert.ok(next.thought_process, "verbose adds thought_process");
  });

  test("send with stream: true streams deltas, then the stored message", async () => {
    const stream = await client.chat.send(characterId, "Where do you live?", { ...SHORT, stream: true });
    assert.ok(stream instanceof Stream);
    assert.equal(stream.response.status, 200);
    assert.match(stream.response.headers.get("content-type") ?? "", /text\/event-stream/);
    assert.equal(stream.rateLimit?.limit, 750);

    const deltas: string[] = [];
    let message: ChatMessage | undefined;
    for await (const event of stream) {
      if (event.type === "delta") deltas.push(event.content);
      else message = event.message;
    }
    assert.ok(deltas.length >= 1, "deltas came");
    assert.ok(message, "the message came last");
    assert.equal(deltas.join("").trim(), message.content.trim(), "the deltas make the message");
    assert.equal(message.is_character, true);
    assert.equal((await stream.finalMessage()).id, message.id, "finalMessage after the loop");
    assert.equal(await stream.text(), deltas.join(""));

    // The same message, stored: the conversation lists it.
    const listed = await client.chat.messages.list(message.conversation_id);
    assert.equal(listed.data[0]?.id, message.id);
  });

  test("the stream's helpers: finalMessage() and textStream()", async () => {
    const stream = await client.chat.send(characterId, "Hi!", { ...SHORT, stream: true });
    const message = await stream.finalMessage();
    assert.equal(message.is_character, true);
    assert.equal((await stream.text()).trim(), message.content.trim(), "text() after finalMessage()");

    const pieces: string[] = [];
    const other = await client.chat.send(characterId, "Hello again", { ...SHORT, stream: true });
    for await (const piece of other.textStream()) pieces.push(piece);
    assert.ok(pieces.length >= 1);
    assert.equal(await other.text(), pieces.join(""));
  });
});

describe("chat.conversations and chat.messages", () => {
  test("list, get, rename, branch, messages (paged), edit, regenerate, delete", async () => {
    const first = await client.chat.send(characterId, "First question", SHORT);
    const conversationId = first.conversation_id;
    await client.chat.send(characterId, "Second question", { ...SHORT, conversation_id: conversationId });

    const conversations = await client.chat.conversations.list({ character_id: characterId, limit: 1 });
    assert.ok(conversations.pagination.total >= 2, "the earlier tests' conversations count too");
    assert.equal(conversations.data.length, 1);
    const allConversations: string[] = [];
    for await (const conversation of conversations) allConversations.push(conversation.id);
    assert.equal(allConversations.length, conversations.pagination.total);
    assert.ok(allConversations.includes(conversationId));

    const got = await client.chat.conversations.get(conversationId);
    assert.equal(got.id, conversationId);
    assert.equal(got.character.id, characterId);
    assert.equal(got.message_count, 4);

    const renamed = await client.chat.conversations.update(conversationId, { title: "Courier stories" });
    assert.equal(renamed.title, "Courier stories");

    // Four messages, newest first, two a page.
    const page = await client.chat.messages.list(conversationId, { limit: 2 });
    assert.equal(page.pagination.total, 4);
    assert.equal(page.pagination.pages, 2);
    const messages: ChatMessage[] = [];
    for await (const message of page) messages.push(message);
    assert.equal(messages.length, 4);
    assert.deepEqual(
      messages.map((m) => m.is_character),
      [true, false, true, false],
    );
    const [lastAnswer, lastQuestion, firstAnswer] = messages as [ChatMessage, ChatMessage, ChatMessage, ChatMessage];

    const edited = await client.chat.messages.update(conversationId, lastQuestion.id, {
      content: "Second question, edited",
    });
    assert.equal(edited.content, "Second question, edited");

    const regenerated = await client.chat.messages.regenerate(conversationId, lastAnswer.id, SHORT);
    assert.equal(regenerated.id, lastAnswer.id);
    assert.equal(regenerated.alternatives?.length, 2);
    assert.equal(regenerated.selected, 1);

    const streamed = await client.chat.messages.regenerate(conversationId, lastAnswer.id, { ...SHORT, stream: true });
    const third = await streamed.finalMessage();
    assert.equal(third.alternatives?.length, 3);
    assert.equal(third.selected, 2);

    const chosen = await client.chat.messages.update(conversationId, lastAnswer.id, { selected: 0 });
    assert.equal(chosen.selected, 0);
    assert.equal(chosen.content, lastAnswer.content);

    const branch = await client.chat.conversations.branch(conversationId, firstAnswer.id);
    assert.notEqual(branch.id, conversationId);
    assert.equal(branch.title, "Courier stories (branch)");
    assert.equal(branch.message_count, 2);

    const deletedMessage = await client.chat.messages.delete(conversationId, lastAnswer.id);
    assert.equal(deletedMessage.message_id, lastAnswer.id);
    assert.equal((await client.chat.conversations.get(conversationId)).message_count, 3);

    const deleted = await client.chat.conversations.delete(branch.id);
    assert.equal(deleted.conversation_id, branch.id);
    await assert.rejects(client.chat.conversations.get(branch.id), NotFoundError);
  });
});
