import { withMeta, type WithMeta } from "../core/meta.js";
import { APIResource, path, type CharactersAPIPage } from "../core/resource.js";
import { RawBody, type RequestOptions } from "../core/transport.js";
import type {
  CardExportQuery,
  CatalogueQuery,
  Character,
  CharacterCreateBody,
  CharacterSummary,
  CharacterUpdateBody,
  Done,
  LikeState,
  Lorebook,
  LorebookOut,
  Visibility,
} from "../types.js";

/** An image to upload: PNG or JPEG bytes (the server reads the type from the content). */
export type ImageInput = Blob | Uint8Array | ArrayBuffer;

/** `characters.create`: the JSON fields, and optionally an `image` (sent as a multipart form). */
export type CharacterCreateParams = CharacterCreateBody & { image?: ImageInput };

/** `characters.update`: the fields to change, and optionally a new `image`. */
export type CharacterUpdateParams = CharacterUpdateBody & { image?: ImageInput };

/** `characters.list`: the catalogue's query; `tags` as an array or comma-separated. */
export type CharacterListParams = Omit<CatalogueQuery, "tags"> & { tags?: readonly string[] | string };

/**
 * The fields of a Character Card: a V2/V3 card's `data`, or a V1 card's top level. Only
 * `name` is required; any other field (V3's `nickname`, `assets`, …) is allowed, kept by
 * the server and given back on export.
 */
export interface CharacterCardData {
  name: string;
  description?: string | null;
  personality?: string | null;
  scenario?: string | null;
  first_mes?: string | null;
  mes_example?: string | null;
  creator_notes?: string | null;
  system_prompt?: string | null;
  post_history_instructions?: string | null;
  alternate_greetings?: string[] | null;
  tags?: string[] | null;
  creator?: string | null;
  character_version?: string | null;
  extensions?: Record<string, unknown> | null;
  /** The card's lorebook. */
  character_book?: Lorebook | null;
  [field: string]: unknown;
}

/** A V2 (`chara_card_v2`, `spec_version` `"2.0"`) or V3 (`chara_card_v3`, `"3.0"`) Character Card. */
export interface CharacterCard {
  spec: "chara_card_v2" | "chara_card_v3";
  spec_version: string;
  data: CharacterCardData;
  [field: string]: unknown;
}

/**
 * A card to import: the file's bytes (a `Blob`/`File`, `Uint8Array` or `ArrayBuffer` of a
 * PNG card, a CHARX zip or card JSON), sent as a multipart form; or the card's JSON, as
 * text or as an object (a V2/V3 {@link CharacterCard}, or a V1 card's fields), sent as
 * an `application/json` body.
 */
export type CardInput = Blob | Uint8Array | ArrayBuffer | string | CharacterCard | CharacterCardData;

/** `characters.importCard`'s options: the new character's `visibility` (default
 * `public`), and the per-request options. */
export type CardImportOptions = RequestOptions & { visibility?: Visibility };

/** `characters.exportCard`: `format` (`png`, the default; `json`; `charx`) and `spec`
 * (`v2`, the default; `v3`). */
export type CardExportParams = CardExportQuery;

/** An exported card file. */
export interface CardFile {
  /** The file's bytes (on a buffer of their own: `new Blob([file.content])` works as is). */
  content: Uint8Array<ArrayBuffer>;
  /** Its media type: `image/png`, `application/json` or `application/zip`. */
  mediaType: string;
  /** The file name the server suggests (`Content-Disposition`), e.g. `char_1.png`. */
  filename?: string;
}

/** An exported JSON card: the file, and the card parsed. */
export interface JsonCardFile extends CardFile {
  card: CharacterCard;
}

/** A character's lorebook (`/v1/characters/{id}/lorebook`): the book as it was given,
 * or null when it has none, and when it was last set. */
export type LorebookState = Omit<LorebookOut, "lorebook"> & { lorebook: Lorebook | null };

/**
 * The public catalogue and one's own characters (the characters API, `/v1/characters`).
 * Characters created here are `public` unless `visibility: "private"` is given.
 */
export class Characters extends APIResource {
  /**
   * Lists public characters (`GET /v1/characters`): `page` (from 1), `limit` (1–100),
   * `tags` (a character must carry all), `sort` (`popular`, `trending`, `newest`), or
   * `cursor` to read on from a page's `pagination.next_cursor`. Iterating the page with
   * `for await` reads on by cursor through the whole catalogue.
   *
   * @example
   * ```ts
   * for await (const c of await client.characters.list({ tags: ["cyberpunk"], sort: "newest" })) {
   *   console.log(c.name);
   * }
   * ```
   */
  list(params: CharacterListParams = {}, options?: RequestOptions): Promise<CharactersAPIPage<CharacterSummary>> {
    return this._charactersPage<CharacterSummary, CharacterListParams>("/v1/characters", params, options);
  }

  /** One character (`GET /v1/characters/{id}`): a public one, or one's own. */
  get(characterId: string, options?: RequestOptions): Promise<WithMeta<Character>> {
    return this._request<Character>("GET", path`/v1/characters/${characterId}`, { options });
  }

