"""Subscriptions: one use of a trigger, with its inputs, secrets and webhook (RUNTIME.md)."""
