import type { WithMeta } from "../core/meta.js";
import { APIResource } from "../core/resource.js";
import type { RequestOptions } from "../core/transport.js";
import type { Model, ModelType } from "../types.js";

/** The models the platform offers (`/api/v1/models`). */
export class Models extends APIResource {
  /**
   * Lists the enabled models of one type (`GET /api/v1/models?type=`): `llm` (language
   * models, the default first) or `sd` (image models).
   */
  list(params: { type: ModelType }, options?: RequestOptions): Promise<WithMeta<Model[]>> {
    return this._request<Model[]>("GET", "/api/v1/models", { query: { type: params.type }, options });
  }
}
