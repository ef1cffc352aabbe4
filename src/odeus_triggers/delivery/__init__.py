"""Webhook delivery's building blocks: signing an attempt, the retry schedule, sending one POST."""
