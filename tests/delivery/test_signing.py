"""Delivery headers verify with the standardwebhooks package's own verifier, as a receiver's would."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from odeus_triggers.delivery.signing import USER_AGENT, attempt_headers
from odeus_triggers.subscriptions.service import new_signing_secret

BODY = json.dumps(
    {"type": "trigger.event", "timestamp": "2026-12-06T10:00:00Z", "data": {"id": "42", "title": "Café ☕"}},
    separators=(",", ":"), ensure_ascii=False,
)


def test_headers_of_one_attempt_verify():
    secret, now = new_signing_secret(), datetime.now(UTC)
    headers = attempt_headers("msg_abc", BODY, secret, now=now)
    assert headers["webhook-id"] == "msg_abc"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert headers["webhook-signature"].startswith("v1,") and " " not in headers["webhook-signature"]
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == USER_AGENT
    assert Webhook(secret).verify(BODY.encode(), headers) == json.loads(BODY)


def test_signature_covers_the_exact_bytes_the_id_and_the_time():
    secret = new_signing_secret()
    headers = attempt_headers("msg_abc", BODY, secret)
    for body, changed in [
        (BODY.replace("42", "43"), {}),
        (BODY + " ", {}),
        (BODY, {"webhook-id": "msg_other"}),
        (BODY, {"webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)}),
    ]:
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body.encode(), {**headers, **changed})
    with pytest.raises(WebhookVerificationError):
        Webhook(new_signing_secret()).verify(BODY.encode(), headers)


def test_during_a_rotation_each_secret_alone_verifies():
    current, previous, now = new_signing_secret(), new_signing_secret(), datetime.now(UTC)
    headers = attempt_headers("msg_abc", BODY, current, previous_secret=previous,
                              previous_until=now + timedelta(hours=1), now=now)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (current, previous):
        assert Webhook(secret).verify(BODY.encode(), headers) == json.loads(BODY)
        assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_an_expired_previous_secret_no_longer_signs():
    current, previous, now = new_signing_secret(), new_signing_secret(), datetime.now(UTC)
    for until in (now - timedelta(seconds=1), (now - timedelta(minutes=5)).replace(tzinfo=None), None):
        headers = attempt_headers("msg_abc", BODY, current, previous_secret=previous, previous_until=until, now=now)
        assert " " not in headers["webhook-signature"]
        with pytest.raises(WebhookVerificationError):
            Webhook(previous).verify(BODY.encode(), headers)


def test_naive_previous_until_from_sqlite_is_read_as_utc():
    current, previous, now = new_signing_secret(), new_signing_secret(), datetime.now(UTC)
    until = (now + timedelta(minutes=5)).replace(tzinfo=None)
    headers = attempt_headers("msg_abc", BODY, current, previous_secret=previous, previous_until=until, now=now)
    Webhook(previous).verify(BODY.encode(), headers)