  /**
   * Creates a character (`POST /v1/characters`). With `image` (a `Blob`, `Uint8Array` or
   * `ArrayBuffer` of a PNG or JPEG, 5 MB at most) the request is a multipart form, the
   * arrays (`tags`, `alternate_greetings`) sent as JSON; otherwise it is JSON.
   */
  create(body: CharacterCreateParams, options?: RequestOptions): Promise<WithMeta<Character>> {
    return this._request<Character>("POST", "/v1/characters", { body: characterBody(body), options });
  }

  /**
   * Changes one's own character (`PATCH /v1/characters/{id}`): only the fields given
   * change; `age: null` clears the age. With `image`, the avatar is replaced (multipart).
   */
  update(characterId: string, body: CharacterUpdateParams, options?: RequestOptions): Promise<WithMeta<Character>> {
    return this._request<Character>("PATCH", path`/v1/characters/${characterId}`, {
      body: characterBody(body),
      options,
    });
  }

  /** Deletes one's own character (`DELETE /v1/characters/{id}`). */
  delete(characterId: string, options?: RequestOptions): Promise<WithMeta<Done>> {
    return this._request<Done>("DELETE", path`/v1/characters/${characterId}`, { options });
  }

  /** Likes a character (`POST /v1/characters/{id}/like`); liking twice counts once. */
  like(characterId: string, options?: RequestOptions): Promise<WithMeta<LikeState>> {
    return this._request<LikeState>("POST", path`/v1/characters/${characterId}/like`, { options });
  }

  /** Takes a like back (`DELETE /v1/characters/{id}/like`); without one, nothing changes. */
  unlike(characterId: string, options?: RequestOptions): Promise<WithMeta<LikeState>> {
    return this._request<LikeState>("DELETE", path`/v1/characters/${characterId}/like`, { options });
  }

  /**
   * Creates a character from a Character Card (`POST /v1/characters/import`; answers 201).
   * V1, V2 and V3 cards are read, as JSON, as a PNG (the card in its `chara` or `ccv3`
   * chunk; the image becomes the avatar) or as a CHARX zip (its icon becomes the avatar);
   * the server tells them apart by their bytes. Bytes (`Blob`, `Uint8Array`,
   * `ArrayBuffer`) go in a multipart form's `file` part, with `visibility` as a form field;
   * a string or an object is sent as the `application/json` body (a string exactly as
   * given), with `visibility` in the query. The card's lorebook (`character_book`) becomes
   * the character's. A malformed card is a `BadRequestError` naming what is wrong.
   *
   * @example
   * ```ts
   * const fromPng = await client.characters.importCard(await (await fetch(url)).blob());
   * const fromJson = await client.characters.importCard(
   *   { spec: "chara_card_v2", spec_version: "2.0", data: { name: "Seraphina", first_mes: "Hello!" } },
   *   { visibility: "private" },
   * );
   * ```
   */
  importCard(card: CardInput, options: CardImportOptions = {}): Promise<WithMeta<Character>> {
    const { visibility, ...requestOptions } = options;
    if (typeof card === "string" || !isBinary(card)) {
      const json = typeof card === "string" ? card : JSON.stringify(card);
      return this._request<Character>("POST", "/v1/characters/import", {
        query: { visibility },
        body: new RawBody(json, "application/json"),
        options: requestOptions,
      });
    }
    const form = new FormData();
    const blob = toBlob(card);
    form.append("file", blob, cardFilename(blob));
    if (visibility !== undefined) form.append("visibility", visibility);
    return this._request<Character>("POST", "/v1/characters/import", { body: form, options: requestOptions });
  }

  /**
   * A character as a Character Card file (`GET /v1/characters/{id}/card`): any character
   * the caller may read. `format`: `png` (the default: the avatar, or a plain image,
   * carrying the card), `json`, or `charx` (a zip with `card.json` and the avatar as its
   * icon); `spec`: `v2` (the default) or `v3`. With `format: "json"` the answer also has
   * the `card` parsed. A card imported and exported in the same format and spec comes back
   * field for field.
   *
   * @example
   * ```ts
   * const png = await client.characters.exportCard(id); // png.content: the PNG's bytes
   * const { card } = await client.characters.exportCard(id, { format: "json", spec: "v3" });
   * ```
   */
  exportCard(
    characterId: string,
    params: CardExportParams & { format: "json" },
    options?: RequestOptions,
  ): Promise<WithMeta<JsonCardFile>>;
  exportCard(characterId: string, params?: CardExportParams, options?: RequestOptions): Promise<WithMeta<CardFile>>;
  async exportCard(
    characterId: string,
    params: CardExportParams = {},
    options?: RequestOptions,
  ): Promise<WithMeta<CardFile>> {
    const fileType = EXPORT_TYPES[params.format ?? "png"];
    const { data, info } = await this._transport.bytes({
      method: "GET",
      path: path`/v1/characters/${characterId}/card`,
      query: { format: params.format, spec: params.spec },
      // The file's type, and JSON for an error.
      accept: fileType === "application/json" ? fileType : `${fileType}, application/json`,
      options,
    });
    const mediaType = (info.headers.get("content-type") ?? "").split(";")[0]?.trim() || "application/octet-stream";
    const file: CardFile = { content: data, mediaType };
    const filename = dispositionFilename(info.headers.get("content-disposition"));
    if (filename !== undefined) file.filename = filename;
    if (params.format === "json") {
      (file as JsonCardFile).card = JSON.parse(new TextDecoder().decode(data)) as CharacterCard;
    }
    return withMeta(file, info);
  }

