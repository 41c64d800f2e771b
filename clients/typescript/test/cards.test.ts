/** Character Cards (import, export) and lorebooks of the characters API, against the live server. */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import {
  BadRequestError,
  NotFoundError,
  PermissionDeniedError,
  type CharacterCard,
  type Lorebook,
  type Personae,
} from "personae";
import { characterFields, clientFor, createAccount, newClient, unique } from "./live.js";

let client: Personae;

before(async () => {
  client = clientFor(await createAccount("premium"));
});

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** A lorebook with the fields a card's `character_book` may have: unicode, CRLF, U+00A0, nesting. */
function book(name = "Eldoria \u2728"): Lorebook {
  return {
    name,
    description: "The forest's lore\r\n",
    scan_depth: 3,
    token_budget: 400,
    recursive_scanning: true,
    extensions: { world: { nested: [1, { deep: null }] } },
    entries: [
      {
        id: 7,
        keys: ["forest", "Wood"],
        secondary_keys: ["night"],
        content: "The forest of {{char}} glows\u00a0at night.\r\n",
        extensions: { selectiveLogic: 0, probability: null, useProbability: false },
        enabled: true,
        insertion_order: 100,
        case_sensitive: false,
        name: "forest",
        priority: 10,
        comment: "",
        selective: true,
        constant: false,
        position: "after_char",
      },
      {
        id: "two",
        keys: ["dragon"],
        content: "",
        extensions: {},
        enabled: false,
        insertion_order: 5,
        constant: true,
        position: "before_char",
      },
    ],
  };
}

/** A V2 card with every field set, its lorebook included. */
function v2Card(name = "Nyx \u00e9toile"): CharacterCard {
  return {
    spec: "chara_card_v2",
    spec_version: "2.0",
    data: {
      name,
      description: "A cartographer of the night market \u2014 \u65e5\u672c\u8a9e \u{1f409}",
      personality: "Curious,\u00a0patient",
      scenario: "A night market.\r\n\r\nRain.",
      first_mes: "  *waves* Hello, {{user}}!  \r\n",
      mes_example: "<START>\n{{user}}: Hi\n{{char}}: Hello.",
      creator_notes: "Notes \u2014 \u{1f600}",
      system_prompt: "Write as {{char}}.\r\n",
      post_history_instructions: "[Stay brief, {{char}}.]",
      alternate_greetings: ["", "Hi again\r\n"],
      tags: ["Fantasy", "Sci-Fi", "Fantasy"],
      creator: "someone@example \u00e9",
      character_version: "1.0.2",
      extensions: { talkativeness: "0.5", fav: false, depth_prompt: { depth: 4 } },
      character_book: book(),
    },
  };
}

/** The `tEXt` chunks of a PNG, keyword to text (Latin-1). */
function pngTexts(bytes: Uint8Array): Record<string, string> {
  const buffer = Buffer.from(bytes);
  const texts: Record<string, string> = {};
  for (let at = 8; at + 8 <= buffer.length; ) {
    const length = buffer.readUInt32BE(at);
    const type = buffer.toString("latin1", at + 4, at + 8);
    const data = buffer.subarray(at + 8, at + 8 + length);
    if (type === "tEXt") {
      const nul = data.indexOf(0);
      texts[data.toString("latin1", 0, nul)] = data.toString("latin1", nul + 1);
    }
    at += 12 + length;
  }
  return texts;
}

/** The card a PNG carries in its `chara` chunk. */
function charaOf(bytes: Uint8Array): unknown {
  const chara = pngTexts(bytes)["chara"];
  assert.ok(chara, "the PNG has a chara tEXt chunk");
  return JSON.parse(Buffer.from(chara, "base64").toString("utf8"));
}

