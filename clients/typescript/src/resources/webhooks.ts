import type { WithMeta } from "../core/meta.js";
import { APIResource, path, type CharactersAPIPage, type CharactersPageParams } from "../core/resource.js";
import type { RequestOptions } from "../core/transport.js";
import type {
  Webhook,
  WebhookCreateBody,
  WebhookDeleted,
  WebhookDelivery,
  WebhookUpdateBody,
  WebhookWithSecret,
} from "../types.js";
import { verifyWebhook, type VerifyOptions, type WebhookEvent, type WebhookHeaders } from "../webhook-verify.js";

/** `webhooks.list` and `webhooks.deliveries`: `page` (from 1) and `limit` (1–100, default 20). */
export type WebhookListParams = Omit<CharactersPageParams, "cursor">;

/**
 * Webhooks (`/v1/webhooks`, Premium and Enterprise plans; others get 403
 * `premium_required`), and {@link Webhooks.verify} for the deliveries they send.
 */
export class Webhooks extends APIResource {
  /**
   * Registers a webhook (`POST /v1/webhooks`) for some of `message.created`,
   * `message.updated`, `message.deleted`, `conversation.created`, `conversation.updated`,
   * `conversation.deleted`, `character.created`, `character.updated`, `image.created`.
   * The answer is the only one that shows its `secret` (with {@link Webhooks.rotateSecret}'s).
   */
  create(body: WebhookCreateBody, options?: RequestOptions): Promise<WithMeta<WebhookWithSecret>> {
    return this._request<WebhookWithSecret>("POST", "/v1/webhooks", { body, options });
  }

  /** Lists the account's webhooks, newest first (`GET /v1/webhooks`). */
  list(params: WebhookListParams = {}, options?: RequestOptions): Promise<CharactersAPIPage<Webhook>> {
    return this._charactersPage<Webhook, WebhookListParams>("/v1/webhooks", params, options);
  }

  /** One webhook, with `status`, `disabled_reason` and `failing_since` (`GET /v1/webhooks/{id}`). */
  get(webhookId: string, options?: RequestOptions): Promise<WithMeta<Webhook>> {
    return this._request<Webhook>("GET", path`/v1/webhooks/${webhookId}`, { options });
  }

  /** Changes `url`, `events`, `description` or `status` (`PATCH /v1/webhooks/{id}`); `status: "active"` re-enables. */
  update(webhookId: string, body: WebhookUpdateBody, options?: RequestOptions): Promise<WithMeta<Webhook>> {
    return this._request<Webhook>("PATCH", path`/v1/webhooks/${webhookId}`, { body, options });
  }

  /** Deletes a webhook and its delivery log (`DELETE /v1/webhooks/{id}`). */
  delete(webhookId: string, options?: RequestOptions): Promise<WithMeta<WebhookDeleted>> {
    return this._request<WebhookDeleted>("DELETE", path`/v1/webhooks/${webhookId}`, { options });
  }

  /**
   * A new secret (`POST /v1/webhooks/{id}/rotate-secret`), shown once; the old one keeps
   * signing beside it for `PERSONAE_WEBHOOK_SECRET_OVERLAP_SECONDS` (24 h).
   */
  rotateSecret(webhookId: string, options?: RequestOptions): Promise<WithMeta<WebhookWithSecret>> {
    return this._request<WebhookWithSecret>("POST", path`/v1/webhooks/${webhookId}/rotate-secret`, { options });
  }

  /** Queues a `ping` event to the webhook (`POST /v1/webhooks/{id}/test`) and returns its delivery. */
  test(webhookId: string, options?: RequestOptions): Promise<WithMeta<WebhookDelivery>> {
    return this._request<WebhookDelivery>("POST", path`/v1/webhooks/${webhookId}/test`, { options });
  }

  /** The webhook's delivery log, newest first (`GET /v1/webhooks/{id}/deliveries`). */
  deliveries(
    webhookId: string,
    params: WebhookListParams = {},
    options?: RequestOptions,
  ): Promise<CharactersAPIPage<WebhookDelivery>> {
    return this._charactersPage<WebhookDelivery, WebhookListParams>(
      path`/v1/webhooks/${webhookId}/deliveries`,
      params,
      options,
    );
  }

  /**
   * Verifies a delivery (Standard Webhooks) and returns its parsed payload; the same as
   * the standalone {@link verifyWebhook}.
   *
   * @param payload - The raw request body, exactly as received.
   * @param headers - The request's headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
   * @param secret - The webhook's `whsec_…` secret.
   * @throws {@link WebhookVerificationError} when it does not verify.
   */
  verify<T = WebhookEvent>(
    payload: string | Uint8Array,
    headers: WebhookHeaders,
    secret: string,
    options?: VerifyOptions,
  ): Promise<T> {
    return verifyWebhook<T>(payload, headers, secret, options);
  }
}
