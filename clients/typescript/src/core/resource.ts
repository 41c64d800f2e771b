/**
 * The base of every resource: typed shortcuts over the {@link Transport} that attach the
 * response's meta ({@link withMeta}) and build pages and streams.
 *
 * @module
 */

import {
  nextArrayParams,
  nextCharactersParams,
  nextImagesParams,
  Page,
  type ArrayPagination,
  type CharactersPagination,
  type ImagesPagination,
} from "../pagination.js";
import { Stream } from "../streaming.js";
import { withMeta, type ResponseMeta, type WithMeta } from "./meta.js";
import type { APIRequest, HttpMethod, Query, RequestOptions, Transport } from "./transport.js";

/** A page of a characters API list. */
export type CharactersAPIPage<T> = Page<T, CharactersPagination>;
/** A page of the agents API's image list. */
export type ImagesAPIPage<T> = Page<T, ImagesPagination>;
/** A page of an agents API list answered as a plain array. */
export type ArrayPage<T> = Page<T, ArrayPagination>;

/** The parameters of a characters API list. */
export interface CharactersPageParams {
  page?: number;
  limit?: number;
  cursor?: string | null;
}

/** The parameters of an agents API list. */
export interface AgentsPageParams {
  page?: number;
  page_size?: number;
}

/** A path with its `${}` parts URL-encoded; an empty id is refused before any request. */
export function path(strings: TemplateStringsArray, ...ids: string[]): string {
  let out = strings[0] ?? "";
  ids.forEach((id, i) => {
    if (typeof id !== "string" || id === "") throw new TypeError(`Expected a non-empty id, got ${JSON.stringify(id)}`);
    out += encodeURIComponent(id) + (strings[i + 1] ?? "");
  });
  return out;
}

/** The base of the resource classes. */
export abstract class APIResource {
  /** @internal */
  protected readonly _transport: Transport;

  /** @internal */
  constructor(transport: Transport) {
    this._transport = transport;
  }

  /** @internal A request answered with a JSON object or array (or nothing, 204). */
  protected async _request<T extends object>(
    method: HttpMethod,
    path: string,
    init: { query?: Query; body?: unknown; options?: RequestOptions | undefined } = {},
  ): Promise<WithMeta<T>> {
    const { data, info } = await this._transport.json<T | null>({ method, path, ...init });
    return withMeta((data ?? {}) as T, info);
  }

  /** @internal A request answered with nothing (204): an empty object with the meta. */
  protected async _empty(method: HttpMethod, path: string, options?: RequestOptions): Promise<ResponseMeta> {
    return this._request<Record<never, never>>(method, path, { options });
  }

  /** @internal A generating request: JSON, or with `stream: true` a {@link Stream}. */
  protected async _generate<M extends object>(
    path: string,
    body: { stream?: boolean | undefined } & Record<string, unknown>,
    options: RequestOptions | undefined,
  ): Promise<WithMeta<M> | Stream<M>> {
    if (body.stream) {
      const request: APIRequest = { method: "POST", path, body, stream: true, options };
      return new Stream<M>(await this._transport.stream(request));
    }
    return this._request<M>("POST", path, { body, options });
  }

  /** @internal A page of a characters API list, and the way to the next. */
  protected async _charactersPage<T, Q extends CharactersPageParams>(
    path: string,
    params: Q,
    options: RequestOptions | undefined,
  ): Promise<CharactersAPIPage<T>> {
    const { data, info } = await this._transport.json<{ data: T[]; pagination: CharactersPagination }>({
      method: "GET",
      path,
      query: params as unknown as Query,
      options,
    });
    const next = nextCharactersParams(params, data.pagination, data.data.length);
    return new Page(data.data, data.pagination, info, next && (() => this._charactersPage<T, Q>(path, next, options)));
  }

  /** @internal A page of the image list, and the way to the next. */
  protected async _imagesPage<T, Q extends AgentsPageParams>(
    path: string,
    params: Q,
    options: RequestOptions | undefined,
  ): Promise<ImagesAPIPage<T>> {
    const { data, info } = await this._transport.json<{ data: T[]; pagination: ImagesPagination }>({
      method: "GET",
      path,
      query: params as unknown as Query,
      options,
    });
    const next = nextImagesParams(params, data.pagination);
    return new Page(data.data, data.pagination, info, next && (() => this._imagesPage<T, Q>(path, next, options)));
  }

  /**
   * @internal A page of an agents API list answered as a plain array; `defaultPageSize` is
   * the server's default `page_size` for it (a full page may have a next one).
   */
  protected async _arrayPage<T, Q extends AgentsPageParams>(
    path: string,
    params: Q,
    defaultPageSize: number,
    options: RequestOptions | undefined,
  ): Promise<ArrayPage<T>> {
    const { data, info } = await this._transport.json<T[]>({
      method: "GET",
      path,
      query: params as unknown as Query,
      options,
    });
    const pagination = { page: params.page ?? 1, page_size: params.page_size ?? defaultPageSize };
    const next = nextArrayParams(params, pagination, data.length);
    return new Page(
      data,
      pagination,
      info,
      next && (() => this._arrayPage<T, Q>(path, next, defaultPageSize, options)),
    );
  }
}
