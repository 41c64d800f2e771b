/**
 * Pages. Every list method returns a {@link Page}: its items in `data`, the pagination
 * as the server sent it in `pagination`, `hasNextPage()` / `getNextPage()`, and
 * `for await (const item of page)`, which goes through every item of every page from
 * this one on, fetching the next pages as it goes.
 *
 * The three shapes the server answers:
 *
 * - the characters API: `{data, pagination: {total, page, limit, pages, next_cursor?}}`
 *   (the catalogue reads on by `next_cursor`, the other lists by page number);
 * - the agents API's images: `{data, pagination: {total_items, current_page, page_size,
 *   total_pages, next_page, prev_page}}`;
 * - the rest of the agents API: a plain JSON array; a next page exists when this one came
 *   back full.
 *
 * @module
 */

import { parseRateLimit, type RateLimit, type ResponseInfo } from "./core/meta.js";

/** The pagination of the characters API (the catalogue adds `next_cursor`). */
export interface CharactersPagination {
  total: number;
  /** Null for a catalogue page read by cursor. */
  page: number | null;
  limit: number;
  pages: number;
  next_cursor?: string | null;
}

/** The pagination of the agents API's image list. */
export interface ImagesPagination {
  total_items: number;
  current_page: number;
  page_size: number;
  total_pages: number;
  next_page: number | null;
  prev_page: number | null;
}

/** The agents API's plain arrays carry no pagination: this is what was asked for. */
export interface ArrayPagination {
  page: number;
  page_size: number;
}

/**
 * One page of a list, and the way to the next ones. `P` is the pagination as the server
 * sent it ({@link CharactersPagination}, {@link ImagesPagination}) or, for the agents
 * API's plain arrays, the page asked for ({@link ArrayPagination}).
 */
export class Page<T, P = unknown> implements AsyncIterable<T> {
  /** The items of this page. */
  readonly data: T[];
  /** The pagination of this page. */
  readonly pagination: P;
  readonly #info: ResponseInfo;
  readonly #next: (() => Promise<Page<T, P>>) | null;

  /** @internal */
  constructor(data: T[], pagination: P, info: ResponseInfo, next: (() => Promise<Page<T, P>>) | null) {
    this.data = data;
    this.pagination = pagination;
    this.#info = info;
    this.#next = next;
  }

  /** The rate-limit headers of the response that brought this page. */
  get rateLimit(): RateLimit | null {
    return parseRateLimit(this.#info.headers);
  }

  /** Status and headers of the response that brought this page. */
  get response(): ResponseInfo {
    return this.#info;
  }

  /** Whether there is a page after this one. */
  hasNextPage(): boolean {
    return this.#next !== null;
  }

  /** Fetches the page after this one (throws if there is none: check {@link hasNextPage}). */
  async getNextPage(): Promise<Page<T, P>> {
    if (this.#next === null) throw new RangeError("No next page: check hasNextPage() first");
    return this.#next();
  }

  /** This page, then each following page, fetched as the loop asks for it. */
  async *iterPages(): AsyncGenerator<Page<T, P>> {
    let page: Page<T, P> = this;
    yield page;
    while (page.hasNextPage()) {
      page = await page.getNextPage();
      yield page;
    }
  }

  /** Every item of this page and the pages after it. */
  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for await (const page of this.iterPages()) yield* page.data;
  }
}

/** Fetches one page given its request parameters. */
export type PageFetcher<T, P, Q> = (params: Q) => Promise<Page<T, P>>;

/** The parameters of the page after a characters API page, or null after the last. */
export function nextCharactersParams<Q extends { page?: number; cursor?: string | null }>(
  params: Q,
  pagination: CharactersPagination,
  count: number,
): Q | null {
  if (count === 0) return null;
  if (pagination.next_cursor !== undefined) {
    // The catalogue: read on by cursor (stable under inserts, cheap however deep).
    if (!pagination.next_cursor) return null;
    const { page: _page, ...rest } = params;
    return { ...rest, cursor: pagination.next_cursor } as Q;
  }
  const page = pagination.page ?? params.page ?? 1;
  return page < pagination.pages ? { ...params, page: page + 1 } : null;
}

/** The parameters of the page after an image page, or null after the last. */
export function nextImagesParams<Q extends { page?: number }>(params: Q, pagination: ImagesPagination): Q | null {
  return pagination.next_page ? { ...params, page: pagination.next_page } : null;
}

/** The parameters of the page after a plain-array page (a full page may have a next one). */
export function nextArrayParams<Q extends { page?: number }>(
  params: Q,
  pagination: ArrayPagination,
  count: number,
): Q | null {
  return count >= pagination.page_size ? { ...params, page: pagination.page + 1 } : null;
}