describe("Character Cards", () => {
  test("importCard (a JSON V2 card), then exportCard json gives back every field", async () => {
    const card = v2Card();
    const character = await client.characters.importCard(card);
    assert.equal(character.response.status, 201);
    assert.match(character.id, /^char_/);
    assert.equal(character.name, card.data.name);
    assert.equal(character.visibility, "public");
    assert.equal(character.greeting, card.data.first_mes);
    assert.equal(character.scenario, card.data.scenario);
    assert.equal(character.example_dialogue, card.data.mes_example);
    assert.equal(character.system_prompt, card.data.system_prompt);
    assert.equal(character.post_history_instructions, card.data.post_history_instructions);
    assert.equal(character.creator_notes, card.data.creator_notes);
    assert.equal(character.card_creator, card.data.creator);
    assert.equal(character.card_version, card.data.character_version);
    assert.deepEqual(character.alternate_greetings, card.data.alternate_greetings);
    assert.deepEqual(character.tags, ["fantasy", "sci-fi"]);
    assert.ok(character.rateLimit, "the meta is there");

    const exported = await client.characters.exportCard(character.id, { format: "json" });
    assert.equal(exported.response.status, 200);
    assert.equal(exported.mediaType, "application/json");
    assert.equal(exported.filename, `${character.id}.card.json`);
    assert.deepEqual(exported.card, card, "import then export is exact");
    assert.deepEqual(JSON.parse(new TextDecoder().decode(exported.content)), card);
    assert.ok(exported.rateLimit);
    assert.deepEqual(Object.keys(exported).sort(), ["card", "content", "filename", "mediaType"]);

    const v3 = await client.characters.exportCard(character.id, { format: "json", spec: "v3" });
    assert.equal(v3.card.spec, "chara_card_v3");
    assert.equal(v3.card.data.name, card.data.name);
  });

  test("exportCard png carries the card; importCard of that PNG as a Blob makes it again, with its avatar", async () => {
    const card = v2Card(`Lantern ${unique()}`);
    const original = await client.characters.importCard(card);
    assert.equal(original.image_url, null, "a JSON card has no avatar");

    const file = await client.characters.exportCard(original.id); // png is the default
    assert.equal(file.mediaType, "image/png");
    assert.equal(file.filename, `${original.id}.png`);
    assert.ok(file.content instanceof Uint8Array);
    assert.deepEqual([...file.content.subarray(0, 8)], PNG_SIGNATURE);
    assert.deepEqual(charaOf(file.content), card, "the chara chunk holds the card");
    assert.equal("card" in file, false, "only a JSON export is parsed");

    const again = await client.characters.importCard(new Blob([file.content], { type: "image/png" }), {
      visibility: "private",
    });
    assert.equal(again.response.status, 201);
    assert.notEqual(again.id, original.id);
    assert.equal(again.name, card.data.name);
    assert.equal(again.visibility, "private", "visibility goes as a form field");
    assert.ok(again.image_url, "the PNG became the avatar");
    const avatar = await fetch(again.image_url);
    assert.equal(avatar.status, 200);
    assert.deepEqual([...new Uint8Array(await avatar.arrayBuffer()).subarray(0, 8)], PNG_SIGNATURE);
    assert.deepEqual((await client.characters.lorebook(again.id)).lorebook, card.data.character_book);
    assert.deepEqual(charaOf((await client.characters.exportCard(again.id, { format: "png" })).content), card);

    const spec3 = await client.characters.exportCard(again.id, { format: "png", spec: "v3" });
    const texts = pngTexts(spec3.content);
    assert.ok(texts["ccv3"], "a V3 export has a ccv3 chunk");
    assert.ok(texts["chara"], "and a V2 card beside it for older readers");
  });

  test("exportCard charx is a zip", async () => {
    const character = await client.characters.importCard(v2Card());
    const charx = await client.characters.exportCard(character.id, { format: "charx", spec: "v3" });
    assert.equal(charx.mediaType, "application/zip");
    assert.equal(charx.filename, `${character.id}.charx`);
    assert.deepEqual([...charx.content.subarray(0, 4)], [0x50, 0x4b, 0x03, 0x04], "PK\\3\\4");
  });

  test("importCard of bytes (Uint8Array, ArrayBuffer) and of JSON text", async () => {
    const card = v2Card(`Bytes ${unique()}`);
    const text = JSON.stringify(card);
    const fromBytes = await client.characters.importCard(new TextEncoder().encode(text));
    assert.equal(fromBytes.name, card.data.name);
    const fromBuffer = await client.characters.importCard(new TextEncoder().encode(text).buffer as ArrayBuffer, {
      visibility: "private",
    });
    assert.equal(fromBuffer.visibility, "private");

    // A string is sent as it is (here with a V1 card: its fields at the top level),
    // visibility then in the query.
    const v1 = `{"name": "Plain ${unique()}", "description": "A V1 card", "first_mes": "Hi\\r\\n"}`;
    const fromText = await client.characters.importCard(v1, { visibility: "private" });
    assert.equal(fromText.visibility, "private");
    assert.equal(fromText.description, "A V1 card");
    assert.equal(fromText.greeting, "Hi\r\n");
    assert.deepEqual((await client.characters.lorebook(fromText.id)).lorebook, null);
  });

  test("importCard with the caller's idempotency key makes one character", async () => {
    const key = `import-${unique()}`;
    const card = v2Card(`Once ${unique()}`);
    const first = await client.characters.importCard(card, { idempotencyKey: key });
    const second = await client.characters.importCard(card, { idempotencyKey: key });
    assert.equal(second.id, first.id);
    assert.equal(second.response.idempotentReplayed, true);
  });

  test("refusals: a malformed card, a missing character, someone else's private one", async () => {
    await assert.rejects(
      client.characters.importCard({ spec: "chara_card_v2", spec_version: "2.0" } as unknown as CharacterCard),
      (error: unknown) => error instanceof BadRequestError && error.code === "invalid_request",
    );
    await assert.rejects(client.characters.importCard("{not json"), BadRequestError);
    await assert.rejects(client.characters.importCard(new Uint8Array([1, 2, 3])), BadRequestError);
    await assert.rejects(client.characters.exportCard("char_missing", { format: "json" }), NotFoundError);

    const hidden = await client.characters.importCard(v2Card(), { visibility: "private" });
    const other = await newClient("premium");
    await assert.rejects(other.characters.exportCard(hidden.id), NotFoundError);
  });
});

