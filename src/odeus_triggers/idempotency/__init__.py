"""Idempotency-Key support for the POST create routes (Stripe's semantics, IETF httpapi draft)."""
