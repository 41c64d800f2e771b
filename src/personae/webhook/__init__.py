"""Webhooks: endpoints, the outbox of events, signed deliveries with retries."""
