"""Idempotency keys on POST requests: claimed, completed with the response, replayed."""
