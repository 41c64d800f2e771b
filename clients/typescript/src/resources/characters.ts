import type { WithMeta } from "../core/meta.js";
import { APIResource, path, type CharactersAPIPage } from "../core/resource.js";
import type { RequestOptions } from "../core/transport.js";
import type {
  CatalogueQuery,
  Character,
  CharacterCreateBody,
  CharacterSummary,
  CharacterUpdateBody,
  Done,
  LikeState,
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

function toBlob(image: ImageInput): Blob {
  if (image instanceof Blob) return image;
  const bytes = image instanceof Uint8Array ? image : new Uint8Array(image);
  // A copy into a fresh ArrayBuffer: a view may sit on a larger or shared buffer.
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Blob([copy.buffer], { type: sniff(copy) });
}

function sniff(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return "image/jpeg";
  if (bytes[0] === 0x89 && bytes[1] === 0x50) return "image/png";
  return "application/octet-stream";
}
