import type { WithMeta } from "../core/meta.js";
import { APIResource, path, type AgentsPageParams, type ImagesAPIPage } from "../core/resource.js";
import { sleep, type RequestOptions } from "../core/transport.js";
import { APITimeoutError, ImageFailedError } from "../errors.js";
import type { Image, ImageCreateBody } from "../types.js";

/**
 * `images.generate`: the prompt and settings, and `wait` (default true): wait for the
 * finished image; `false` answers at once with the pending job (sent as `"async": true`).
 */
export type ImageGenerateParams = Omit<ImageCreateBody, "async"> & { wait?: boolean };

/** `images.list`: `page` (from 1) and `page_size` (1–100, default 10). */
export type ImageListParams = AgentsPageParams;

/** `images.wait`: how long to wait and how often to look. */
export interface ImageWaitParams {
  /** Milliseconds before giving up ({@link APITimeoutError}). Default 600 000 (10 minutes). */
  timeout?: number;
  /** Milliseconds between two reads at first (it grows to 4 s). Default 500. */
  pollInterval?: number;
}

const TERMINAL_FAILURES = new Set(["failed", "deleted"]);

/** Image generation (the agents API, `/api/v1/images`). */
export class Images extends APIResource {
  /**
   * Generates an image (`POST /api/v1/images`). By default waits for it and resolves with
   * the completed image (`status: "completed"`, its `url`): the server waits up to its
   * `PERSONAE_IMAGE_WAIT_SECONDS`, and if it answers 202 the SDK polls the job until it is
   * done. With `wait: false` it resolves at once with the pending job; follow it with
   * {@link Images.wait} or {@link Images.get}.
   *
   * @throws {@link ImageFailedError} when the job fails while the SDK waits for it.
   */
  async generate(params: ImageGenerateParams, options?: RequestOptions): Promise<WithMeta<Image>> {
    const { wait = true, ...body } = params;
    const image = await this._request<Image>("POST", "/api/v1/images", { body: { ...body, async: !wait }, options });
    if (!wait || image.status === "completed") return image;
    return this.wait(image.id, {}, options);
  }

  /** One image job (`GET /api/v1/images/{id}`): `pending`, `running`, `completed`, `failed`, `deleted`. */
  get(imageId: string, options?: RequestOptions): Promise<WithMeta<Image>> {
    return this._request<Image>("GET", path`/api/v1/images/${imageId}`, { options });
  }

  /** Lists one's images, newest first (`GET /api/v1/images`). */
  list(params: ImageListParams = {}, options?: RequestOptions): Promise<ImagesAPIPage<Image>> {
    return this._imagesPage<Image, ImageListParams>("/api/v1/images", params, options);
  }

  /**
   * Polls an image job until it is `completed` and resolves with it.
   *
   * @throws {@link ImageFailedError} if it ends `failed` (its `error` says why) or `deleted`.
   * @throws {@link APITimeoutError} if it is not done within `timeout`.
   */
  async wait(imageId: string, params: ImageWaitParams = {}, options?: RequestOptions): Promise<WithMeta<Image>> {
    const deadline = Date.now() + (params.timeout ?? 600_000);
    let interval = params.pollInterval ?? 500;
    for (;;) {
      const image = await this.get(imageId, options);
      if (image.status === "completed") return image;
      if (TERMINAL_FAILURES.has(image.status)) {
        throw new ImageFailedError(`Image ${imageId} ${image.status}: ${image.error ?? "no image"}`, image);
      }
      if (Date.now() + interval > deadline) {
        throw new APITimeoutError(`Image ${imageId} still ${image.status} after ${params.timeout ?? 600_000} ms`);
      }
      await sleep(interval, options?.signal);
      interval = Math.min(interval * 1.5, 4_000);
    }
  }
}