  /**
   * One's own character's lorebook (`GET /v1/characters/{id}/lorebook`): `lorebook` is
   * the book as it was given (by a card's `character_book` or {@link Characters.setLorebook}),
   * or null. Owner only: `PermissionDeniedError` on someone else's public character.
   */
  lorebook(characterId: string, options?: RequestOptions): Promise<WithMeta<LorebookState>> {
    return this._request<LorebookState>("GET", path`/v1/characters/${characterId}/lorebook`, { options });
  }

  /**
   * Replaces one's own character's lorebook (`PUT /v1/characters/{id}/lorebook`), which
   * applies to every turn with the character from then on. The book is checked against
   * its caps (256 entries, 64 keys each, safe regular expressions, …): a
   * `BadRequestError` names the faulty field.
   *
   * @example
   * ```ts
   * await client.characters.setLorebook(id, {
   *   name: "The harbour",
   *   entries: [{ keys: ["lighthouse"], content: "The lighthouse has been dark for years." }],
   * });
   * ```
   */
  setLorebook(characterId: string, book: Lorebook, options?: RequestOptions): Promise<WithMeta<LorebookState>> {
    return this._request<LorebookState>("PUT", path`/v1/characters/${characterId}/lorebook`, { body: book, options });
  }

  /** Removes one's own character's lorebook (`DELETE /v1/characters/{id}/lorebook`). */
  deleteLorebook(characterId: string, options?: RequestOptions): Promise<WithMeta<Done>> {
    return this._request<Done>("DELETE", path`/v1/characters/${characterId}/lorebook`, { options });
  }
}

/** Form parts that hold a JSON array. */
const JSON_PARTS = new Set(["tags", "alternate_greetings"]);

/** The body of a create or update: JSON, or a multipart form when there is an image. */
function characterBody(params: { image?: ImageInput } & Record<string, unknown>): unknown {
  const { image, ...fields } = params;
  if (image === undefined) return fields;
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    if (value === null) {
      throw new TypeError(
        `${name}: null cannot be sent with an image (a form part cannot be null); clear it in a separate update`,
      );
    }
    form.append(name, JSON_PARTS.has(name) || typeof value === "object" ? JSON.stringify(value) : String(value));
  }
  const blob = toBlob(image);
  form.append("image", blob, blob.type === "image/jpeg" ? "image.jpg" : "image.png");
  return form;
}

/** The media type asked for by each export format. */
const EXPORT_TYPES = { png: "image/png", json: "application/json", charx: "application/zip" } as const;

function isBinary(value: unknown): value is Blob | Uint8Array | ArrayBuffer {
  return value instanceof Blob || value instanceof Uint8Array || value instanceof ArrayBuffer;
}

/** A card's file name in the form: a `File`'s own, else one that fits its type. */
function cardFilename(blob: Blob): string {
  const name = (blob as { name?: unknown }).name;
  if (typeof name === "string" && name !== "") return name;
  if (blob.type === "image/png") return "card.png";
  if (blob.type === "application/zip") return "card.charx";
  if (blob.type === "application/json") return "card.json";
  return "card";
}

/** The `filename` of a `Content-Disposition` header (`filename*` first), if any. */
function dispositionFilename(header: string | null): string | undefined {
  if (!header) return undefined;
  const extended = /filename\*\s*=\s*(?:utf-8)?'[^']*'([^;]+)/i.exec(header);
  if (extended?.[1]) {
    try {
      return decodeURIComponent(extended[1].trim());
    } catch {
      // fall back to the plain parameter
    }
  }
  const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/.exec(header);
  if (!plain) return undefined;
  return plain[1] !== undefined ? plain[1].replace(/\\(.)/g, "$1") : plain[2];
}

function toBlob(image: ImageInput): Blob {
  if (image instanceof Blob) return image;
  const bytes = image instanceof Uint8Array ? image : new Uint8Array(image);
  // A copy into a fresh ArrayBuffer: a view may sit on a larger or shared buffer.
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Blob([copy.buffer], { type: sniff(copy) });
}

/** What may come before a JSON document's "{": a byte order mark, whitespace. */
const LEADING_BYTES = new Set([0xef, 0xbb, 0xbf, 0x20, 0x09, 0x0a, 0x0d]);

function sniff(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return "image/jpeg";
  if (bytes[0] === 0x89 && bytes[1] === 0x50) return "image/png";
  if (bytes[0] === 0x50 && bytes[1] === 0x4b) return "application/zip"; // "PK": a CHARX
  // JSON: "{" after a UTF-8 byte order mark or whitespace.
  const first = bytes.find((b) => !LEADING_BYTES.has(b));
  if (first === 0x7b) return "application/json";
  return "application/octet-stream";
}