describe("lorebooks", () => {
  test("lorebook, setLorebook, deleteLorebook", async () => {
    const card = v2Card();
    const character = await client.characters.importCard(card);

    const current = await client.characters.lorebook(character.id);
    assert.equal(current.response.status, 200);
    assert.equal(current.character_id, character.id);
    assert.deepEqual(current.lorebook, card.data.character_book, "the card's book, as given");
    assert.ok(current.updated_at);

    const replacement: Lorebook = {
      name: "The harbour",
      entries: [
        { keys: ["lighthouse"], content: "The lighthouse has been dark for years.", insertion_order: 1 },
        { keys: ["/\\bships?\\b/i"], content: "Ships come at dawn.", use_regex: true, unknown_field: [1, 2] },
      ],
      custom: { kept: true },
    };
    const set = await client.characters.setLorebook(character.id, replacement);
    assert.equal(set.character_id, character.id);
    assert.deepEqual(set.lorebook, replacement);
    assert.ok(set.updated_at);
    assert.deepEqual((await client.characters.lorebook(character.id)).lorebook, replacement);
    const exported = await client.characters.exportCard(character.id, { format: "json" });
    assert.deepEqual(exported.card.data.character_book, replacement, "the export has the new book");

    const deleted = await client.characters.deleteLorebook(character.id);
    assert.equal(deleted.success, true);
    assert.equal(deleted.character_id, character.id);
    const none = await client.characters.lorebook(character.id);
    assert.equal(none.lorebook, null);
    assert.equal(none.updated_at, null);
  });

  test("a character made here has none until one is set", async () => {
    const character = await client.characters.create(characterFields("No Lore"));
    assert.equal((await client.characters.lorebook(character.id)).lorebook, null);
    const set = await client.characters.setLorebook(character.id, {
      entries: [{ keys: ["courier"], content: "{{char}} never opens a parcel." }],
    });
    assert.equal(set.lorebook?.entries.length, 1);
  });

  test("refusals: a bad book, someone else's character", async () => {
    const character = await client.characters.create(characterFields("Strict Lore"));
    await assert.rejects(
      client.characters.setLorebook(character.id, {
        entries: [{ keys: ["(a+)+"], content: "x", use_regex: true }],
      }),
      (error: unknown) => error instanceof BadRequestError && /entries\.0\.keys/.test(error.message),
    );
    await assert.rejects(
      client.characters.setLorebook(character.id, { entries: [{ keys: ["x"] }] } as unknown as Lorebook),
      BadRequestError,
    );
    const other = await newClient("premium");
    await assert.rejects(other.characters.lorebook(character.id), PermissionDeniedError);
    await assert.rejects(other.characters.setLorebook(character.id, { entries: [] }), PermissionDeniedError);
    await assert.rejects(other.characters.deleteLorebook(character.id), PermissionDeniedError);
  });
});
