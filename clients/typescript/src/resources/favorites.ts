import type { WithMeta } from "../core/meta.js";
import { APIResource, path, type CharactersAPIPage, type CharactersPageParams } from "../core/resource.js";
import type { RequestOptions } from "../core/transport.js";
import type { Done, FavoriteAdded, FavoriteItem } from "../types.js";

/** `favorites.list`: `page` (from 1) and `limit` (1–50, default 20). */
export type FavoriteListParams = Omit<CharactersPageParams, "cursor">;

/** The caller's favorite characters (`/v1/user/favorites`). */
export class Favorites extends APIResource {
  /** Lists favorites, newest first (`GET /v1/user/favorites`). */
  list(params: FavoriteListParams = {}, options?: RequestOptions): Promise<CharactersAPIPage<FavoriteItem>> {
    return this._charactersPage<FavoriteItem, FavoriteListParams>("/v1/user/favorites", params, options);
  }

  /** Adds a favorite (`POST /v1/user/favorites/{id}`); adding twice keeps the first `favorited_at`. */
  add(characterId: string, options?: RequestOptions): Promise<WithMeta<FavoriteAdded>> {
    return this._request<FavoriteAdded>("POST", path`/v1/user/favorites/${characterId}`, { options });
  }

  /** Removes a favorite (`DELETE /v1/user/favorites/{id}`); removing what is not there succeeds. */
  remove(characterId: string, options?: RequestOptions): Promise<WithMeta<Done>> {
    return this._request<Done>("DELETE", path`/v1/user/favorites/${characterId}`, { options });
  }
}
