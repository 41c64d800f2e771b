import type { WithMeta } from "../core/meta.js";
import { APIResource } from "../core/resource.js";
import type { RequestOptions } from "../core/transport.js";
import type { UserMe } from "../types.js";

/** The authenticated account (`/v1/user`). */
export class User extends APIResource {
  /** The account: plan, monthly chat requests used, balance and counts (`GET /v1/user/me`). */
  me(options?: RequestOptions): Promise<WithMeta<UserMe>> {
    return this._request<UserMe>("GET", "/v1/user/me", { options });
  }
}
